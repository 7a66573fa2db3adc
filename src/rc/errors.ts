/**
 * Errors thrown by the RingCentral client. Callers branch on `instanceof` and on
 * `retryable` / `errorCode`, never on message text. Messages never contain a
 * token, the JWT or the client secret (the client scrubs server text first).
 */
import { errorBodySchema } from "./types.js";
import type { RateGroup } from "./groups.js";

export interface RateLimitInfo {
  group: string | undefined;
  limit: number | undefined;
  remaining: number | undefined;
  windowSeconds: number | undefined;
}

export interface RcApiErrorInit {
  status: number;
  errorCode: string | undefined;
  serverMessage: string | undefined;
  operation: string;
  group: RateGroup;
  retryAfterMs: number | undefined;
  rateLimit?: RateLimitInfo | undefined;
  parameterName?: string | undefined;
}

/** RingCentral answered with an HTTP error status. */
export class RcApiError extends Error {
  readonly status: number;
  readonly errorCode: string | undefined;
  readonly serverMessage: string | undefined;
  readonly parameterName: string | undefined;
  readonly operation: string;
  readonly group: RateGroup;
  /** True for 429 and 5xx: the same request may succeed later. False for 4xx. */
  readonly retryable: boolean;
  /** From Retry-After (or the 30 s RingCentral default on a 429 without one). */
  readonly retryAfterMs: number | undefined;
  readonly rateLimit?: RateLimitInfo;

  constructor(init: RcApiErrorInit, options?: ErrorOptions) {
    const code = init.errorCode !== undefined ? ` ${init.errorCode}` : "";
    const text = init.serverMessage !== undefined ? `: ${init.serverMessage}` : "";
    super(`RingCentral ${init.operation} failed: HTTP ${init.status}${code}${text}`, options);
    this.name = "RcApiError";
    this.status = init.status;
    this.errorCode = init.errorCode;
    this.serverMessage = init.serverMessage;
    this.parameterName = init.parameterName;
    this.operation = init.operation;
    this.group = init.group;
    this.retryable = isRetryableStatus(init.status);
    this.retryAfterMs = init.retryAfterMs;
    if (init.rateLimit !== undefined) this.rateLimit = init.rateLimit;
  }
}

/** The request never got an HTTP answer: connection refused/reset, DNS, timeout, body cut short. */
export class RcNetworkError extends Error {
  readonly retryable = true as const;
  readonly operation: string;
  readonly group: RateGroup;
  /** Low-level code (ECONNRESET, UND_ERR_HEADERS_TIMEOUT, …) when known. */
  readonly code: string | undefined;
  /**
   * False when the failure happened before any byte of the request could reach
   * RingCentral (DNS, connection refused, connect timeout). True means the
   * server may have processed it (e.g. a fax may have been accepted).
   */
  readonly maybeProcessed: boolean;

  constructor(
    init: { operation: string; group: RateGroup; code: string | undefined; detail: string; maybeProcessed: boolean },
    options?: ErrorOptions,
  ) {
    super(`RingCentral ${init.operation}: network error${init.code ? ` ${init.code}` : ""}: ${init.detail}`, options);
    this.name = "RcNetworkError";
    this.operation = init.operation;
    this.group = init.group;
    this.code = init.code;
    this.maybeProcessed = init.maybeProcessed;
  }
}

/** A 2xx answer whose body does not match the expected schema. Not retryable: the call took effect. */
export class RcProtocolError extends Error {
  readonly retryable = false as const;
  readonly operation: string;
  readonly status: number;
  constructor(init: { operation: string; status: number; detail: string }, options?: ErrorOptions) {
    super(`RingCentral ${init.operation}: unexpected response (HTTP ${init.status}): ${init.detail}`, options);
    this.name = "RcProtocolError";
    this.operation = init.operation;
    this.status = init.status;
  }
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** True when an ISync was refused because the sync token is no longer usable (MSG-333): run a new FSync. */
export function isSyncTokenInvalid(err: unknown): boolean {
  return err instanceof RcApiError && err.errorCode === "MSG-333";
}

export interface ParsedErrorBody {
  errorCode: string | undefined;
  message: string | undefined;
  parameterName: string | undefined;
}

/**
 * Read an error body: `errors[0].errorCode/message` first, then top-level
 * `errorCode/message`, then OAuth `error/error_description`.
 */
export function parseErrorBody(text: string): ParsedErrorBody {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON (an HTML error page from a proxy, an empty body): keep a short excerpt as the message.
    const trimmed = text.trim();
    return {
      errorCode: undefined,
      message: trimmed === "" ? undefined : trimmed.slice(0, 200),
      parameterName: undefined,
    };
  }
  const parsed = errorBodySchema.safeParse(json);
  if (!parsed.success) return { errorCode: undefined, message: undefined, parameterName: undefined };
  const b = parsed.data;
  const first = b.errors?.[0];
  return {
    errorCode: first?.errorCode ?? b.errorCode ?? b.error,
    message: first?.message ?? b.message ?? b.error_description,
    parameterName: first?.parameterName ?? b.parameterName,
  };
}

/**
 * Retry-After in ms: delta-seconds or an HTTP date. Undefined when absent or
 * unparsable.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
