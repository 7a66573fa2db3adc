/**
 * What of a mail's body reaches the fax, and how the body looks when it is
 * the fax itself.
 *
 * - Quoted replies ("On … wrote:", "> …", Outlook's "-----Original Message-----"
 *   and "From: … Sent: …" blocks) and signatures ("-- ", "Sent from my …") are
 *   stripped with email-reply-parser when `fax.stripQuotes` is on, so a reply
 *   to a received fax does not fax the whole thread to the outside party.
 * - A mail with no attachment is faxed as a page with a From / Date / Subject
 *   block, then the text, named by its subject.
 */
import EmailReplyParser from "email-reply-parser";
import type { Headers } from "mailparser";
import { formatTime } from "../util/time.js";

const parser = new EmailReplyParser();

/** The body without quoted replies and signatures; the body as it was when nothing would be left. */
export function stripQuotedReply(body: string): string {
  if (body.trim() === "") return body;
  let visible: string;
  try {
    visible = parser.parseReply(body.replace(/\r\n/g, "\n"));
  } catch {
    return body;
  }
  // Outlook's separators, which email-reply-parser does not always know.
  const outlook = /^(?:-{2,}\s*Original Message\s*-{2,}|_{10,}\s*$|From:\s.+\n(?:Sent|Date):\s)/im.exec(visible);
  if (outlook) visible = visible.slice(0, outlook.index);
  const trimmed = visible.trim();
  return trimmed === "" ? body : trimmed;
}

export interface BodyPageInput {
  headers: Headers;
  body: string;
  timeZone: string;
}

/** The text of the page faxed for a mail without attachments: a header block, a rule, then the text. */
export function renderBodyPage(input: BodyPageInput): string {
  const lines: string[] = [];
  const from = fromText(input.headers);
  const date = dateHeader(input.headers);
  const subject = input.headers.get("subject");
  if (from) lines.push(`From:    ${oneLine(from)}`);
  if (date && !Number.isNaN(date.getTime())) lines.push(`Date:    ${formatTime(date, input.timeZone)}`);
  if (typeof subject === "string" && subject.trim() !== "") lines.push(`Subject: ${oneLine(subject)}`);
  if (lines.length === 0) return input.body;
  const width = Math.min(72, Math.max(...lines.map((l) => l.length)));
  return `${lines.join("\n")}\n${"=".repeat(width)}\n\n${input.body}`;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim().slice(0, 200);
}

/** The From header as written (display name and address), for the body page. */
function fromText(headers: Headers): string | undefined {
  const v = headers.get("from");
  if (v === undefined || typeof v !== "object" || v instanceof Date || Array.isArray(v) || !("value" in v) || !Array.isArray(v.value)) return undefined;
  const shown = v.value.map((a: { name?: string; address?: string }) => (a.name ? `${a.name} <${a.address ?? ""}>` : (a.address ?? ""))).filter((s: string) => s !== "");
  return shown.length > 0 ? shown.join(", ") : undefined;
}

function dateHeader(headers: Headers): Date | undefined {
  const v = headers.get("date");
  return v instanceof Date ? v : undefined;
}
