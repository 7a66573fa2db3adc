import { convert } from "html-to-text";

/**
 * Text helpers for turning a mail into a fax request: the body as plain text,
 * the cover page text, and file names RingCentral accepts.
 */

/** RingCentral's limit on `coverPageText`, in characters (OpenAPI `maxLength: 1024`). */
export const COVER_TEXT_MAX = 1024;

/** What ends a cover text that had to be cut. It counts towards {@link COVER_TEXT_MAX}. */
export const TRUNCATION_MARKER = "… [truncated]";

/** HTML longer than this is cut before conversion, so a pathological body cannot stall the worker. */
const HTML_CONVERT_MAX_CHARS = 8 * 1024 * 1024;

/**
 * Convert an HTML body to plain text for the cover page or the body document.
 * Images are dropped (they have no text), link targets are kept unless the
 * link text already shows them, and lines are not re-wrapped.
 */
export function htmlToPlainText(html: string): string {
  const source = html.length > HTML_CONVERT_MAX_CHARS ? html.slice(0, HTML_CONVERT_MAX_CHARS) : html;
  return convert(source, {
    wordwrap: false,
    selectors: [
      { selector: "img", format: "skip" },
      { selector: "a", options: { hideLinkHrefIfSameAsText: true } },
      { selector: "h1", options: { uppercase: false } },
      { selector: "h2", options: { uppercase: false } },
      { selector: "h3", options: { uppercase: false } },
      { selector: "table", format: "dataTable" },
    ],
  });
}

/** Normalise line ends to "\n" and trim surrounding whitespace; signatures and quotes stay as written. */
export function normaliseBody(text: string): string {
  return text.replace(/\r\n?/g, "\n").trim();
}

/**
 * Cut `text` to at most `max` characters (Unicode code points are never split),
 * ending in {@link TRUNCATION_MARKER} when anything was removed. The marker
 * counts towards the limit. Length is measured in UTF-16 code units, as
 * RingCentral's JSON schema does.
 */
export function truncateWithMarker(text: string, max: number = COVER_TEXT_MAX): string {
  if (text.length <= max) return text;
  const room = max - TRUNCATION_MARKER.length;
  if (room <= 0) return TRUNCATION_MARKER.slice(0, max);
  let cut = text.slice(0, room);
  // Do not leave half a surrogate pair at the end.
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut.trimEnd() + TRUNCATION_MARKER;
}

export type CoverTextMode = "body" | "subject" | "subject+body" | "none";

/**
 * Build the cover page text for `mode`, or undefined when there is nothing to
 * print (RingCentral then prints the cover page without text).
 * - `body`: the body text;
 * - `subject`: the Subject header;
 * - `subject+body`: the subject, a blank line, then the body;
 * - `none`: no text.
 * The result is trimmed and cut to {@link COVER_TEXT_MAX} characters with a marker.
 */
export function buildCoverText(mode: CoverTextMode, subject: string | undefined, body: string | undefined): string | undefined {
  const s = normaliseBody(subject ?? "").replace(/\s*\n\s*/g, " ");
  const b = normaliseBody(body ?? "");
  let text: string;
  switch (mode) {
    case "none":
      return undefined;
    case "subject":
      text = s;
      break;
    case "body":
      text = b;
      break;
    case "subject+body":
      text = s !== "" && b !== "" ? `${s}\n\n${b}` : s + b;
      break;
    default: {
      const never: never = mode;
      throw new Error(`unknown coverText mode ${String(never)}`);
    }
  }
  return text === "" ? undefined : truncateWithMarker(text);
}
