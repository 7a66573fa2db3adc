/**
 * Issue 15: each recipient's number is parsed by libphonenumber once, at the
 * address, and the parsed number rides along with the recipient (in memory
 * only) to the destination rules of RCPT and DATA.
 */
import { describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import { parseFaxAddress, withPhone } from "../../src/fax/number.js";
import { createDestinationPolicy } from "../../src/policy/destination.js";

const destinations = createDestinationPolicy(configSchema.parse({}).policy.destinations, "US");

describe("the parsed number travels with the recipient", () => {
  it("parseFaxAddress hands back the parsed number, outside what is compared, stored or logged", () => {
    const r = parseFaxAddress("1-212-555-1234", "US");
    if (!r.ok) throw new Error(r.reason);
    expect(r.phone.number).toBe("+12125551234");
    expect(r.phone.country).toBe("US");
    expect(Object.keys(r)).toEqual(["ok", "e164", "options"]);
    const recipient = withPhone({ address: "12125551234@fax.local", e164: r.e164, options: r.options }, r.phone);
    expect(JSON.stringify(recipient)).toBe('{"address":"12125551234@fax.local","e164":"+12125551234","options":{}}');
    expect({ ...recipient }).toEqual({ address: "12125551234@fax.local", e164: "+12125551234", options: {} });
    expect(recipient.phone).toBe(r.phone);
  });

  it("the destination rules judge the carried number, without parsing the E.164 again", () => {
    const uk = parseFaxAddress("+44 20 7183 8750", "US");
    if (!uk.ok) throw new Error(uk.reason);
    // Given a (deliberately mismatched) parsed number, the rules use it: proof they did not parse the string.
    expect(destinations("+12125551234", uk.phone)).toMatchObject({ ok: false, reason: "destination_international" });
    expect(destinations("+12125551234")).toEqual({ ok: true });
    expect(destinations("+442071838750")).toMatchObject({ ok: false, reason: "destination_international" });
  });
});
