import type { FaxEnvelope, FaxRefusal } from "../fax/model.js";

/**
 * Per-message fax options a sender can set in mail headers.
 *
 * | Header | Values | Effect |
 * |---|---|---|
 * | `X-Fax-Resolution` | `high` or `low` (any case) | `High` = 200 dpi, `Low` = 100 dpi. Default: `fax.resolution`. |
 * | `X-Fax-Cover` | an integer `0`–`28` | RingCentral cover page template; `0` = no cover page. Default: `fax.coverIndex` (`-1` = the extension's own default). |
 * | `X-Fax-Send-Time` | ISO 8601 date-time with a time zone, e.g. `2026-09-01T08:30:00Z` or `2026-09-01T10:30+02:00` | Schedule the fax. Must be in the future and at most 366 days ahead. |
 * | `X-Fax-Iso-Code` | a two-letter ISO 3166 country code, e.g. `GB` | The country RingCentral reads the recipient numbers in (the send's `isoCode`). Default: `fax.isoCode`. |
 * | `X-Fax-Forward-Of` | a RingCentral message id (digits only) | Resend that existing fax to this mail's recipients instead of uploading documents; the mail must then carry no attachments. |
 *
 * Options written into a recipient address (resolution, cover, name; parsed
 * by the SMTP side into the envelope) win over the headers. A name goes into
 * that recipient's `to[].name` (printed on the cover page). Resolution and
 * cover apply to the whole fax, so two recipients of one mail asking for
 * different values is refused.
 *
 * A header given twice with different values, or any value outside the table,
 * refuses the mail with a message naming the header and what it allows.
 */
export interface HeaderOptions {
  resolution?: "High" | "Low";
  coverIndex?: number;
  sendTime?: string;
  forwardOf?: string;
  isoCode?: string;
}

/** Longest a scheduled fax may be put off, in milliseconds (RingCentral documents no limit; HylaFAX uses a year). */
export const MAX_SCHEDULE_AHEAD_MS = 366 * 24 * 60 * 60 * 1000;

export const COVER_INDEX_MAX = 28;

type HeaderLookup = (name: string) => string[];

function refuse(header: string, value: string, allowed: string): { ok: false; refusal: FaxRefusal } {
  const shown = value.length > 60 ? `${value.slice(0, 60)}…` : value;
  return {
    ok: false,
    refusal: {
      rule: "invalid-header",
      message: `The ${header} header has the value "${shown}", which is not allowed: ${allowed}`,
    },
  };
}

/** One value of a header: undefined when absent; a refusal when repeated with different values. */
function single(lookup: HeaderLookup, header: string): { ok: true; value: string | undefined } | { ok: false; refusal: FaxRefusal } {
  const values = [...new Set(lookup(header.toLowerCase()).map((v) => v.trim()))];
  if (values.length > 1) {
    return {
      ok: false,
      refusal: {
        rule: "invalid-header",
        message: `The ${header} header appears more than once with different values (${values.map((v) => `"${v.slice(0, 40)}"`).join(", ")}); give it once.`,
      },
    };
  }
  return { ok: true, value: values[0] };
}

const ISO_DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)$/i;

/** Parse an ISO 8601 date-time that names its offset; undefined when malformed or not a real date. */
export function parseIsoDateTime(value: string): Date | undefined {
  const m = ISO_DATE_TIME.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s ?? "0") > 59) return undefined;
  // A day that does not exist in the month (2026-02-30) rolls over in Date; refuse it.
  const probe = new Date(Date.UTC(Number(y), month - 1, day));
  if (probe.getUTCDate() !== day) return undefined;
  let normalised = value.replace(" ", "T").toUpperCase();
  const offset = /([+-]\d{2})(\d{2})?$/.exec(normalised);
  if (offset && !normalised.endsWith("Z")) {
    normalised = normalised.slice(0, offset.index) + `${offset[1]}:${offset[2] ?? "00"}`;
  }
  const date = new Date(normalised.replace(/\s+/g, ""));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Read and validate the X-Fax-* headers. */
export function parseHeaderOptions(
  lookup: HeaderLookup,
  now: Date,
): { ok: true; options: HeaderOptions } | { ok: false; refusal: FaxRefusal } {
  const options: HeaderOptions = {};

  const resolution = single(lookup, "X-Fax-Resolution");
  if (!resolution.ok) return resolution;
  if (resolution.value !== undefined) {
    const v = resolution.value.toLowerCase();
    if (v === "high") options.resolution = "High";
    else if (v === "low") options.resolution = "Low";
    else return refuse("X-Fax-Resolution", resolution.value, 'use "high" (200 dpi) or "low" (100 dpi).');
  }

  const cover = single(lookup, "X-Fax-Cover");
  if (!cover.ok) return cover;
  if (cover.value !== undefined) {
    const n = /^\d{1,2}$/.test(cover.value) ? Number(cover.value) : NaN;
    if (!(n >= 0 && n <= COVER_INDEX_MAX)) {
      return refuse("X-Fax-Cover", cover.value, `use a cover page number from 0 to ${COVER_INDEX_MAX} (0 = no cover page).`);
    }
    options.coverIndex = n;
  }

  const sendTime = single(lookup, "X-Fax-Send-Time");
  if (!sendTime.ok) return sendTime;
  if (sendTime.value !== undefined) {
    const date = parseIsoDateTime(sendTime.value);
    if (!date) {
      return refuse(
        "X-Fax-Send-Time",
        sendTime.value,
        "use an ISO 8601 date and time with a time zone, such as 2026-09-01T08:30:00Z or 2026-09-01T10:30+02:00.",
      );
    }
    if (date.getTime() <= now.getTime()) {
      return refuse("X-Fax-Send-Time", sendTime.value, `the time must be in the future (it is now ${now.toISOString()}).`);
    }
    if (date.getTime() - now.getTime() > MAX_SCHEDULE_AHEAD_MS) {
      return refuse("X-Fax-Send-Time", sendTime.value, "a fax can be scheduled at most 366 days ahead.");
    }
    options.sendTime = date.toISOString();
  }

  const iso = single(lookup, "X-Fax-Iso-Code");
  if (!iso.ok) return iso;
  if (iso.value !== undefined) {
    if (!/^[A-Za-z]{2}$/.test(iso.value)) return refuse("X-Fax-Iso-Code", iso.value, "use a two-letter ISO 3166 country code such as GB or US.");
    options.isoCode = iso.value.toUpperCase();
  }

  const forward = single(lookup, "X-Fax-Forward-Of");
  if (!forward.ok) return forward;
  if (forward.value !== undefined) {
    if (!/^\d{1,20}$/.test(forward.value)) {
      return refuse("X-Fax-Forward-Of", forward.value, "use the numeric id of a fax in your RingCentral message store, such as 1234567890.");
    }
    options.forwardOf = forward.value;
  }

  return { ok: true, options };
}

/** Options that apply to the whole fax, taken from the recipient addresses. */
export interface AddressWideOptions {
  resolution?: "High" | "Low";
  coverIndex?: number;
}

/** Merge the per-address resolution and cover of all recipients; refuse when they disagree. */
export function mergeAddressOptions(envelope: FaxEnvelope): { ok: true; options: AddressWideOptions } | { ok: false; refusal: FaxRefusal } {
  const options: AddressWideOptions = {};
  const resolutions = new Map<string, string>();
  const covers = new Map<number, string>();
  for (const r of envelope.rcptTo) {
    const o = r.options;
    if (!o) continue;
    if (o.resolution !== undefined && !resolutions.has(o.resolution)) resolutions.set(o.resolution, r.address);
    if (o.coverIndex !== undefined) {
      if (!Number.isInteger(o.coverIndex) || o.coverIndex < 0 || o.coverIndex > COVER_INDEX_MAX) {
        return {
          ok: false,
          refusal: {
            rule: "invalid-address-option",
            message: `The address ${r.address} asks for cover page ${o.coverIndex}; use a number from 0 to ${COVER_INDEX_MAX}.`,
          },
        };
      }
      if (!covers.has(o.coverIndex)) covers.set(o.coverIndex, r.address);
    }
  }
  const conflict = (what: string, m: Map<string | number, string>): { ok: false; refusal: FaxRefusal } => ({
    ok: false,
    refusal: {
      rule: "conflicting-address-options",
      message: `The recipients ask for different ${what} (${[...m].map(([v, a]) => `${a}: ${v}`).join("; ")}); one fax has one ${what.replace(/s$/, "")}. Send a separate mail for each.`,
    },
  });
  if (resolutions.size > 1) return conflict("resolutions", resolutions);
  if (covers.size > 1) return conflict("cover pages", covers);
  const [resolution] = resolutions.keys();
  const [cover] = covers.keys();
  if (resolution === "High" || resolution === "Low") options.resolution = resolution;
  if (cover !== undefined) options.coverIndex = cover;
  return { ok: true, options };
}
