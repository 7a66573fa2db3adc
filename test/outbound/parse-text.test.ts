import { describe, expect, it } from "vitest";
import { parseIsoDateTime } from "../../src/outbound/parse-options.js";
import { extensionForMime, safeFilename } from "../../src/fax/files.js";
import { COVER_TEXT_MAX, TRUNCATION_MARKER, buildCoverText, htmlToPlainText, truncateWithMarker } from "../../src/outbound/text.js";

describe("safeFilename", () => {
  it.each([
    ["report.pdf", "report.pdf"],
    ["Q1 & Q2 @ 50% #final*.pdf", "Q1 _ Q2 _ 50_ _final.pdf"],
    ["../../etc/passwd.txt", "passwd.txt"],
    ["C:\\Users\\me\\Scan 001.PDF", "Scan 001.pdf"],
    ["Größe – Übersicht.docx", "Größe _ Übersicht.docx"],
    ["日本語の書類.pdf", "日本語の書類.pdf"],
    [".hidden.pdf", "hidden.pdf"],
    ["$$$.pdf", "document-3.pdf"],
    ["noextension", "noextension.pdf"],
    ["report.final version", "report.final version.pdf"],
    ["tab\tand\u0000nul.pdf", "tabandnul.pdf"],
  ])("%s → %s", (input, expected) => {
    expect(safeFilename(input, 3, "pdf")).toBe(expected);
  });

  it("falls back to document-N.<ext> when there is no name", () => {
    expect(safeFilename(undefined, 2, "png")).toBe("document-2.png");
  });

  it("keeps long names within 100 characters, extension included", () => {
    const name = safeFilename(`${"a".repeat(300)}.pdf`, 1, "pdf");
    expect(name.length).toBeLessThanOrEqual(100);
    expect(name.endsWith(".pdf")).toBe(true);
  });

  it("derives extensions from content types", () => {
    expect(extensionForMime("application/pdf")).toBe("pdf");
    expect(extensionForMime("image/jpeg")).toBe("jpg");
    expect(extensionForMime("IMAGE/HEIC")).toBe("heic");
    expect(extensionForMime("application/x-unknown")).toBe("bin");
  });
});

describe("cover text", () => {
  it("truncates to the limit including the marker", () => {
    const out = truncateWithMarker("y".repeat(5000));
    expect(out.length).toBe(COVER_TEXT_MAX);
    expect(out.endsWith(TRUNCATION_MARKER)).toBe(true);
  });

  it("never leaves half a surrogate pair before the marker", () => {
    const room = COVER_TEXT_MAX - TRUNCATION_MARKER.length;
    const text = "a".repeat(room - 1) + "😀".repeat(10);
    const out = truncateWithMarker(text);
    expect(out.length).toBeLessThanOrEqual(COVER_TEXT_MAX);
    expect(out).toBe(`${"a".repeat(room - 1)}${TRUNCATION_MARKER}`);
  });

  it("joins subject and body with a blank line and flattens a folded subject", () => {
    expect(buildCoverText("subject+body", "A\r\n  long subject", "Body")).toBe("A long subject\n\nBody");
    expect(buildCoverText("subject+body", "", "Body")).toBe("Body");
    expect(buildCoverText("subject+body", "Only subject", "")).toBe("Only subject");
    expect(buildCoverText("body", "S", "  \n ")).toBeUndefined();
    expect(buildCoverText("none", "S", "B")).toBeUndefined();
  });

  it("converts HTML to text without images or style", () => {
    const text = htmlToPlainText('<style>p{}</style><p>Hi <a href="https://x.example/">https://x.example/</a></p><img src="cid:x" alt="logo">');
    expect(text).toBe("Hi https://x.example/");
  });
});

describe("parseIsoDateTime", () => {
  it.each([
    ["2026-09-01T08:30:00Z", "2026-09-01T08:30:00.000Z"],
    ["2026-09-01T10:30+02:00", "2026-09-01T08:30:00.000Z"],
    ["2026-09-01T10:30:00+0200", "2026-09-01T08:30:00.000Z"],
    ["2026-09-01 03:30:00-05", "2026-09-01T08:30:00.000Z"],
    ["2026-09-01t08:30:00.250z", "2026-09-01T08:30:00.250Z"],
  ])("%s", (input, expected) => {
    expect(parseIsoDateTime(input)?.toISOString()).toBe(expected);
  });

  it.each(["2026-09-01", "2026-09-01T08:30", "2026-13-01T08:30Z", "2026-02-29T08:30Z", "2026-09-01T24:00Z", "next tuesday"])(
    "refuses %s",
    (input) => {
      expect(parseIsoDateTime(input)).toBeUndefined();
    },
  );
});
