import type { IncomingMessage, ServerResponse } from "node:http";
import { ACCOUNT_ID, EXTENSION_ID } from "./constants.js";

/**
 * An error answered to the client with RingCentral's error body shape:
 * `{ errorCode, message, errors: [{ errorCode, message, parameterName? }], parameterName? }`
 * (ApiErrorResponseModel / ParameterizedErrorResponseModel plus the top-level
 * fields real responses carry, NOTES §g).
 */
export class ApiFailure extends Error {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) {
    super(typeof body["message"] === "string" ? body["message"] : `HTTP ${status}`);
    this.name = "ApiFailure";
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

export interface ErrorParam {
  parameterName?: string;
  parameterValue?: string;
}

export function rcError(
  status: number,
  errorCode: string,
  message: string,
  param: ErrorParam = {},
  headers: Record<string, string> = {},
): ApiFailure {
  const item: Record<string, unknown> = { errorCode, message, ...param };
  const top: Record<string, unknown> = { errorCode, message, errors: [item] };
  if (param.parameterName !== undefined) top["parameterName"] = param.parameterName;
  return new ApiFailure(status, top, headers);
}

/** CMN-101 "Parameter [name] value is invalid." (400). */
export function invalidParam(name: string, value?: unknown): ApiFailure {
  const param: ErrorParam = { parameterName: name };
  if (value !== undefined) param.parameterValue = String(value).slice(0, 200);
  return rcError(400, "CMN-101", `Parameter [${name}] value is invalid.`, param);
}

/** CMN-102 "Resource for parameter [name] is not found" (404). */
export function notFound(name: string, value?: string): ApiFailure {
  const param: ErrorParam = { parameterName: name };
  if (value !== undefined) param.parameterValue = value;
  return rcError(404, "CMN-102", `Resource for parameter [${name}] is not found`, param);
}

/**
 * 403 for a resource of another extension the caller's user may not access,
 * as RingCentral answers it: top-level InsufficientPermissions with
 * `permissionName` (the operation's x-user-permission), item CMN-408.
 */
export function userPermissionDenied(permissionName: string): ApiFailure {
  const message = `In order to call this API endpoint, user needs to have [${permissionName}] permission for requested resource.`;
  return new ApiFailure(403, {
    errorCode: "InsufficientPermissions",
    message,
    permissionName,
    errors: [{ errorCode: "CMN-408", message, permissionName }],
  });
}

/** OAuth error body (spec response OauthInvalidRequest): RFC 6749 `error` plus `errors[]`. */
export function oauthError(status: number, error: string, errorCode: string, message: string): ApiFailure {
  return new ApiFailure(status, {
    error,
    error_description: message,
    errorCode,
    message,
    errors: [{ errorCode, message }],
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json; charset=UTF-8",
    "Content-Length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { "Content-Length": "0" });
  res.end();
}

/** Reads a small request body into memory, refusing more than `limit` bytes. */
export async function readSmallBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) throw rcError(413, "CMN-114", "Request body is too large");
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

export async function readJson(req: IncomingMessage, limit?: number): Promise<unknown> {
  const body = await readSmallBody(req, limit);
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    throw rcError(400, "CMN-103", "JSON can't be parsed.");
  }
}

export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const body = await readSmallBody(req, 64 * 1024);
  return new URLSearchParams(body.toString("utf8"));
}

export function mediaType(header: string | undefined): string {
  return (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/** Reads one parameter of a header value like `multipart/form-data; boundary="x"`. */
export function headerParam(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const re = new RegExp(`(?:^|;)\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]*))`, "i");
  const m = re.exec(header);
  if (!m) return undefined;
  return m[1] ?? m[2];
}

/** `/restapi/v1.0/account/~/extension/~/…` with `~` resolved to the caller's ids, as RingCentral returns URIs. */
export function resolvedPath(pathname: string, extensionId: string = EXTENSION_ID): string {
  return pathname
    .replace(/^(\/restapi\/v1\.0\/account\/)~(?=\/|$)/, `$1${ACCOUNT_ID}`)
    .replace(/^(\/restapi\/v1\.0\/account\/[^/]+\/extension\/)~(?=\/|$)/, `$1${extensionId}`);
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Parses an ISO 8601 date-time query/body value; undefined when absent, throws CMN-101 when malformed. */
export function parseDateParam(name: string, value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value === "") return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalidParam(name, value);
  return ms;
}
