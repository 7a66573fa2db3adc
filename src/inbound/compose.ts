/**
 * The mail for a received fax: nodemailer options with the PDF attached from
 * its file (streamed by nodemailer, never buffered here), a stable Message-ID,
 * a Reply-To that faxes the sender back, and X-Faxbridge-* headers.
 */
import { formatTime } from "../util/time.js";
import type { OutgoingMail } from "../mail/transport.js";
import { extensionForMime } from "../fax/files.js";
import { formatNumber, parseFaxAddress } from "../fax/number.js";
import type { InboundFax } from "../store/inbound.js";

export interface DownloadedFile {
  readonly path: string;
  readonly contentType: string;
  readonly size: number;
}

export interface ComposeSettings {
  readonly from: string;
  readonly faxDomain: string;
  readonly defaultCountry: string;
  readonly subjectTemplate: string;
  readonly delivery: "attachment" | "link";
  /** `mail.timeZone` for the times shown (default UTC), to the second. */
  readonly timeZone?: string;
}

/** "2026-11-22T14:05:09.000Z" → "2026-11-22T1405Z" (file names). */
function compactUtc(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "unknown-time";
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}Z`;
}

/** "2026-11-22 14:05:09 UTC" (people), in `timeZone`. */
export function readableUtc(iso: string, timeZone = "UTC"): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return formatTime(d, timeZone);
}

function digits(n: string): string {
  return n.replace(/\D/g, "");
}

/** `fax-2026-11-22T1405Z-from-15551234567.pdf`, with `-2`, `-3` … for further documents. */
export function attachmentFilename(fax: InboundFax, index: number, contentType: string): string {
  const sender = digits(fax.message.from);
  const base = `fax-${compactUtc(fax.message.creationTime)}-from-${sender === "" ? "unknown" : sender}`;
  return `${base}${index === 0 ? "" : `-${index + 1}`}.${extensionForMime(contentType)}`;
}

/**
 * The address that faxes the sender back through our own SMTP side: the
 * digits without "+" when they read back as the same number in the default
 * country (the usual case), else "+digits" so no other country is assumed.
 * Undefined when the sender's number is withheld or unusable.
 */
export function replyToAddress(sender: string, faxDomain: string, defaultCountry: string): string | undefined {
  const d = digits(sender);
  if (d.length < 3) return undefined;
  const e164 = `+${d}`;
  const plain = parseFaxAddress(d, defaultCountry, "possible");
  if (plain.ok && plain.e164 === e164) return `${d}@${faxDomain}`;
  const intl = parseFaxAddress(e164, defaultCountry, "possible");
  return intl.ok ? `${e164}@${faxDomain}` : undefined;
}

function shownNumber(n: string): string {
  return n === "" ? "unknown sender" : formatNumber(n);
}

export function renderSubject(template: string, fax: InboundFax, timeZone = "UTC"): string {
  const m = fax.message;
  const pages = m.pages !== undefined && m.pages > 0 ? String(m.pages) : "?";
  const text = (m.pages === 1 ? template.replace("{pages} pages", "1 page") : template)
    .replaceAll("{from}", shownNumber(m.from))
    .replaceAll("{to}", m.to.map(formatNumber).join(", "))
    .replaceAll("{pages}", pages)
    .replaceAll("{received}", readableUtc(m.creationTime, timeZone));
  // A header line: no control characters.
  return text.replace(/[\r\n\t]+/g, " ").trim();
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);
}

export interface ComposeInput {
  readonly fax: InboundFax;
  readonly mailTo: readonly string[];
  readonly files: readonly DownloadedFile[];
  /** For link mode: the CLI hint and where the files are kept. */
  readonly storedDir?: string;
  /** For link mode with web.publicUrl: a signed, short-lived link to the fax in the web console (src/web/links.ts). */
  readonly link?: { readonly url: string; readonly expiresAt: number };
}

export function composeInboundMail(input: ComposeInput, settings: ComposeSettings): OutgoingMail {
  const { fax, files } = input;
  const m = fax.message;
  const subject = renderSubject(settings.subjectTemplate, fax, settings.timeZone);
  const replyTo = replyToAddress(m.from, settings.faxDomain, settings.defaultCountry);
  const rows: [string, string][] = [
    ["From", m.fromName !== undefined && m.fromName !== "" ? `${shownNumber(m.from)} (${m.fromName})` : shownNumber(m.from)],
    ["To", m.to.length > 0 ? m.to.map(formatNumber).join(", ") : "unknown"],
    ["Pages", m.pages !== undefined && m.pages > 0 ? String(m.pages) : "unknown"],
    ["Received", readableUtc(m.creationTime, settings.timeZone)],
    ["Resolution", m.resolution ?? "unknown"],
    ["RingCentral message id", fax.rcMessageId],
  ];
  const link = settings.delivery === "link";
  const intro = link
    ? "A fax was received. The document is not attached to this mail."
    : `A fax was received; the document is attached (${files.length === 1 ? "1 file" : `${files.length} files`}).`;
  const where = link
    ? input.link !== undefined
      ? [`Open it (sign-in may be needed): ${input.link.url}`, `The link works until ${new Date(input.link.expiresAt).toISOString().slice(0, 16).replace("T", " ")} UTC.`]
      : [
        `It is stored at RingCentral as message ${fax.rcMessageId} (extension ${fax.extension}).`,
        ...(input.storedDir !== undefined ? [`A copy is kept on the faxbridge server in ${input.storedDir}.`] : []),
        `List it with: faxbridge inbound list   (faxbridge id ${fax.id})`,
      ]
    : [];
  const replyHint = replyTo !== undefined ? `Reply to this mail with a document attached to fax it back to the sender.` : "";

  const text = [intro, "", ...rows.map(([k, v]) => `${k}: ${v}`), ...(where.length > 0 ? ["", ...where] : []), ...(replyHint ? ["", replyHint] : [])].join("\n") + "\n";
  const html =
    `<p>${escapeHtml(intro)}</p>\n<table>\n` +
    rows.map(([k, v]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("\n") +
    "\n</table>\n" +
    where.map((w) => `<p>${escapeHtml(w)}</p>`).join("\n") +
    (replyHint ? `<p>${escapeHtml(replyHint)}</p>\n` : "");

  const mail: OutgoingMail = {
    messageId: fax.mailMessageId,
    from: settings.from,
    to: [...input.mailTo],
    subject,
    text,
    html,
    date: new Date(m.creationTime).getTime() > 0 ? new Date(m.creationTime) : new Date(),
    headers: {
      "X-Faxbridge-Message-Id": fax.rcMessageId,
      "X-Faxbridge-From": m.from,
      "X-Faxbridge-To": m.to.join(", "),
      "X-Faxbridge-Pages": m.pages !== undefined ? String(m.pages) : "",
      "Auto-Submitted": "auto-generated",
    },
    attachments: link
      ? []
      : files.map((f, i) => ({ filename: attachmentFilename(fax, i, f.contentType), path: f.path, contentType: f.contentType.split(";")[0]?.trim() ?? f.contentType })),
  };
  if (replyTo !== undefined) mail.replyTo = replyTo;
  return mail;
}
