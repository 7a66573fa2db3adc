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
  from?: string | undefined;
  date?: Date | undefined;
  subject?: string | undefined;
  body: string;
  timeZone: string;
}

/** The text of the page faxed for a mail without attachments: a header block, a rule, then the text. */
export function renderBodyPage(input: BodyPageInput): string {
  const lines: string[] = [];
  if (input.from) lines.push(`From:    ${oneLine(input.from)}`);
  if (input.date && !Number.isNaN(input.date.getTime())) lines.push(`Date:    ${formatTime(input.date, input.timeZone)}`);
  if (input.subject) lines.push(`Subject: ${oneLine(input.subject)}`);
  if (lines.length === 0) return input.body;
  const width = Math.min(72, Math.max(...lines.map((l) => l.length)));
  return `${lines.join("\n")}\n${"=".repeat(width)}\n\n${input.body}`;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim().slice(0, 200);
}
