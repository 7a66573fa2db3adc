import type { IncomingMessage } from "node:http";
import { PassThrough, type Readable } from "node:stream";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../log.js";
import {
  FAX_CONTENT_TYPES, FAX_EXTENSIONS, MAX_COVER_PAGE_TEXT, MAX_FAX_ATTACHMENT_BYTES,
  type FaxOutcome,
} from "./constants.js";
import { DocumentWriter } from "./files.js";
import { writeRendered, type RenderFormat } from "./render.js";
import { headerParam, invalidParam, mediaType, notFound, rcError, readJson } from "./http.js";
import { readMultipart, type PartHeaders } from "./multipart.js";
import {
  aggregateStatus, newNumericId, type MessageStore, type Recipient, type StoredAttachment,
  type StoredMessage,
} from "./store.js";

export type SendLayout = "form-data-json" | "form-data-fields" | "mixed" | "resend";

/** One accepted fax send, as listed by GET /emulator/sent-faxes. */
export interface SentFaxRecord {
  id: string;
  /** The extension that sent it (whose message store holds it). */
  extensionId: string;
  layout: SendLayout;
  to: { phoneNumber: string; name?: string }[];
  faxResolution: "High" | "Low";
  coverIndex: number | null;
  coverPageText: string | null;
  sendTime: string | null;
  isoCode: string | null;
  originalMessageId: string | null;
  attachments: { filename: string; contentType: string; size: number; sha256: string }[];
  receivedAt: string;
  /** When deleting the message cancelled the scheduled fax before its sendTime; it was never transmitted. */
  cancelledAt: string | null;
}

export interface FaxDeps {
  store: MessageStore;
  filesDir: string;
  /**
   * A fax stays Queued for `queuedMs` (after its sendTime, if any), then is
   * transmitted for `pageMs` per page, then every recipient reaches its final
   * status. RingCentral's FAQ: about a minute a page.
   */
  timings: FaxTimings;
  /** The format sent faxes are stored in (the extension's fax file format setting). */
  renderFormat: RenderFormat;
  outcomes: () => Readonly<Record<string, FaxOutcome>>;
  /** Told which number's scripted outcome a transmission used (a scripted sequence moves on to its next entry). */
  outcomeUsed?: (phoneNumber: string) => void;
  log: Logger;
  /** The list accepted sends are added to (one list shared by every extension, in order); default a list of its own. */
  sent?: SentFaxRecord[];
}

const FIELD_NAMES = new Set(["to", "faxResolution", "sendTime", "isoCode", "coverIndex", "coverPageText"]);
const E164 = /^\+?[1-9]\d{6,14}$/;

const EXT_TYPES: Record<string, string> = {
  pdf: "application/pdf", tif: "image/tiff", tiff: "image/tiff", gif: "image/gif", jpg: "image/jpeg",
  jpeg: "image/jpeg", png: "image/png", bmp: "image/bmp", txt: "text/plain", rtf: "application/rtf",
  doc: "application/msword", html: "text/html", htm: "text/html", csv: "text/csv", xml: "application/xml",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
};

export interface FaxTimings {
  queuedMs: number;
  pageMs: number;
}

interface Pending {
  timer: NodeJS.Timeout;
  /** Epoch ms of the fax's sendTime; deleting the message before then cancels the fax. */
  sendAt: number;
  record: SentFaxRecord;
}

interface RawRequest {
  to: { phoneNumber: string; name?: string }[] | undefined;
  faxResolution?: unknown;
  sendTime?: unknown;
  isoCode?: unknown;
  coverIndex?: unknown;
  coverPageText?: unknown;
}

interface Upload extends StoredAttachment {
  pages: number;
}

/** createFaxMessage: parses both multipart layouts, multipart/mixed and JSON resends; runs the status timeline. */
export class FaxService {
  readonly sent: SentFaxRecord[];
  private readonly deps: FaxDeps;
  private readonly pending = new Map<number, Pending>();

  constructor(deps: FaxDeps) {
    this.deps = deps;
    this.sent = deps.sent ?? [];
  }

  async send(req: IncomingMessage): Promise<StoredMessage> {
    const type = mediaType(req.headers["content-type"]);
    if (type === "application/json") return this.resend(await readJson(req));
    if (type !== "multipart/form-data" && type !== "multipart/mixed") {
      throw rcError(415, "CMN-415", "Unsupported Media Type");
    }
    const boundary = headerParam(req.headers["content-type"], "boundary");
    if (!boundary) throw rcError(400, "MSG-349", "Unable to parse fax envelope");
    const body = new PassThrough();
    req.pipe(body);
    const uploads: Upload[] = [];
    try {
      const parsed = await this.readParts(body, boundary, uploads);
      const layout: SendLayout = type === "multipart/mixed" ? "mixed" : parsed.json ? "form-data-json" : "form-data-fields";
      const raw = parsed.json ? jsonRequest(parsed.json) : fieldRequest(parsed.fields);
      if (uploads.length === 0) throw invalidParam("attachment");
      return await this.accept(raw, uploads, layout, null);
    } catch (err) {
      req.unpipe(body);
      req.resume();
      await Promise.all(uploads.map((u) => rm(u.path, { force: true })));
      throw err;
    }
  }

  private async readParts(
    body: Readable,
    boundary: string,
    uploads: Upload[],
  ): Promise<{ json: string | undefined; fields: Map<string, string[]> }> {
    let index = -1;
    let json: string | undefined;
    const fields = new Map<string, string[]>();
    let text: Buffer[] | undefined;
    let textTarget: "json" | string | undefined;
    let writer: DocumentWriter | undefined;
    let current: PartHeaders | undefined;
    let total = 0;

    const closePart = async (): Promise<void> => {
      if (writer && current) {
        const w = writer;
        writer = undefined;
        const done = await w.finish();
        const filename = current.filename ?? "";
        const upload: Upload = {
          id: newNumericId(),
          type: "SourceDocument",
          contentType: contentTypeOf(current),
          fileName: filename,
          size: done.size,
          sha256: done.sha256,
          path: w.path,
          pages: done.pages,
        };
        uploads.push(upload);
        if (done.size === 0) throw rcError(400, "MSG-347", "Attachment body is empty");
      } else if (text && textTarget !== undefined) {
        const value = Buffer.concat(text).toString("utf8");
        if (textTarget === "json") json = value;
        else fields.set(textTarget, [...(fields.get(textTarget) ?? []), value]);
      }
      text = undefined;
      textTarget = undefined;
      current = undefined;
    };

    try {
      for await (const ev of readMultipart(body, boundary)) {
        if (ev.kind === "part") {
          await closePart();
          index++;
          current = ev.part;
          if (index === 0 && ev.part.contentType === "application/json") {
            text = [];
            textTarget = "json";
          } else if (ev.part.name !== undefined && FIELD_NAMES.has(ev.part.name)) {
            text = [];
            textTarget = ev.part.name;
          } else {
            checkAttachmentPart(ev.part);
            writer = new DocumentWriter(this.deps.filesDir, isPdf(ev.part));
          }
        } else if (ev.kind === "data") {
          if (writer) {
            total += ev.chunk.length;
            if (total > MAX_FAX_ATTACHMENT_BYTES) throw rcError(400, "MSG-337", "Attachment size limit exceeded");
            await writer.write(ev.chunk);
          } else if (text) {
            const size = text.reduce((n, b) => n + b.length, 0) + ev.chunk.length;
            if (size > 1024 * 1024) throw rcError(400, "MSG-349", "Unable to parse fax envelope");
            text.push(ev.chunk);
          }
        } else {
          await closePart();
        }
      }
    } catch (err) {
      if (writer) {
        writer.abort();
        await rm(writer.path, { force: true });
      }
      throw err;
    }
    return { json, fields };
  }

  private async resend(body: unknown): Promise<StoredMessage> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalidParam("originalMessageId");
    const b = body as Record<string, unknown>;
    const originalId = b["originalMessageId"];
    if (typeof originalId !== "string" && typeof originalId !== "number") throw invalidParam("originalMessageId");
    const original = this.deps.store.get(Number(originalId));
    if (!original || original.availability === "Purged") throw notFound("originalMessageId", String(originalId));
    if (aggregateStatus(original) === "Queued") {
      throw rcError(406, "MSG-343", "Fax resend is not allowed for message in current state");
    }
    const to = b["to"] === undefined
      ? original.to.map((r) => (r.name === undefined ? { phoneNumber: r.phoneNumber } : { phoneNumber: r.phoneNumber, name: r.name }))
      : toList(b["to"]);
    const raw: RawRequest = { to, sendTime: b["sendTime"], faxResolution: original.faxResolution };
    if (original.coverIndex !== undefined) raw.coverIndex = original.coverIndex;
    if (original.coverPageText !== undefined) raw.coverPageText = original.coverPageText;
    const uploads: Upload[] = (original.sources ?? original.attachments).map((a) => ({
      ...a,
      id: newNumericId(),
      type: "SourceDocument",
      pages: Math.max(1, Math.round(original.documentPages / Math.max(1, (original.sources ?? original.attachments).length))),
    }));
    return this.accept(raw, uploads, "resend", String(original.id));
  }

  private async accept(raw: RawRequest, uploads: Upload[], layout: SendLayout, originalMessageId: string | null): Promise<StoredMessage> {
    const v = validate(raw);
    const now = Date.now();
    const recipients: Recipient[] = v.to.map((t, i) => {
      const r: Recipient = { recipientId: String(i + 1), phoneNumber: t.phoneNumber, messageStatus: "Queued" };
      if (t.name !== undefined) r.name = t.name;
      return r;
    });
    const id = newNumericId();
    const documentPages = Math.max(1, uploads.reduce((n, u) => n + u.pages, 0));
    // The message store keeps the fax as transmitted: one rendered document, not the uploads.
    const format = this.deps.renderFormat;
    const renderedPath = join(this.deps.filesDir, `rendered-${id}`);
    const rendered = await writeRendered(renderedPath, format, documentPages, `Fax ${id}`);
    const owner = this.deps.store.owner;
    const msg: StoredMessage = {
      id,
      type: "Fax",
      direction: "Outbound",
      from: { phoneNumber: owner.faxNumber, extensionId: owner.extensionId, extensionNumber: owner.extensionNumber, name: owner.name },
      to: recipients,
      creationTime: now,
      lastModifiedTime: now,
      readStatus: "Read",
      availability: "Alive",
      priority: "Normal",
      faxResolution: v.faxResolution,
      faxPageCount: 0,
      documentPages,
      attachments: [{
        id: newNumericId(),
        type: "RenderedDocument",
        contentType: rendered.contentType,
        fileName: `fax-${id}.${format === "pdf" ? "pdf" : "tif"}`,
        size: rendered.size,
        sha256: rendered.sha256,
        path: renderedPath,
      }],
      sources: uploads.map(({ pages: _pages, ...a }) => a),
    };
    if (v.coverIndex !== null) msg.coverIndex = v.coverIndex;
    if (v.coverPageText !== null) msg.coverPageText = v.coverPageText;
    const record: SentFaxRecord = {
      id: String(msg.id),
      extensionId: owner.extensionId,
      layout,
      to: v.to,
      faxResolution: v.faxResolution,
      coverIndex: v.coverIndex,
      coverPageText: v.coverPageText,
      sendTime: v.sendTime,
      isoCode: v.isoCode,
      originalMessageId,
      attachments: uploads.map((u) => ({ filename: u.fileName, contentType: u.contentType, size: u.size, sha256: u.sha256 })),
      receivedAt: new Date(now).toISOString(),
      cancelledAt: null,
    };
    this.sent.push(record);
    this.deps.store.add(msg);
    this.deps.log.info({ event: "emulator.fax.accepted", messageId: msg.id, extensionId: owner.extensionId, layout, recipients: v.to.length }, "fax accepted");
    const sendAt = v.sendTime === null ? now : Math.max(now, Date.parse(v.sendTime));
    const { queuedMs, pageMs } = this.deps.timings;
    const timer = setTimeout(() => this.transmitted(msg), sendAt - now + queuedMs + documentPages * pageMs);
    this.pending.set(msg.id, { timer, sendAt, record });
    return msg;
  }

  /** Transmission is over: every recipient gets its final status (default Sent). */
  private transmitted(msg: StoredMessage): void {
    this.pending.delete(msg.id);
    const outcomes = this.deps.outcomes();
    this.deps.store.update(msg, (m) => {
      m.faxPageCount = m.documentPages;
      for (const r of m.to) {
        const outcome = outcomes[r.phoneNumber];
        r.messageStatus = outcome?.messageStatus ?? "Sent";
        if (outcome !== undefined) this.deps.outcomeUsed?.(r.phoneNumber);
        if (outcome?.faxErrorCode !== undefined && (outcome.messageStatus === "SendingFailed" || outcome.messageStatus === "DeliveryFailed")) {
          r.faxErrorCode = outcome.faxErrorCode;
        }
      }
    });
    this.deps.log.info({ event: "emulator.fax.status", messageId: msg.id, messageStatus: aggregateStatus(msg) }, "fax status");
  }

  /**
   * A message changed: a scheduled fax whose message is deleted (or purged)
   * before its sendTime is cancelled, as RingCentral cancels it; it is never
   * transmitted and its recipients stay Queued.
   */
  onChange(msg: StoredMessage): void {
    const p = this.pending.get(msg.id);
    if (p === undefined || msg.availability === "Alive" || Date.now() >= p.sendAt) return;
    clearTimeout(p.timer);
    this.pending.delete(msg.id);
    p.record.cancelledAt = new Date().toISOString();
    this.deps.log.info({ event: "emulator.fax.cancelled", messageId: msg.id }, "scheduled fax cancelled by deleting its message");
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }
}

function extensionOf(filename: string): string {
  const dot = filename.lastIndexOf(".");
  return dot < 0 ? "" : filename.slice(dot + 1).toLowerCase();
}

function contentTypeOf(part: PartHeaders): string {
  const given = part.contentType;
  if (given && given !== "application/octet-stream") return given;
  return EXT_TYPES[extensionOf(part.filename ?? "")] ?? given ?? "application/octet-stream";
}

function isPdf(part: PartHeaders): boolean {
  return contentTypeOf(part) === "application/pdf";
}

/** MSG-350 / MSG-351 / MSG-348 checks made as soon as an attachment part's headers arrive. */
function checkAttachmentPart(part: PartHeaders): void {
  if (part.dispositionType === undefined) throw rcError(400, "MSG-350", "No content disposition");
  if (part.filename === undefined || part.filename.trim() === "") {
    throw rcError(400, "MSG-351", "No file name in content disposition");
  }
  const ext = extensionOf(part.filename);
  const type = part.contentType;
  if (!FAX_EXTENSIONS.has(ext) || (type !== undefined && type !== "" && !FAX_CONTENT_TYPES.has(type))) {
    throw rcError(415, "MSG-348", "Unsupported attachment media type");
  }
}

function toList(value: unknown): { phoneNumber: string; name?: string }[] {
  if (!Array.isArray(value)) throw invalidParam("to");
  return value.map((item: unknown) => {
    if (typeof item !== "object" || item === null) throw invalidParam("to", JSON.stringify(item));
    const o = item as Record<string, unknown>;
    const phone = o["phoneNumber"];
    if (typeof phone !== "string") throw invalidParam("to.phoneNumber", JSON.stringify(phone));
    const name = o["name"];
    if (name !== undefined && typeof name !== "string") throw invalidParam("to.name");
    return name === undefined ? { phoneNumber: phone } : { phoneNumber: phone, name };
  });
}

function jsonRequest(text: string): RawRequest {
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    throw rcError(400, "MSG-349", "Unable to parse fax envelope");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw rcError(400, "MSG-349", "Unable to parse fax envelope");
  }
  const b = body as Record<string, unknown>;
  return {
    to: b["to"] === undefined ? undefined : toList(b["to"]),
    faxResolution: b["faxResolution"],
    sendTime: b["sendTime"],
    isoCode: b["isoCode"],
    coverIndex: b["coverIndex"],
    coverPageText: b["coverPageText"],
  };
}

/** Layout A: one part per field, `to` repeated with bare numbers. */
function fieldRequest(fields: Map<string, string[]>): RawRequest {
  const one = (k: string): string | undefined => fields.get(k)?.[0];
  const to = fields.get("to");
  return {
    to: to?.map((t) => ({ phoneNumber: t.trim() })),
    faxResolution: one("faxResolution"),
    sendTime: one("sendTime"),
    isoCode: one("isoCode"),
    coverIndex: one("coverIndex"),
    coverPageText: one("coverPageText"),
  };
}

interface ValidRequest {
  to: { phoneNumber: string; name?: string }[];
  faxResolution: "High" | "Low";
  sendTime: string | null;
  isoCode: string | null;
  coverIndex: number | null;
  coverPageText: string | null;
}

function validate(raw: RawRequest): ValidRequest {
  if (!raw.to || raw.to.length === 0) throw invalidParam("to");
  const to = raw.to.map((t) => {
    const digits = t.phoneNumber.trim();
    if (!E164.test(digits)) throw invalidParam("to.phoneNumber", t.phoneNumber);
    const phoneNumber = digits.startsWith("+") ? digits : `+${digits}`;
    return t.name === undefined ? { phoneNumber } : { phoneNumber, name: t.name };
  });
  let faxResolution: "High" | "Low" = "Low";
  if (raw.faxResolution !== undefined && raw.faxResolution !== "") {
    if (raw.faxResolution !== "High" && raw.faxResolution !== "Low") throw invalidParam("faxResolution", raw.faxResolution);
    faxResolution = raw.faxResolution;
  }
  let sendTime: string | null = null;
  if (raw.sendTime !== undefined && raw.sendTime !== "" && raw.sendTime !== null) {
    if (typeof raw.sendTime !== "string" || Number.isNaN(Date.parse(raw.sendTime))) throw invalidParam("sendTime", raw.sendTime);
    sendTime = raw.sendTime;
  }
  let isoCode: string | null = null;
  if (raw.isoCode !== undefined && raw.isoCode !== "") {
    if (typeof raw.isoCode !== "string" || !/^[A-Za-z]{2}$/.test(raw.isoCode)) throw invalidParam("isoCode", raw.isoCode);
    isoCode = raw.isoCode.toUpperCase();
  }
  let coverIndex: number | null = null;
  if (raw.coverIndex !== undefined && raw.coverIndex !== "") {
    const n = typeof raw.coverIndex === "number" ? raw.coverIndex : typeof raw.coverIndex === "string" ? Number(raw.coverIndex) : NaN;
    // 0 = none, 1-13 (en-US), 15-28 (other languages) per FaxCoverPageInfo.
    if (!Number.isInteger(n) || n < 0 || n > 28 || n === 14) throw invalidParam("coverIndex", raw.coverIndex);
    coverIndex = n;
  }
  let coverPageText: string | null = null;
  if (raw.coverPageText !== undefined) {
    if (typeof raw.coverPageText !== "string" || raw.coverPageText.length > MAX_COVER_PAGE_TEXT) {
      throw invalidParam("coverPageText");
    }
    coverPageText = raw.coverPageText;
  }
  return { to, faxResolution, sendTime, isoCode, coverIndex, coverPageText };
}
