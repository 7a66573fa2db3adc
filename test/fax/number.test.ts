import { describe, expect, it } from "vitest";
import { formatNumber, parseFaxAddress, splitAddress } from "../../src/fax/number.js";

describe("parseFaxAddress", () => {
  it.each([
    ["12125551234", "+12125551234"],
    ["+12125551234", "+12125551234"],
    ["2125551234", "+12125551234"],
    ["1-212-555-1234", "+12125551234"],
    ["(212).555.1234", "+12125551234"],
    ['"+44 20 7183 8750"', "+442071838750"],
  ])("normalises %s to %s", (local, e164) => {
    expect(parseFaxAddress(local, "US")).toEqual({ ok: true, e164, options: {} });
  });

  it("uses the default country for national numbers", () => {
    expect(parseFaxAddress("020 7183 8750", "GB")).toMatchObject({ ok: true, e164: "+442071838750" });
  });

  it("refuses fictional numbers unless the check is 'possible'", () => {
    const strict = parseFaxAddress("15551234567", "US");
    expect(strict).toEqual({ ok: false, reason: "+15551234567 (read as a US number) is not a valid fax number: it is not assigned in its country's numbering plan" });
    expect(parseFaxAddress("15551234567", "US", "possible")).toMatchObject({ ok: true, e164: "+15551234567" });
  });

  it("names the problem for non-numbers and wrong lengths", () => {
    expect(parseFaxAddress("john.doe", "US")).toEqual({
      ok: false,
      reason: '"john.doe" is not a fax number (use digits, optionally with + and - . ( ) separators)',
    });
    expect(parseFaxAddress("12", "US")).toEqual({ ok: false, reason: "12 (read as a US number) is not a dialable fax number: wrong length for its country" });
    expect(parseFaxAddress("", "US")).toEqual({ ok: false, reason: "the address has no fax number before the @" });
  });

  it("reads digits-only numbers with a leading country code when they are not national numbers", () => {
    expect(parseFaxAddress("442079460000", "US")).toMatchObject({ ok: true, e164: "+442079460000" });
    expect(parseFaxAddress("00442079460000", "US")).toMatchObject({ ok: true, e164: "+442079460000" });
    expect(parseFaxAddress("011442079460000", "US")).toMatchObject({ ok: true, e164: "+442079460000" });
    expect(parseFaxAddress("00442079460000", "GB")).toMatchObject({ ok: true, e164: "+442079460000" });
    // A good national reading wins over the international one.
    expect(parseFaxAddress("2125551234", "US")).toMatchObject({ ok: true, e164: "+12125551234" });
    expect(parseFaxAddress("15551234567", "US", "possible")).toMatchObject({ ok: true, e164: "+15551234567" });
  });

  it("names both readings when neither is a number", () => {
    const r = parseFaxAddress("4420794600", "US");
    expect(r).toEqual({
      ok: false,
      reason:
        "+14420794600 (read as a US number) is not a valid fax number: it is not assigned in its country's numbering plan; " +
        "+4420794600 (read with a leading country code) is not a dialable fax number: wrong length for its country",
    });
  });

  it("parses options after the number", () => {
    expect(parseFaxAddress("12125551234/res=low/cover=0/name=Dr_Jane_Roe", "US")).toEqual({
      ok: true,
      e164: "+12125551234",
      options: { resolution: "Low", coverIndex: 0, name: "Dr Jane Roe" },
    });
    expect(parseFaxAddress("12125551234/cover=99", "US")).toMatchObject({ ok: false, reason: expect.stringContaining("cover=99") });
    expect(parseFaxAddress("12125551234/color=yes", "US")).toMatchObject({ ok: false, reason: expect.stringContaining('unknown address option "color"') });
  });
});

describe("splitAddress and formatNumber", () => {
  it("splits at the last @ and lowercases the domain", () => {
    expect(splitAddress('"a@b"@Fax.Local')).toEqual({ local: '"a@b"', domain: "fax.local" });
    expect(splitAddress("nodomain")).toBeUndefined();
  });
  it("formats NANP and international numbers for people", () => {
    expect(formatNumber("+15551234567")).toBe("+1 555-123-4567");
    expect(formatNumber("+442071838750")).toBe("+44 20 7183 8750");
  });
});
