import { parsePhoneNumberFromString, type CountryCode, type PhoneNumber } from "libphonenumber-js/max";
import type { FaxAddressOptions } from "./model.js";

/**
 * Fax addresses. The local part is the number, optionally followed by
 * options separated by `/`:
 *
 *     15551234567@fax.local
 *     +44 20 7183 8750@fax.local            (quoted local part; spaces, - . ( ) allowed)
 *     (555) 123-4567@fax.local              (national number, fax.defaultCountry)
 *     442079460000@fax.local                (digits with a leading country code,
 *                                            used when not a national number)
 *     15551234567/res=low/cover=2/name=Dr_Jane_Roe@fax.local
 *
 * Options: `res=high|low` (fax resolution), `cover=0..28` (RingCentral cover
 * page template; 0 = none), `name=Text_With_Underscores` (recipient name
 * printed on the cover page; `_` becomes a space).
 */

export type { FaxAddressOptions } from "./model.js";

export type { PhoneNumber } from "libphonenumber-js/max";

/**
 * `phone`: the number as libphonenumber parsed it (not enumerable, like on a
 * recipient: see withPhone), carried with the recipient so the destination
 * rules read its country and type without parsing it again.
 */
export type FaxAddressResult = { ok: true; e164: string; options: FaxAddressOptions; phone: PhoneNumber } | { ok: false; reason: string };

/**
 * The recipient with its parsed number attached, in memory only: the property
 * is not enumerable, so it is never stored with the job, logged or compared.
 */
export function withPhone<T extends object>(recipient: T, phone: PhoneNumber): T & { readonly phone: PhoneNumber } {
  Object.defineProperty(recipient, "phone", { value: phone, enumerable: false });
  return recipient as T & { readonly phone: PhoneNumber };
}

/**
 * How strictly to check numbers: "valid" needs a number assigned in the
 * numbering plan (libphonenumber's full metadata); "possible" only needs the
 * right length for the country, which admits fictional numbers such as
 * +1 555 123 4567 (the sandbox uses it).
 */
export type NumberCheck = "valid" | "possible";

const SEPARATORS = /[\s\-.()]/g;

export function parseFaxAddress(localPart: string, defaultCountry: string, check: NumberCheck = "valid"): FaxAddressResult {
  const unquoted = localPart.startsWith('"') && localPart.endsWith('"') && localPart.length >= 2 ? localPart.slice(1, -1) : localPart;
  const [numberPart = "", ...optionParts] = unquoted.split("/");
  const options: FaxAddressOptions = {};
  for (const raw of optionParts) {
    const opt = parseOption(raw);
    if (typeof opt === "string") return { ok: false, reason: opt };
    Object.assign(options, opt);
  }

  const compact = numberPart.replace(SEPARATORS, "");
  if (compact === "") return { ok: false, reason: "the address has no fax number before the @" };
  if (!/^\+?\d+$/.test(compact)) {
    return { ok: false, reason: `"${numberPart}" is not a fax number (use digits, optionally with + and - . ( ) separators)` };
  }
  const reading = readNumber(compact, defaultCountry, check);
  return reading.ok ? withPhone({ ok: true as const, e164: reading.e164, options }, reading.phone) : reading;
}

type Reading = { ok: true; e164: string; phone: PhoneNumber } | { ok: false; reason: string };

/**
 * Digits-only numbers have two readings: national for fax.defaultCountry, and
 * international (the digits start with a country code, as `442079460000`;
 * `00…` and the country's own exit code such as `011…` mean the same). The
 * national reading wins when it is good; otherwise the international one is
 * used when it is good. A refusal names each reading tried and what was wrong.
 */
function readNumber(compact: string, defaultCountry: string, check: NumberCheck): Reading {
  if (compact.startsWith("+")) return judge(compact, undefined, compact, "", check);
  const national = judge(compact, defaultCountry, compact, ` (read as a ${defaultCountry} number)`, check);
  if (national.ok) return national;
  const intlDigits = compact.startsWith("00") ? compact.slice(2) : compact;
  if (intlDigits.length < 2) return national;
  const intl = judge(`+${intlDigits}`, undefined, `+${intlDigits}`, " (read with a leading country code)", check);
  if (intl.ok) return intl;
  const intlPhone = parsePhoneNumberFromString(`+${intlDigits}`);
  if (!intlPhone || intlPhone.number === parsePhoneNumberFromString(compact, defaultCountry as CountryCode)?.number) return national;
  return { ok: false, reason: `${national.reason}; ${intl.reason}` };
}

function judge(input: string, country: string | undefined, shown: string, how: string, check: NumberCheck): Reading {
  const phone = parsePhoneNumberFromString(input, country as CountryCode | undefined);
  if (!phone || !phone.isPossible()) {
    return { ok: false, reason: `${shown}${how} is not a dialable fax number: wrong length for its country` };
  }
  if (check === "valid" && !phone.isValid()) {
    return { ok: false, reason: `${phone.number}${how} is not a valid fax number: it is not assigned in its country's numbering plan` };
  }
  return { ok: true, e164: phone.number, phone };
}

function parseOption(raw: string): FaxAddressOptions | string {
  const eq = raw.indexOf("=");
  const key = (eq < 0 ? raw : raw.slice(0, eq)).trim().toLowerCase();
  const value = eq < 0 ? "" : raw.slice(eq + 1).trim();
  switch (key) {
    case "res":
    case "resolution": {
      const v = value.toLowerCase();
      if (v === "high" || v === "fine") return { resolution: "High" };
      if (v === "low" || v === "normal") return { resolution: "Low" };
      return `address option res=${value} is not allowed: use res=high or res=low`;
    }
    case "cover": {
      if (!/^\d{1,2}$/.test(value) || Number(value) > 28) return `address option cover=${value} is not allowed: use a cover page number from 0 (none) to 28`;
      return { coverIndex: Number(value) };
    }
    case "name": {
      const name = value.replace(/_/g, " ").trim();
      if (name === "" || name.length > 64) return "address option name= needs 1 to 64 characters (use _ for spaces)";
      return { name };
    }
    default:
      return `unknown address option "${key}" (known: res, cover, name)`;
  }
}

/** Split an address at its last @; undefined when there is none or a side is empty. */
export function splitAddress(address: string): { local: string; domain: string } | undefined {
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return undefined;
  return { local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase().replace(/\.$/, "") };
}

/** "+15551234567" → "+1 555-123-4567" for people (subjects, reports). */
export function formatNumber(e164: string): string {
  const phone = parsePhoneNumberFromString(e164);
  if (!phone) return e164;
  if (phone.countryCallingCode === "1") {
    const n = phone.nationalNumber;
    if (n.length === 10) return `+1 ${n.slice(0, 3)}-${n.slice(3, 6)}-${n.slice(6)}`;
  }
  return phone.formatInternational();
}
