/**
 * The multipart/form-data body of a fax send (layout used by RingCentral's own
 * SDK and samples): first part `json` / `request.json` / application/json with
 * the request, then one `attachment` part per document, in order, each streamed
 * from disk.
 */
import fs from "node:fs";
import { randomBytes } from "node:crypto";
import { PassThrough, Readable } from "node:stream";
import FormData from "form-data";

import { distinctFilenames, extensionForMime, extensionOf, safeFilename } from "../fax/files.js";
import type { SendFaxRequest } from "../fax/model.js";

export type { FaxRecipient, SendFaxRequest } from "../fax/model.js";
export { safeFilename } from "../fax/files.js";

/** A document streamed from disk with fs.createReadStream. */
export interface FaxDocument {
  path: string;
  filename: string;
  contentType: string;
  size?: number;
}

/**
 * The names the documents are uploaded under: the one file-name rule
 * (src/fax/files.ts), made distinct. The outbound parser already gives
 * documents such names, so they are uploaded exactly as the report shows them.
 */
export function safeFilenames(docs: readonly FaxDocument[]): string[] {
  return distinctFilenames(docs.map((d, i) => safeFilename(d.filename, i + 1, extensionOf(d.filename) || extensionForMime(d.contentType))));
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
