/**
 * The multipart/form-data body of a fax send (layout used by RingCentral's own
 * SDK and samples): first part `json` / `request.json` / application/json with
 * the request, then one `attachment` part per document, in order, each streamed
 * from disk.
 */
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { PassThrough, Readable } from "node:stream";
import FormData from "form-data";

import type { SendFaxRequest } from "../fax/model.js";

export type { FaxRecipient, SendFaxRequest } from "../fax/model.js";

/** A document streamed from disk with fs.createReadStream. */
export interface FaxDocument {
  path: string;
  filename: string;
  contentType: string;
  size?: number;
}

const EXTENSION_BY_TYPE: Readonly<Record<string, string>> = {
  "application/pdf": ".pdf",
  "image/tiff": ".tif",
  "image/png": ".png",
  "image/jpeg": ".jpg",
  "image/gif": ".gif",
  "image/bmp": ".bmp",
  "text/plain": ".txt",
  "text/html": ".html",
  "text/csv": ".csv",
  "application/rtf": ".rtf",
  "application/msword": ".doc",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
  "application/vnd.ms-excel": ".xls",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
  "application/vnd.ms-powerpoint": ".ppt",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
};

const MAX_BASE_LENGTH = 80;

function clean(s: string): string {
  return (
    s
      .normalize("NFKD")
      // drop combining marks left by NFKD (é → e)
      .replace(/[\u0300-\u036f]/g, "")
      // RingCentral rejects & and @#$%^* etc.; keep a conservative set
      .replace(/[^A-Za-z0-9._-]+/g, "_")
      .replace(/_+/g, "_")
  );
}

/**
 * A filename RingCentral accepts: the path stripped, every character outside
 * [A-Za-z0-9._-] replaced (so `&`, `@#$%^*`, spaces, quotes and non-ASCII go),
 * the extension kept (or derived from the content type when there is none),
 * length bounded.
 */
export function safeFilename(name: string, contentType?: string): string {
  const base = path.posix.basename(name.replace(/\\/g, "/"));
  const ext0 = path.posix.extname(base);
  const stem0 = ext0 === "" || ext0 === base ? base : base.slice(0, -ext0.length);
  let ext = clean(ext0.slice(1)).replace(/^[._]+|[._]+$/g, "").toLowerCase();
  let stem = clean(stem0).replace(/^[._-]+|[._-]+$/g, "");
  if (stem === "") stem = "document";
  if (stem.length > MAX_BASE_LENGTH) stem = stem.slice(0, MAX_BASE_LENGTH);
  if (ext === "" && contentType !== undefined) {
    const mime = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
    ext = (EXTENSION_BY_TYPE[mime] ?? "").slice(1);
  }
  if (ext.length > 10) ext = ext.slice(0, 10);
  return ext === "" ? stem : `${stem}.${ext}`;
}

/** Give every attachment a distinct safe name (RingCentral shows them by name). */
export function safeFilenames(docs: readonly FaxDocument[]): string[] {
  const seen = new Set<string>();
  return docs.map((d) => {
    const name = safeFilename(d.filename, d.contentType);
    let candidate = name;
    for (let i = 2; seen.has(candidate.toLowerCase()); i++) {
      const ext = path.posix.extname(name);
      candidate = `${name.slice(0, name.length - ext.length)}_${i}${ext}`;
    }
    seen.add(candidate.toLowerCase());
    return candidate;
  });
}

/** The JSON of the first part: only the fields RingCentral knows, nothing undefined. */
export function faxRequestJson(req: SendFaxRequest): string {
  const body: Record<string, unknown> = {
    to: req.to.map((r) => (r.name !== undefined ? { phoneNumber: r.phoneNumber, name: r.name } : { phoneNumber: r.phoneNumber })),
  };
  if (req.faxResolution !== undefined) body["faxResolution"] = req.faxResolution;
  if (req.coverIndex !== undefined) body["coverIndex"] = req.coverIndex;
  if (req.coverPageText !== undefined) body["coverPageText"] = req.coverPageText;
  if (req.sendTime !== undefined) body["sendTime"] = req.sendTime;
  if (req.isoCode !== undefined) body["isoCode"] = req.isoCode;
  return JSON.stringify(body);
}

export interface BuiltFaxBody {
  /** The multipart body; read it once. */
  body: Readable;
  /** Content-Type with boundary (from form.getHeaders()). */
  contentType: string;
  /** Total length when every part's size is known (always, since we stat the files). */
  contentLength: number | undefined;
  /** Names actually sent, in order. */
  filenames: string[];
  /** Close the file streams (call when the request failed before consuming the body). */
  destroy(): void;
}

/**
 * Build the body. File sizes come from `doc.size` or fs.stat, so Content-Length
 * is always known; files are streamed, never buffered whole.
 */
export async function buildFaxBody(req: SendFaxRequest, docs: readonly FaxDocument[], layout: FaxLayout = "form-data"): Promise<BuiltFaxBody> {
  const sizes = await Promise.all(
    docs.map(async (d) => (d.size !== undefined ? d.size : (await fs.promises.stat(d.path)).size)),
  );
  const filenames = safeFilenames(docs);
  if (layout === "mixed") return buildMixedBody(req, docs, sizes, filenames);
  const form = new FormData();
  form.append("json", faxRequestJson(req), { filename: "request.json", contentType: "application/json" });
  const files: fs.ReadStream[] = [];
  docs.forEach((d, i) => {
    const stream = fs.createReadStream(d.path);
    files.push(stream);
    form.append("attachment", stream, {
      filename: filenames[i] ?? "document",
      contentType: d.contentType,
      knownLength: sizes[i] ?? 0,
    });
  });
  const headers = form.getHeaders();
  const contentType = String(headers["content-type"] ?? "");
  let contentLength: number | undefined;
  try {
    contentLength = form.getLengthSync();
  } catch {
    // getLengthSync throws when a part has no known length; send chunked instead.
    contentLength = undefined;
  }
  // form-data is a legacy CombinedStream that undici does not treat as a Readable
  // (form-data#533): pipe it through a PassThrough, forwarding errors.
  const pass = new PassThrough();
  form.on("error", (err: Error) => pass.destroy(err));
  form.pipe(pass);
  return {
    body: pass,
    contentType,
    contentLength,
    filenames,
    destroy: () => {
      for (const f of files) f.destroy();
      pass.destroy();
    },
  };
}

/** form-data: multipart/form-data as RingCentral's SDKs send it; mixed: multipart/mixed as RingCentral's API guide shows it. */
export type FaxLayout = "form-data" | "mixed";

/**
 * multipart/mixed: the request JSON as the first part (application/json, no
 * name), then each document with `Content-Disposition: attachment; filename=…`.
 * Streamed from disk part by part; the length is known up front.
 */
function buildMixedBody(req: SendFaxRequest, docs: readonly FaxDocument[], sizes: number[], filenames: string[]): BuiltFaxBody {
  const boundary = `faxbridge-${randomBytes(16).toString("hex")}`;
  const json = Buffer.from(faxRequestJson(req), "utf8");
  const head = Buffer.from(`--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n`, "utf8");
  const partHeads = docs.map((d, i) =>
    Buffer.from(
      `\r\n--${boundary}\r\nContent-Type: ${d.contentType.replace(/[\r\n]/g, "")}\r\n` +
        `Content-Disposition: attachment; filename="${filenames[i] ?? "document"}"\r\n\r\n`,
      "utf8",
    ),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, "utf8");
  const contentLength = head.length + json.length + partHeads.reduce((n, b) => n + b.length, 0) + sizes.reduce((n, s) => n + s, 0) + tail.length;
  const files: fs.ReadStream[] = [];
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    yield json;
    for (const [i, d] of docs.entries()) {
      yield partHeads[i] as Buffer;
      const stream = fs.createReadStream(d.path);
      files.push(stream);
      for await (const chunk of stream) yield chunk as Buffer;
    }
    yield tail;
  }
  const body = Readable.from(parts(), { objectMode: false });
  return {
    body,
    contentType: `multipart/mixed; boundary=${boundary}`,
    contentLength,
    filenames,
    destroy: () => {
      for (const f of files) f.destroy();
      body.destroy();
    },
  };
}
