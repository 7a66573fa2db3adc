import type { Readable } from "node:stream";
import { rcError } from "./http.js";

/**
 * A small streaming MIME multipart reader for `multipart/form-data` and
 * `multipart/mixed`. busboy is not used here because it silently skips parts
 * without a `form-data` Content-Disposition, and RingCentral answers those
 * with MSG-350 and accepts `multipart/mixed`; the emulator must see every part.
 *
 * Memory stays bounded: part bodies are yielded in chunks as they arrive.
 */

export interface PartHeaders {
  /** Lower-cased header names. */
  headers: Record<string, string>;
  /** Content-Disposition type (`form-data`, `attachment`, `inline`), absent without the header. */
  dispositionType?: string;
  name?: string;
  /** `undefined` when the disposition has no filename parameter; may be "". */
  filename?: string;
  contentType?: string;
}

export type MultipartEvent =
  | { kind: "part"; part: PartHeaders }
  | { kind: "data"; chunk: Buffer }
  | { kind: "end" };

const MAX_HEADER_BYTES = 16 * 1024;

function envelopeError(): Error {
  return rcError(400, "MSG-349", "Unable to parse fax envelope");
}

export function parsePartHeaders(block: string): PartHeaders {
  const headers: Record<string, string> = {};
  for (const line of block.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const out: PartHeaders = { headers };
  const ct = headers["content-type"];
  if (ct !== undefined) out.contentType = ct.split(";")[0]?.trim().toLowerCase() ?? "";
  const cd = headers["content-disposition"];
  if (cd !== undefined) {
    out.dispositionType = (cd.split(";")[0] ?? "").trim().toLowerCase();
    const name = dispositionParam(cd, "name");
    if (name !== undefined) out.name = name;
    const filenameStar = dispositionParam(cd, "filename*");
    const filename = filenameStar !== undefined ? decodeRfc5987(filenameStar) : dispositionParam(cd, "filename");
    if (filename !== undefined) out.filename = filename;
  }
  return out;
}

function dispositionParam(value: string, key: string): string | undefined {
  const escaped = key.replace(/[*]/g, "\\*");
  const re = new RegExp(`;\\s*${escaped}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;]*))`, "i");
  const m = re.exec(value);
  if (!m) return undefined;
  if (m[1] !== undefined) return m[1].replace(/\\(.)/g, "$1");
  return (m[2] ?? "").trim();
}

function decodeRfc5987(value: string): string {
  const m = /^([^']*)'[^']*'(.*)$/.exec(value);
  if (!m) return value;
  try {
    return decodeURIComponent(m[2] ?? "");
  } catch {
    return m[2] ?? "";
  }
}

/**
 * Yields `part` (headers), then `data` chunks, for each part in order, and a final `end`.
 * Throws MSG-349 when the body is not a well-formed multipart document.
 */
export async function* readMultipart(body: Readable, boundary: string): AsyncGenerator<MultipartEvent> {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // A leading CRLF lets the first boundary match the same delimiter as the others.
  let buf: Buffer = Buffer.from("\r\n");
  type State = "preamble" | "afterBoundary" | "headers" | "body" | "done";
  let state = "preamble" as State;

  const advance = function* (final: boolean): Generator<MultipartEvent> {
    for (;;) {
      if (state === "preamble") {
        const i = buf.indexOf(delimiter);
        if (i < 0) {
          if (buf.length > delimiter.length) buf = buf.subarray(buf.length - delimiter.length);
          return;
        }
        buf = buf.subarray(i + delimiter.length);
        state = "afterBoundary";
      } else if (state === "afterBoundary") {
        if (buf.length < 2) return;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = "done";
          return;
        }
        const eol = buf.indexOf("\r\n");
        if (eol < 0) {
          if (buf.length > 1024) throw envelopeError();
          return;
        }
        buf = buf.subarray(eol + 2);
        state = "headers";
      } else if (state === "headers") {
        if (buf.subarray(0, 2).toString("latin1") === "\r\n") {
          // A part with no headers at all.
          buf = buf.subarray(2);
          yield { kind: "part", part: parsePartHeaders("") };
          state = "body";
          continue;
        }
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) {
          if (buf.length > MAX_HEADER_BYTES) throw envelopeError();
          return;
        }
        const block = buf.subarray(0, end).toString("utf8");
        buf = buf.subarray(end + 4);
        yield { kind: "part", part: parsePartHeaders(block) };
        state = "body";
      } else if (state === "body") {
        const i = buf.indexOf(delimiter);
        if (i >= 0) {
          if (i > 0) yield { kind: "data", chunk: buf.subarray(0, i) };
          buf = buf.subarray(i + delimiter.length);
          state = "afterBoundary";
          continue;
        }
        // Keep a tail that might be the start of a delimiter.
        const safe = buf.length - (delimiter.length - 1);
        if (safe > 0) {
          yield { kind: "data", chunk: buf.subarray(0, safe) };
          buf = buf.subarray(safe);
        }
        if (final) throw envelopeError();
        return;
      } else {
        return;
      }
    }
  };

  // A consumer that stops early (a 400 such as MSG-337 mid-upload) must not destroy the
  // request: that would close the socket under the error response still to be written.
  // The server drains what is left of the body instead.
  for await (const chunk of body.iterator({ destroyOnReturn: false })) {
    // After the closing delimiter the epilogue is read and dropped (not `break`,
    // which would destroy the source stream).
    if (state === "done") continue;
    buf = buf.length === 0 ? (chunk as Buffer) : Buffer.concat([buf, chunk as Buffer]);
    yield* advance(false);
  }
  const isDone = (): boolean => state === "done";
  if (!isDone()) {
    yield* advance(true);
    if (!isDone()) throw envelopeError();
  }
  yield { kind: "end" };
}
