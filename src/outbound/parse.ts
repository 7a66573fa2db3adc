import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { MailParser, type AttachmentStream, type HeaderLines, type Headers, type MessageText } from "mailparser";
import type { Config } from "../config/schema.js";
import { silentLogger, type Logger } from "../log.js";
import { errorMessage } from "../errors.js";
import { contentTypeHeader, firstAddress, headerStrings, mailMetaOf } from "../fax/meta.js";
import type { FaxDocumentFile, FaxEnvelope, FaxRecipient, FaxRefusal, FaxRequest, MailMeta } from "../fax/model.js";
import { mergeAddressOptions, parseHeaderOptions, type HeaderOptions } from "./parse-options.js";
import { distinctFilenames, extensionForMime, extensionOf, faxTypeForExtension, safeFilename } from "../fax/files.js";
import { renderBodyPage, stripQuotedReply } from "./cover.js";
import { signatureArtReason } from "./inline-images.js";
import { buildCoverText, htmlToPlainText, normaliseBody } from "./text.js";

/**
 * Mail → fax request: stream a spooled RFC 5322 message through mailparser,
 * write each attachment straight to a file (hashing and counting as it goes),
 * and build the RingCentral fax request from the envelope, the headers
 * (see ./parse-options.ts for the X-Fax-* syntax) and the config — or a
 * refusal with a sentence the sender notice can quote.
 *
 * Run `preflight()` (./preflight.ts) on the result before calling the API.
 */

export type {
  FaxAddressOptions,
  FaxDocumentFile,
  FaxEnvelope,
  FaxEnvelopeRecipient,
  FaxRecipient,
  FaxRefusal,
  FaxRequest,
  RefusalRule,
} from "../fax/model.js";

export interface ParsedFaxMail {
  /** The JSON part of RingCentral's fax request (createFaxMessage). */
  request: FaxRequest;
  documents: FaxDocumentFile[];
  /** X-Fax-Forward-Of: resend this RingCentral message instead of uploading documents. */
  forwardOf?: string;
  /** The mail's metadata (src/fax/meta.ts), its Reply-To and Date, and the parts deliberately left out of the fax. */
  meta: MailMeta & {
    /** Address of the first Reply-To mailbox. */
    replyTo?: string;
    /** Date header, ISO 8601; absent when missing or unparseable. */
    date?: string;
    /** Parts deliberately left out of the fax (inline images of an HTML body). */
    skipped: { filename: string; reason: string }[];
  };
}

export type ParseResult = { ok: true; mail: ParsedFaxMail } | { ok: false; refusal: FaxRefusal };

export interface ParseInput {
  rawPath: string;
  /**
   * Directory the documents are written into; must exist and belong to this
   * job (parsing again overwrites the same names). On refusal, files written
   * here are removed.
   */
  workDir: string;
  envelope: FaxEnvelope;
  config: Pick<Config["fax"], "coverText" | "coverIndex" | "resolution" | "skipInlineImages"> & Partial<Pick<Config["fax"], "isoCode" | "stripQuotes">>;
  /** `mail.timeZone`, for the Date on the body page (default UTC). */
  timeZone?: string;
  /** The current time, for X-Fax-Send-Time checks (tests pass a fixed one). */
  now?: Date;
  log?: Logger;
}

/** Counts and hashes bytes on their way to disk. */
class HashCounter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/** Thrown for failures writing into workDir: the caller should retry later, it is not the sender's fault. */
export class ExtractError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ExtractError";
  }
}

const TNEF_TYPES = new Set(["application/ms-tnef", "application/vnd.ms-tnef"]);

const TNEF_MESSAGE =
  "The attachment \"winmail.dat\" is in Microsoft's Rich Text (TNEF) format, which cannot be faxed: your Outlook is sending this mail as Rich Text. " +
  "Switch the message to HTML or plain text (in Outlook: Format Text > HTML, or File > Options > Mail > Compose messages in HTML) and send it again.";

/** The MIME type to upload a document as: the table's type for its extension, charset kept for text. */
function uploadContentType(filename: string, declared: string, charset: string | undefined): string {
  const type = faxTypeForExtension(extensionOf(filename));
  const mime = type?.mime ?? (declared || "application/octet-stream");
  return charset && mime.startsWith("text/") ? `${mime}; charset=${charset}` : mime;
}

interface Extracted extends FaxDocumentFile {
  cid?: string;
  related: boolean;
  isImage: boolean;
}

/** Cid references in an HTML body ("cid:logo@x" → "logo@x"). */
function referencedCids(html: string | undefined): Set<string> {
  const out = new Set<string>();
  if (!html) return out;
  for (const m of html.matchAll(/\bcid:([^'"\s>)]{1,256})/gi)) {
    const raw = m[1] ?? "";
    out.add(raw.toLowerCase());
    try {
      out.add(decodeURIComponent(raw).toLowerCase());
    } catch {
      // not valid percent-encoding: the raw form above is the reference
      continue;
    }
  }
  return out;
}

/**
 * Parse the spooled message at `input.rawPath` into a fax request.
 *
 * Memory stays flat in attachment size: attachments are streamed to files in
 * `workDir` (mailparser's streaming `MailParser`, one attachment at a time).
 * Text bodies are held in memory, as mailparser does.
 *
 * Cover text (`fax.coverText`): `body`, `subject`, `subject+body` or `none`;
 * trimmed, cut to 1024 characters ending in "… [truncated]", omitted when
 * empty. When the mail has no attachment, the body itself is faxed as
 * `message.txt` and is then not repeated on the cover page (`subject+body`
 * prints the subject only, `body` prints nothing).
 *
 * Throws (ExtractError) only when the raw file cannot be read or workDir cannot
 * be written; everything about the mail itself is a refusal.
 */
export async function parseFaxMail(input: ParseInput): Promise<ParseResult> {
  const log = input.log ?? silentLogger();
  const now = input.now ?? new Date();
  const written: string[] = [];
  const extracted: Extracted[] = [];
  let refusal: FaxRefusal | undefined;
  let headers: Headers | undefined;
  let headerLines: HeaderLines = [];
  let headerOptions: HeaderOptions | undefined;
  let text: MessageText | undefined;
  let index = 0;

  const parser = new MailParser({
    // Every message/rfc822 part stays an attachment so it is refused, never folded into the text.
    ignoreEmbedded: true,
    // We convert HTML ourselves (html-to-text with fax-friendly options), only when there is no plain text.
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
    checksumAlgo: false,
  });
  const source = createReadStream(input.rawPath);
  let sourceError: Error | undefined;
  source.on("error", (err) => {
    sourceError = err;
    parser.destroy(err);
  });
  parser.on("headers", (h: Headers) => {
    headers = h;
    const opts = parseHeaderOptions((name) => headerStrings(h, name), now);
    if (opts.ok) headerOptions = opts.options;
    else refusal ??= opts.refusal;
  });
  parser.on("headerLines", (lines: HeaderLines) => {
    headerLines = lines;
  });
  source.pipe(parser);

  try {
    for await (const item of parser as AsyncIterable<AttachmentStream | MessageText>) {
      if (item.type === "text") {
        text = item;
        continue;
      }
      const attachment = item;
      index += 1;
      const declared = attachment.contentType.toLowerCase();
      const name = attachment.filename;
      const shownName = name ?? `part ${attachment.partId ?? index} (${declared})`;
      let rejectReason: FaxRefusal | undefined;
      if (TNEF_TYPES.has(declared) || name?.toLowerCase() === "winmail.dat") {
        rejectReason = { rule: "tnef", message: TNEF_MESSAGE, filename: name ?? "winmail.dat" };
      } else if (declared === "message/rfc822" || declared === "message/global") {
        const what = name ? `"${name}"` : `Part ${attachment.partId ?? index} of the email`;
        rejectReason = {
          rule: "embedded-message",
          message: `${what}: a forwarded email (message/rfc822) cannot be faxed; attach the document itself instead of forwarding the email as an attachment.`,
          filename: shownName,
        };
      }
      if (rejectReason) refusal ??= rejectReason;
      if (refusal) {
        // Already refused: let the parser drain the rest without writing anything.
        attachment.content.resume();
        attachment.release?.();
        continue;
      }
      const ext = extensionOf(name ?? "") || extensionForMime(declared);
      const filename = safeFilename(name, index, ext);
      const path = join(input.workDir, `${String(index).padStart(3, "0")}-${filename}`);
      const counter = new HashCounter();
      written.push(path);
      try {
        await pipeline(attachment.content, counter, createWriteStream(path));
      } catch (err) {
        attachment.release?.();
        throw new ExtractError(`could not write attachment ${index} to ${path}: ${errorMessage(err)}`, { cause: err });
      }
      attachment.release?.();
      const charset = contentTypeHeader(attachment.headers)?.params["charset"];
      const doc: Extracted = {
        path,
        filename,
        contentType: uploadContentType(filename, declared, charset),
        size: counter.bytes,
        sha256: counter.hash.digest("hex"),
        related: attachment.related === true,
        isImage: declared.startsWith("image/"),
      };
      if (name !== undefined) doc.originalFilename = name;
      if (attachment.cid !== undefined) doc.cid = attachment.cid.toLowerCase();
      extracted.push(doc);
      log.debug({ event: "fax.parse.attachment", index, filename, size: doc.size }, "attachment extracted");
    }
  } catch (err) {
    source.destroy(); // `pipe` does not close the file when the parser fails
    await removeAll(written, log);
    if (err instanceof ExtractError) throw err;
    if (sourceError) throw new ExtractError(`could not read ${input.rawPath}: ${errorMessage(sourceError)}`, { cause: sourceError });
    log.warn({ event: "fax.parse.malformed", err }, "message could not be parsed");
    return {
      ok: false,
      refusal: { rule: "malformed-message", message: `The email could not be read as a MIME message (${errorMessage(err)}).` },
    };
  }

  const result = refusal
    ? ({ ok: false, refusal } as const)
    : await finish(input, { headers: headers ?? new Map(), headerLines, headerOptions: headerOptions ?? {} }, text, extracted, log);
  if (!result.ok) await removeAll(written, log);
  return result;
}

async function removeAll(paths: readonly string[], log: Logger): Promise<void> {
  for (const p of paths) {
    try {
      await rm(p, { force: true });
    } catch (err) {
      log.warn({ event: "fax.parse.cleanup_failed", path: p, err }, "could not remove extracted file");
    }
  }
}

interface ParsedHeaders {
  headers: Headers;
  headerLines: HeaderLines;
  headerOptions: HeaderOptions;
}

async function finish(
  input: ParseInput,
  parsed: ParsedHeaders,
  text: MessageText | undefined,
  extracted: Extracted[],
  log: Logger,
): Promise<ParseResult> {
  const h = parsed.headers;
  const headerOptions = { options: parsed.headerOptions };
  const config = input.config;
  const addressOptions = mergeAddressOptions(input.envelope);
  if (!addressOptions.ok) return addressOptions;

  // Body: the plain text part, or the HTML converted when there is no plain text.
  const plain = normaliseBody(text?.text ?? "");
  const fullBody = plain !== "" ? plain : text?.html ? normaliseBody(htmlToPlainText(text.html)) : "";
  // Quoted replies and signatures are not faxed (fax.stripQuotes, default on).
  const body = config.stripQuotes === false ? fullBody : stripQuotedReply(fullBody);
  const skipped: { filename: string; reason: string }[] = [];
  if (body !== fullBody) skipped.push({ filename: "quoted reply and signature in the email text", reason: "removed (fax.stripQuotes)" });

  // Inline images of an HTML body are faxed unless they look like signature art (src/outbound/inline-images.ts).
  const cids = referencedCids(text?.html);
  const documents: FaxDocumentFile[] = [];
  for (const doc of extracted) {
    const belongsToHtml = doc.related || (doc.cid !== undefined && cids.has(doc.cid));
    const artReason = config.skipInlineImages && doc.isImage && belongsToHtml ? await signatureArtReason(doc) : undefined;
    if (artReason !== undefined) {
      skipped.push({ filename: doc.originalFilename ?? doc.filename, reason: artReason });
      try {
        await rm(doc.path, { force: true });
      } catch (err) {
        log.warn({ event: "fax.parse.cleanup_failed", path: doc.path, err }, "could not remove skipped inline image");
      }
      continue;
    }
    const { cid: _cid, related: _related, isImage: _isImage, ...file } = doc;
    documents.push(file);
  }
  // The names are the ones uploaded and the ones the report lists: distinct, as RingCentral shows documents by name.
  distinctFilenames(documents.map((d) => d.filename)).forEach((name, i) => {
    (documents[i] as FaxDocumentFile).filename = name;
  });

  const forwardOf = headerOptions.options.forwardOf;
  if (forwardOf !== undefined && documents.length > 0) {
    return {
      ok: false,
      refusal: {
        rule: "forward-with-attachments",
        message: `X-Fax-Forward-Of resends the existing fax ${forwardOf}; it cannot be combined with attachments. Remove the attachments, or remove the header to send them as a new fax.`,
        filename: documents[0]?.originalFilename ?? documents[0]?.filename ?? "",
      },
    };
  }

  let bodyIsDocument = false;
  if (forwardOf === undefined && documents.length === 0) {
    if (body === "") {
      return {
        ok: false,
        refusal: {
          rule: "nothing-to-fax",
          message: "The email has nothing to fax: no attachment and no text in the body. Attach a document (PDF, Word, image …) or write the text in the body.",
        },
      };
    }
    const page = renderBodyPage({ headers: h, body, timeZone: input.timeZone ?? "UTC" });
    documents.push(await writeBodyDocument(input.workDir, page, headerStrings(h, "subject")[0]));
    bodyIsDocument = true;
  }

  const subject = headerStrings(h, "subject")[0];
  const coverText = buildCoverText(config.coverText, subject, bodyIsDocument ? undefined : body);

  const to = input.envelope.rcptTo.map((r) => {
    const recipient: FaxRecipient = { phoneNumber: r.e164 };
    const name = r.options?.name?.trim();
    if (name) recipient.name = name;
    return recipient;
  });
  const request: FaxRequest = {
    to,
    faxResolution: addressOptions.options.resolution ?? headerOptions.options.resolution ?? config.resolution,
  };
  const cover = addressOptions.options.coverIndex ?? headerOptions.options.coverIndex ?? (config.coverIndex >= 0 ? config.coverIndex : undefined);
  if (cover !== undefined) request.coverIndex = cover;
  if (coverText !== undefined) request.coverPageText = coverText;
  if (headerOptions.options.sendTime !== undefined) request.sendTime = headerOptions.options.sendTime;
  const isoCode = headerOptions.options.isoCode ?? (config.isoCode ? config.isoCode : undefined);
  if (isoCode !== undefined) request.isoCode = isoCode;

  const mail: ParsedFaxMail = { request, documents, meta: { ...mailMetaOf(h), skipped } };
  if (forwardOf !== undefined) mail.forwardOf = forwardOf;
  const replyTo = firstAddress(h, "reply-to");
  if (replyTo) mail.meta.replyTo = replyTo;
  const date = rawDate(parsed.headerLines);
  if (date) mail.meta.date = date;

  log.info(
    { event: "fax.parsed", documents: documents.length, skipped: skipped.length, recipients: to.length, forwardOf },
    "mail parsed into a fax request",
  );
  return { ok: true, mail };
}

/** The Date header as ISO 8601, read from the raw line (mailparser substitutes "now" for a bad date). */
function rawDate(lines: HeaderLines): string | undefined {
  const line = lines.find((l) => l.key === "date")?.line;
  if (line === undefined) return undefined;
  const value = line.slice(line.indexOf(":") + 1).replace(/\s+/g, " ").trim();
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

/** The body as a UTF-8 text document; a BOM marks it as UTF-8 when it is not plain ASCII. */
/** The body page is named by the mail's subject ("Invoice 42.txt"); message.txt without one. */
async function writeBodyDocument(workDir: string, body: string, subject?: string): Promise<FaxDocumentFile> {
  const path = join(workDir, "000-message.txt");
  // eslint-disable-next-line no-control-regex
  const bom = /[^\x00-\x7f]/.test(body) ? "\uFEFF" : "";
  const bytes = Buffer.from(`${bom}${body.replace(/\n/g, "\r\n")}\r\n`, "utf8");
  try {
    await writeFile(path, bytes);
  } catch (err) {
    throw new ExtractError(`could not write the body document to ${path}: ${errorMessage(err)}`, { cause: err });
  }
  return {
    path,
    filename: subject !== undefined && /[\p{L}\p{N}]/u.test(subject) ? safeFilename(`${subject.replace(/[./\\]/g, " ").trim()}.txt`, 0, "txt") : "message.txt",
    contentType: "text/plain; charset=utf-8",
    size: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}
