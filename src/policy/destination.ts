import { getCountryCallingCode, parsePhoneNumberFromString, type CountryCode, type NumberType, type PhoneNumber } from "libphonenumber-js/max";
import type { PolicyConfig } from "../config/schema.js";
import { matchNumberPattern } from "../inbound/route.js";

/**
 * Destination policy, checked at RCPT for each parsed E.164 number, in order:
 * a `deny` pattern refuses; an `allow` pattern accepts (skipping the rest); a
 * number type in `blockTypes` refuses; a country other than fax.defaultCountry
 * not in `allowCountries` refuses.
 */

export type DestinationVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: "destination_denied" | "destination_type" | "destination_international"; readonly message: string };

const TYPE_NAMES: Partial<Record<NonNullable<NumberType>, string>> = {
  PREMIUM_RATE: "a premium-rate number",
  SHARED_COST: "a shared-cost number",
  PERSONAL_NUMBER: "a personal (follow-me) number",
  UAN: "a universal access number",
  VOICEMAIL: "a voicemail access number",
  PAGER: "a pager number",
  TOLL_FREE: "a toll-free number",
  VOIP: "a VoIP number",
  MOBILE: "a mobile number",
};

/** `phone`: the number as the address parser read it (not parsed again); absent, `e164` is parsed here. */
export type DestinationPolicy = (e164: string, phone?: PhoneNumber) => DestinationVerdict;

export function createDestinationPolicy(cfg: PolicyConfig["destinations"], defaultCountry: string): DestinationPolicy {
  const blocked = new Set<string>(cfg.blockTypes);
  const allowAll = cfg.allowCountries.includes("*");
  const countries = new Set<string>([defaultCountry, ...cfg.allowCountries]);
  const homeCode = getCountryCallingCode(defaultCountry as CountryCode);
  return (e164: string, parsed?: PhoneNumber): DestinationVerdict => {
    const denied = cfg.deny.find((p) => matchNumberPattern(p, e164));
    if (denied !== undefined) {
      return { ok: false, reason: "destination_denied", message: `${e164} matches the denied destination pattern ${denied}; faxing it is not allowed` };
    }
    if (cfg.allow.some((p) => matchNumberPattern(p, e164))) return { ok: true };
    const phone = parsed ?? parsePhoneNumberFromString(e164);
    const type = blocked.size === 0 ? undefined : phone?.getType();
    if (type !== undefined && blocked.has(type)) {
      return { ok: false, reason: "destination_type", message: `${e164} is ${TYPE_NAMES[type] ?? type}; faxing it is not allowed` };
    }
    if (!allowAll) {
      // Numbers libphonenumber cannot place in a country (fictional +1 555 numbers in sandbox mode) count as domestic when they share the calling code.
      const country = phone?.country ?? (phone?.countryCallingCode === homeCode ? defaultCountry : undefined);
      if (country === undefined || !countries.has(country)) {
        return {
          ok: false,
          reason: "destination_international",
          message: `${e164} is an international number (${country ?? "no country"}); faxing outside ${defaultCountry} is not allowed`,
        };
      }
    }
    return { ok: true };
  };
}
