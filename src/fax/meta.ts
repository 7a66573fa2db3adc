import type { Headers, HeaderValue } from "mailparser";
import type { MailMeta } from "./model.js";

/**
 * The one way mail metadata is read: from mailparser's header map, as the
 * streaming parser (src/outbound/parse.ts) and the header-only reader of
 * refused mail (src/outbound/mail-meta.ts) both produce it. Pure.
 */

/** Every string value of a header (mailparser gives one value or a list). */
export function headerStrings(headers: Headers, name: string): string[] {
  const v: HeaderValue | undefined = headers.get(name);
  if (v === undefined) return [];
  const list: unknown[] = Array.isArray(v) ? v : [v];
  return list.filter((x): x is string => typeof x === "string");
}

/** The address of the first mailbox of an address header (From, Reply-To). */
export function firstAddress(headers: Headers, name: string): string | undefined {
  const v = headers.get(name);
  if (v === undefined || typeof v === "string" || v instanceof Date || Array.isArray(v)) return undefined;
  if (!("value" in v) || !Array.isArray(v.value)) return undefined;
  for (const entry of v.value) {
    if (typeof entry === "object" && entry !== null && "address" in entry && typeof entry.address === "string" && entry.address !== "") {
      return entry.address;
    }
  }
  return undefined;
}

/** The Content-Type header's value and string parameters. */
export function contentTypeHeader(headers: Headers): { value: string; params: Record<string, string> } | undefined {
  const v = headers.get("content-type");
  if (v === undefined || typeof v === "string" || v instanceof Date || Array.isArray(v)) return undefined;
  if (!("value" in v) || typeof v.value !== "string" || !("params" in v)) return undefined;
  const params: Record<string, string> = {};
  for (const [k, p] of Object.entries(v.params)) if (typeof p === "string") params[k] = p;
  return { value: v.value, params };
}

/** Threading and loop-safety headers: what notices and reports need, also for mail that was refused. */
export function mailMetaOf(headers: Headers): MailMeta {
  const meta: MailMeta = {
    references: headerStrings(headers, "references"),
    isReport: contentTypeHeader(headers)?.value.toLowerCase() === "multipart/report",
  };
  const messageId = headerStrings(headers, "message-id")[0];
  if (messageId) meta.messageId = messageId;
  const subject = headerStrings(headers, "subject")[0];
  if (subject !== undefined) meta.subject = subject;
  const from = firstAddress(headers, "from");
  if (from) meta.from = from;
  const autoSubmitted = headerStrings(headers, "auto-submitted")[0];
  if (autoSubmitted) meta.autoSubmitted = autoSubmitted;
  const precedence = headerStrings(headers, "precedence")[0];
  if (precedence) meta.precedence = precedence;
  const suppress = headerStrings(headers, "x-auto-response-suppress")[0];
  if (suppress) meta.xAutoResponseSuppress = suppress;
  return meta;
}
