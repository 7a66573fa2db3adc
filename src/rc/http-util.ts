/**
 * Small helpers shared by the RingCentral transport, pacing and API modules:
 * header reading, error codes, request bodies and id-preserving JSON.
 */
import type { Readable } from "node:stream";

export type Headers = Record<string, string | string[] | undefined>;

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestBody {
  body: string | Readable;
  contentType: string;
  contentLength?: number | undefined;
  /** Release resources when the body was never consumed. */
  destroy?: () => void;
}

export function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

export function numHeader(h: Headers, name: string): number | undefined {
  const v = header(h, name);
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export function errCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const c = (err as { code: unknown }).code;
    if (typeof c === "string") return c;
  }
  return undefined;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || errCode(err) === "ABORT_ERR");
}

/**
 * JSON.parse that keeps int64 ids exact: a bare integer of 16+ digits after an
 * id-like key is quoted first (JS numbers are exact only to 2^53).
 */
export function parseJsonKeepingIds(text: string): unknown {
  const quoted = text.replace(/((?<!\\)"(?:id|conversationId|recipientId|extensionId)"\s*:\s*)(\d{16,})(?=\s*[,}\]])/g, '$1"$2"');
  return JSON.parse(quoted) as unknown;
}

export function jsonBody(value: unknown): RequestBody {
  const text = JSON.stringify(value);
  return { body: text, contentType: "application/json", contentLength: Buffer.byteLength(text) };
}

export function formBody(fields: Record<string, string>): RequestBody {
  const text = new URLSearchParams(fields).toString();
  return { body: text, contentType: "application/x-www-form-urlencoded", contentLength: Buffer.byteLength(text) };
}
