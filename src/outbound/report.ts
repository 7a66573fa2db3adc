/**
 * The sender report: one email per job telling the sender how the fax went.
 *
 * - Addressed to the envelope sender (MAIL FROM) of the original mail, not to
 *   From or Reply-To: like a delivery status notification, it goes where the
 *   submitting system said problems should go, and a forged From header
 *   cannot turn the gateway into a reflector. For mail clients the two are
 *   the same address.
 * - Sent with the null envelope sender (MAIL FROM:<>) and
 *   `Auto-Submitted: auto-replied`, so it can never start a mail loop.
 * - Threaded as a reply: `In-Reply-To: <original>`, `References: <original
 *   refs> <original>`.
 * - Its Message-ID is stable per (job, kind), so a report that is retried after
 *   a temporary failure is the same message (idempotent for the mailbox).
 * - The original documents are attached only when `fax.reportAttachDocuments`
 *   is on (documents may be PHI).
 * - `X-Faxbridge-*` headers carry the facts for machines.
 * - Not a reflector for attacker text: it goes to exactly one address, given
 *   to the transport as the envelope; the subject never carries a file name
 *   or text from the mail (only our own words); the body quotes at most
 *   ORIGINAL_SUBJECT_CHARS of the original subject and bounded file names,
 *   enough for the sender to recognise the mail.
 */
import { formatTime } from "../util/time.js";
import { basename } from "node:path";
import type { OutgoingMail } from "../mail/transport.js";
import { formatNumber } from "../fax/number.js";
import type { RecipientStatus } from "../store/outbound.js";
import { describeFaxError } from "./fax-errors.js";

export type ReportKind = "final" | "failed" | "accepted";

/** X-Faxbridge-Status values. */
export type ReportStatus = "delivered" | "partial" | "failed" | "refused" | "unknown" | "accepted" | "scheduled" | "cancelled";

export interface ReportDocument {
  /** The name the sender gave the file (or the name it was faxed under). */
  readonly name: string;
  readonly size: number;
  /** A local file with the document, when it is to be attached (fax.reportAttachDocuments). */
  readonly path?: string;
  readonly contentType: string;
}

export interface ReportInput {
  readonly kind: ReportKind;
  readonly queueId: string;
  /** Where the report goes: the envelope sender of the original mail. */
  readonly to: string;
  readonly recipients: readonly RecipientStatus[];
  readonly rcMessageId?: string;
  readonly pages?: number;
  readonly receivedAt: number;
  readonly submittedAt?: number;
  readonly completedAt?: number;
  /** Scheduled sending time (X-Fax-Send-Time), ISO 8601. */
  readonly sendTime?: string;
  readonly documents: readonly ReportDocument[];
  /** Parts of the mail that were not faxed, and why (inline signature art, quoted replies …). */
  readonly notFaxed?: readonly { readonly name: string; readonly reason: string }[];
  /** A scheduled fax deleted from RingCentral's message store before its send time (`faxbridge queue cancel`). */
  readonly cancelled?: boolean;
  readonly forwardOf?: string;
  /** The mail was refused before any fax was sent. */
  readonly refusal?: { readonly rule: string; readonly message: string; readonly filename?: string };
  /** The fax failed permanently without a per-recipient status (an API error, lost spool file …). */
  readonly failure?: { readonly code: string; readonly reason: string; readonly advice?: string };
  /** Per recipient: how many times it was dialled (fax.redial) and why a redial was not made. */
  readonly attempts?: readonly { readonly e164: string; readonly attempts: number; readonly note?: string }[];
  /** Status tracking ended without a final status (timeout, fax vanished). */
  readonly statusProblem?: string;
  readonly original: { readonly messageId?: string; readonly references: readonly string[]; readonly subject?: string };
}

export interface ReportOptions {
  /** `mail.from`: the From header of reports. */
  readonly from: string;
  readonly attachDocuments: boolean;
  /** `mail.timeZone`: the zone of every time shown (default UTC). */
  readonly timeZone?: string;
  /** The fax as RingCentral transmitted it (fax.reportTransmittedCopy), attached to final reports. */
  readonly transmittedCopy?: { readonly filename: string; readonly content: Buffer; readonly contentType: string };
}

export interface ComposedReport {
  readonly mail: OutgoingMail;
  readonly status: ReportStatus;
  readonly subject: string;
}

type Outcome = "delivered" | "sent" | "failed" | "unknown";

function outcomeOf(r: RecipientStatus): Outcome {
  switch (r.status) {
    case "Delivered":
      return "delivered";
    case "Sent":
      return "sent";
    case "SendingFailed":
    case "DeliveryFailed":
      return "failed";
    case "Queued":
    case "Unknown":
      return "unknown";
  }
}

function pagesText(pages: number | undefined): string {
  return pages === undefined ? "" : ` (${pages} page${pages === 1 ? "" : "s"})`;
}

/** How much of the original subject a report quotes. */
export const ORIGINAL_SUBJECT_CHARS = 120;
/** How much of a file name, and how many file names, a report quotes. */
const FILE_NAME_CHARS = 80;
const MAX_LISTED_DOCUMENTS = 20;
/** Longest free text (a refusal or failure reason) a report repeats. */
const REASON_CHARS = 400;

/** Text from the mail or from a rule, on one line and at most `max` characters (with "…" when cut). */
export function clip(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const one = s.replace(/[\u0000-\u001f\u007f\s]+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/**
 * The phrase after "Fax not sent: " for each parser/preflight rule. It goes
 * into the subject, so it names no file: the file name is the sender's (or
 * an attacker's) text, and it is told in the body.
 */
export function refusalPhrase(refusal: { rule: string; message: string; filename?: string }): string {
  const f = refusal.filename === undefined || refusal.filename === "" ? "a document" : "an attachment";
  switch (refusal.rule) {
    case "unsupported-type":
      return `${f} is not a supported file type`;
    case "mislabeled-type":
      return `${f} is not the file type its name says`;
    case "too-large":
      return `${f} is too large (50 MB per fax)`;
    case "empty-file":
      return `${f} is empty`;
    case "encrypted-pdf":
      return `${f} is password-protected`;
    case "tnef":
      return "the attachment is in Outlook Rich Text format (winmail.dat)";
    case "embedded-message":
      return `${f} is a forwarded email`;
    case "nothing-to-fax":
      return "the email has nothing to fax";
    case "invalid-header":
      return "an X-Fax header has an invalid value";
    case "invalid-address-option":
    case "conflicting-address-options":
      return "the fax options in the address are invalid";
    case "forward-with-attachments":
      return "X-Fax-Forward-Of cannot be combined with attachments";
    case "no-recipients":
      return "no fax recipient";
    case "malformed-message":
      return "the email could not be read";
    case "cover-text-too-long":
      return "the cover page text is too long";
    case "duplicate":
      return "the same email was already faxed";
    case "too-many-pages":
      return "the fax has too many pages";
    case "page-quota":
      return "the hourly page quota is reached";
    default:
      return "the email could not be faxed";
  }
}

function addressOf(from: string): string {
  const m = /<([^<>\s]+@[^<>\s]+)>/.exec(from);
  return m?.[1] ?? from.trim();
}

function domainOf(from: string): string {
  const addr = addressOf(from);
  const at = addr.lastIndexOf("@");
  const domain = at >= 0 ? addr.slice(at + 1) : "";
  return /^[A-Za-z0-9.-]+$/.test(domain) && domain !== "" ? domain : "faxbridge.invalid";
}

/** The stable Message-ID of a job's report of a kind ("final" and "failed" share one: a job gets one of them). */
export function reportMessageId(queueId: string, kind: ReportKind, from: string): string {
  const k = kind === "accepted" ? "accepted" : "report";
  return `<faxbridge.${k}.${queueId}@${domainOf(from)}>`;
}

function isoMinute(ms: number | undefined, timeZone: string): string | undefined {
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  return formatTime(ms, timeZone);
}

function isoString(value: string | undefined, timeZone: string): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? value : isoMinute(ms, timeZone);
}

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

interface RecipientLine {
  readonly number: string;
  readonly state: string;
  readonly advice?: string;
}

/** " after 3 attempts" when the recipient was redialled (fax.redial), else "". */
function attemptsText(input: Pick<ReportInput, "attempts">, e164: string): string {
  const n = input.attempts?.find((a) => a.e164 === e164)?.attempts ?? 1;
  return n > 1 ? ` after ${n} attempts` : "";
}

function withAttempts(input: ReportInput, r: RecipientStatus): RecipientLine {
  const line = recipientLine(r);
  const a = input.attempts?.find((x) => x.e164 === r.e164);
  const state = `${line.state}${attemptsText(input, r.e164)}`;
  const advice = a?.note !== undefined ? `${a.note}${line.advice !== undefined ? ` ${line.advice}` : ""}` : line.advice;
  return advice !== undefined ? { number: line.number, state, advice } : { number: line.number, state };
}

function recipientLine(r: RecipientStatus): RecipientLine {
  const number = formatNumber(r.e164);
  switch (outcomeOf(r)) {
    case "delivered":
      return { number, state: "delivered" };
    case "sent":
      return { number, state: "sent" };
    case "failed": {
      const e = describeFaxError(r.faxErrorCode);
      return { number, state: `failed: ${e.short}${r.faxErrorCode ? ` (${r.faxErrorCode})` : ""}`, advice: e.advice };
    }
    case "unknown":
      return { number, state: r.status === "Queued" ? "still queued at RingCentral" : "status unknown" };
  }
}

function summarise(input: ReportInput, timeZone: string): { status: ReportStatus; subject: string; headline: string } {
  const rs = input.recipients;
  const single = rs.length === 1 ? rs[0] : undefined;
  const target = single !== undefined ? formatNumber(single.e164) : `${rs.length} recipients`;
  const pages = pagesText(input.pages);

  if (input.cancelled === true) {
    return {
      status: "cancelled",
      subject: `Fax to ${target} cancelled`,
      headline: `Your scheduled fax to ${target} was cancelled at the gateway operator's request before it was sent: RingCentral deleted it and nothing was faxed.`,
    };
  }
  if (input.kind === "accepted") {
    const when = isoString(input.sendTime, timeZone);
    if (when !== undefined) {
      return { status: "scheduled", subject: `Fax to ${target} scheduled for ${when}`, headline: `Your fax to ${target} was accepted by RingCentral and will be sent at ${when}.` };
    }
    return { status: "accepted", subject: `Fax to ${target} accepted, sending`, headline: `Your fax to ${target} was accepted by RingCentral and is being sent. You will get another email when it is done.` };
  }
  if (input.refusal !== undefined) {
    const phrase = refusalPhrase(input.refusal);
    return { status: "refused", subject: `Fax not sent: ${phrase}`, headline: `Your email was not faxed: ${clip(input.refusal.message, REASON_CHARS)}` };
  }
  if (input.failure !== undefined) {
    return {
      status: "failed",
      subject: `Fax to ${target} not sent: ${clip(input.failure.reason, ORIGINAL_SUBJECT_CHARS)}`,
      headline: `Your fax to ${target} could not be sent: ${clip(input.failure.reason, REASON_CHARS)}.${input.failure.advice ? ` ${input.failure.advice}` : ""}`,
    };
  }

  const counts: Record<Outcome, number> = { delivered: 0, sent: 0, failed: 0, unknown: 0 };
  for (const r of rs) counts[outcomeOf(r)]++;
  const ok = counts.delivered + counts.sent;
  const status: ReportStatus =
    ok === rs.length ? "delivered" : counts.failed === rs.length ? "failed" : counts.unknown === rs.length ? "unknown" : ok > 0 ? "partial" : counts.unknown > 0 ? "unknown" : "failed";

  if (single !== undefined) {
    const line = recipientLine(single);
    switch (outcomeOf(single)) {
      case "delivered":
      case "sent":
        return { status, subject: `Fax to ${target} ${line.state}${pages}`, headline: `Your fax to ${target} was ${line.state}${pages}${attemptsText(input, single.e164)}.` };
      case "failed": {
        const e = describeFaxError(single.faxErrorCode);
        const tries = attemptsText(input, single.e164);
        return { status, subject: `Fax to ${target} failed: ${e.short}${tries}`, headline: `Your fax to ${target} failed: ${e.short}${tries}. ${e.advice}` };
      }
      case "unknown":
        return {
          status,
          subject: `Fax to ${target}: status unknown`,
          headline: `The gateway could not find out whether your fax to ${target} went through${input.statusProblem ? ` (${input.statusProblem})` : ""}. Check with the recipient before sending it again.`,
        };
    }
  }
  const parts: string[] = [];
  for (const k of ["delivered", "sent", "failed", "unknown"] as const) if (counts[k] > 0) parts.push(`${counts[k]} ${k}`);
  return { status, subject: `Fax to ${target}: ${parts.join(", ")}`, headline: `Your fax to ${target}: ${parts.join(", ")}${pages}.` };
}

/** Build the report email for a job. Pure apart from reading nothing: attachments are streamed by the transport. */
export function composeReport(input: ReportInput, opts: ReportOptions): ComposedReport {
  const tz = opts.timeZone ?? "UTC";
  const { status, subject, headline } = summarise(input, tz);
  const lines = input.recipients.map((r) => withAttempts(input, r));
  const facts: [string, string][] = [];
  if (input.pages !== undefined) facts.push(["Pages", String(input.pages)]);
  facts.push(["Received", isoMinute(input.receivedAt, tz) ?? ""]);
  const submitted = isoMinute(input.submittedAt, tz);
  if (submitted !== undefined) facts.push(["Submitted to RingCentral", submitted]);
  const scheduled = isoString(input.sendTime, tz);
  if (scheduled !== undefined) facts.push(["Scheduled for", scheduled]);
  const completed = isoMinute(input.completedAt, tz);
  if (completed !== undefined && input.kind !== "accepted") facts.push(["Completed", completed]);
  facts.push(["Queue id", input.queueId]);
  if (input.rcMessageId !== undefined) facts.push(["RingCentral message id", input.rcMessageId]);
  if (input.forwardOf !== undefined) facts.push(["Resent from RingCentral fax", input.forwardOf]);
  if (input.failure !== undefined) facts.push(["Error code", input.failure.code]);
  if (input.refusal !== undefined) facts.push(["Rule", input.refusal.rule]);
  if (input.original.subject !== undefined && input.original.subject !== "") facts.push(["Your email", clip(input.original.subject, ORIGINAL_SUBJECT_CHARS)]);
  const docs = input.documents.slice(0, MAX_LISTED_DOCUMENTS).map((d) => `${clip(d.name, FILE_NAME_CHARS)} (${sizeText(d.size)})`);
  if (input.documents.length > MAX_LISTED_DOCUMENTS) docs.push(`… and ${input.documents.length - MAX_LISTED_DOCUMENTS} more`);

  const text: string[] = [headline, ""];
  if (lines.length > 0 && input.refusal === undefined && input.cancelled !== true) {
    text.push("Recipients:");
    for (const l of lines) {
      text.push(`  ${l.number}: ${l.state}`);
      if (l.advice !== undefined && input.kind !== "accepted") text.push(`    ${l.advice}`);
    }
    text.push("");
  }
  if (docs.length > 0) {
    text.push(input.refusal === undefined ? "Documents faxed:" : "Documents:");
    for (const d of docs) text.push(`  ${d}`);
    text.push("");
  }
  const notFaxed = (input.notFaxed ?? []).slice(0, MAX_LISTED_DOCUMENTS).map((n) => `${clip(n.name, FILE_NAME_CHARS)}: ${n.reason}`);
  if (notFaxed.length > 0) {
    text.push("Not faxed:");
    for (const n of notFaxed) text.push(`  ${n}`);
    text.push("");
  }
  const width = Math.max(...facts.map(([k]) => k.length));
  for (const [k, v] of facts) text.push(`${`${k}:`.padEnd(width + 2)}${v}`);
  text.push("", "This is an automatic message from the fax gateway.");

  const html: string[] = [`<p>${escapeHtml(headline)}</p>`];
  if (lines.length > 0 && input.refusal === undefined && input.cancelled !== true) {
    html.push("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th align=\"left\">Recipient</th><th align=\"left\">Status</th></tr>");
    for (const l of lines) {
      const advice = l.advice !== undefined && input.kind !== "accepted" ? `<br><small>${escapeHtml(l.advice)}</small>` : "";
      html.push(`<tr><td>${escapeHtml(l.number)}</td><td>${escapeHtml(l.state)}${advice}</td></tr>`);
    }
    html.push("</table>");
  }
  if (docs.length > 0) {
    html.push(`<p>${input.refusal === undefined ? "Documents faxed" : "Documents"}:</p><ul>${docs.map((d) => `<li>${escapeHtml(d)}</li>`).join("")}</ul>`);
  }
  if (notFaxed.length > 0) html.push(`<p>Not faxed:</p><ul>${notFaxed.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`);
  html.push(`<table cellpadding="2">${facts.map(([k, v]) => `<tr><td>${escapeHtml(k)}:</td><td>${escapeHtml(v)}</td></tr>`).join("")}</table>`);
  html.push("<p><small>This is an automatic message from the fax gateway.</small></p>");

  const headers: Record<string, string> = {
    "Auto-Submitted": "auto-replied",
    "X-Auto-Response-Suppress": "All",
    "X-Faxbridge-Queue-Id": input.queueId,
    "X-Faxbridge-Status": status,
  };
  if (input.rcMessageId !== undefined) headers["X-Faxbridge-RC-Message-Id"] = input.rcMessageId;
  if (input.pages !== undefined) headers["X-Faxbridge-Pages"] = String(input.pages);
  if (input.refusal !== undefined) headers["X-Faxbridge-Rule"] = input.refusal.rule;
  if (input.failure !== undefined) headers["X-Faxbridge-Error-Code"] = input.failure.code;

  const mail: OutgoingMail = {
    messageId: reportMessageId(input.queueId, input.kind, opts.from),
    from: opts.from,
    to: input.to,
    subject,
    text: `${text.join("\n")}\n`,
    html: `<!doctype html><html><body>${html.join("\n")}</body></html>`,
    headers,
    envelope: { from: "", to: [input.to] },
  };
  const original = input.original.messageId;
  if (original !== undefined) {
    mail.inReplyTo = original;
    mail.references = [...input.original.references.flatMap((r) => r.split(/\s+/)).filter((r) => r !== "" && r !== original), original];
  }
  const attached = input.documents.flatMap((d) => (d.path === undefined ? [] : [{ ...d, path: d.path }]));
  if (opts.attachDocuments && input.kind !== "accepted" && attached.length > 0) {
    mail.attachments = attached.map((d) => ({ filename: d.name || basename(d.path), path: d.path, contentType: d.contentType }));
  }
  if (opts.transmittedCopy !== undefined && input.kind === "final") {
    const c = opts.transmittedCopy;
    mail.attachments = [...(mail.attachments ?? []), { filename: c.filename, content: c.content, contentType: c.contentType }];
  }
  return { mail, status, subject };
}

export type SuppressReason = "null-sender" | "mailer-daemon" | "auto-submitted" | "auto-response-suppress" | "report";

/**
 * Loop safety: why no report may go to this sender, or undefined when one may.
 * Never answer <>, mailer-daemon/postmaster, `Auto-Submitted` other than "no",
 * `X-Auto-Response-Suppress: All` (or AutoReply) or multipart/report mail.
 * (`Precedence: bulk` alone does not suppress: systems that fax invoices set it
 * and still want to know whether the fax went through.)
 */
export function suppressReason(
  envelopeSender: string,
  meta: { autoSubmitted?: string | undefined; xAutoResponseSuppress?: string | undefined; isReport?: boolean | undefined } | undefined,
): SuppressReason | undefined {
  if (envelopeSender.trim() === "") return "null-sender";
  const local = envelopeSender.slice(0, Math.max(0, envelopeSender.lastIndexOf("@"))).toLowerCase();
  if (["mailer-daemon", "postmaster", "mailer_daemon"].includes(local) || envelopeSender.toLowerCase() === "mailer-daemon") return "mailer-daemon";
  if (meta === undefined) return undefined;
  const auto = meta.autoSubmitted?.trim().toLowerCase();
  if (auto !== undefined && auto !== "" && !auto.startsWith("no")) return "auto-submitted";
  const suppress = (meta.xAutoResponseSuppress ?? "").split(",").map((s) => s.trim().toLowerCase());
  if (suppress.includes("all") || suppress.includes("autoreply")) return "auto-response-suppress";
  if (meta.isReport === true) return "report";
  return undefined;
}
