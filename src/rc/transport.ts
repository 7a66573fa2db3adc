/**
 * HTTP transport to RingCentral: undici with header and idle-body timeouts,
 * pacing per rate-limit group, the single 401 retry, bounded retries for
 * idempotent calls only, error parsing into typed errors and JSON validation.
 * Secrets (the static ones and every token issued) are scrubbed from any
 * error text; they never reach a log line.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { request, type Dispatcher } from "undici";
import type { z } from "zod";
import type { Logger } from "../log.js";
import { RcApiError, RcNetworkError, RcProtocolError, parseErrorBody, parseRetryAfter, type RateLimitInfo } from "./errors.js";
import type { Operation, RateGroup } from "./groups.js";
import { errCode, header, isAbortError, numHeader, parseJsonKeepingIds, type Headers, type Method, type RequestBody } from "./http-util.js";
import { DEFAULT_429_WAIT_MS, type Pacer } from "./pacing.js";

export interface RcCall {
  group: RateGroup;
  method: string;
  operation: string;
  /** HTTP status, 0 when the request got no answer. */
  status: number;
  durationMs: number;
}

export interface RcRetryOptions {
  /** Total tries for an idempotent call (default 3). */
  attempts: number;
  /** First backoff delay (default 500 ms), doubled per try, ±50 % jitter. */
  baseDelayMs: number;
  /** Backoff cap (default 10 s). */
  maxDelayMs: number;
  /** Do not retry internally when the server asks to wait longer than this (default 65 s). */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RcRetryOptions = { attempts: 3, baseDelayMs: 500, maxDelayMs: 10_000, maxWaitMs: 65_000 };

export interface CallSpec {
  operation: Operation;
  method: Method;
  url: URL;
  /** Built per attempt (streams can be read once). */
  body?: (() => Promise<RequestBody> | RequestBody) | undefined;
  /** Bearer (API calls) or Basic client auth (token endpoint). */
  auth: "bearer" | "basic";
  /** Retry on network errors, 5xx and 429. */
  idempotent: boolean;
  /** A 401 means "not processed": refresh/re-auth once and retry (bearer calls only). */
  retryOn401: boolean;
  signal?: AbortSignal | undefined;
}

export interface Exchange {
  status: number;
  headers: Headers;
  body: Dispatcher.ResponseData["body"];
  group: RateGroup;
}

/** Where bearer calls get their access token. */
export interface TokenSource {
  /** A valid access token, refreshing ahead of expiry. */
  accessToken(): Promise<string>;
  /** After a 401 with `used`: force the next accessToken() to refresh (unless already replaced). */
  invalidate(used: string): void;
}

const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);

/** Every token ever issued to us plus the static secrets: scrubbed from any error text. */
export class Secrets {
  private readonly values = new Set<string>();

  add(value: string | undefined): void {
    if (value !== undefined && value !== "") this.values.add(value);
  }

  scrub(text: string): string {
    let out = text.replace(/(access_token|refresh_token|assertion|token)=[^&\s"']+/gi, "$1=[redacted]");
    for (const s of this.values) if (s.length >= 4) out = out.split(s).join("[redacted]");
    return out;
  }
}

export interface TransportOptions {
  clientId: string;
  clientSecret: string;
  logger: Logger;
  now: () => number;
  timeoutMs: number;
  retry: RcRetryOptions;
  dispatcher: Dispatcher;
  pacer: Pacer;
  secrets: Secrets;
  onCall?: ((call: RcCall) => void) | undefined;
  /** Throws when the session is closed. */
  assertOpen: () => void;
}

export class RcTransport {
  private readonly o: TransportOptions;
  private readonly log: Logger;

  constructor(opts: TransportOptions) {
    this.o = opts;
    this.log = opts.logger;
  }

  scrub(text: string): string {
    return this.o.secrets.scrub(text);
  }

  async callJson<S extends z.ZodType>(spec: CallSpec, schema: S, tokens?: TokenSource): Promise<z.output<S>> {
    const res = await this.call(spec, tokens);
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text.trim() === "" ? {} : parseJsonKeepingIds(text);
    } catch (err) {
      throw new RcProtocolError({ operation: spec.operation, status: res.status, detail: "body is not JSON" }, { cause: err });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const detail = parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
        .join("; ");
      this.log.warn({ event: "rc.response_invalid", operation: spec.operation, detail }, "unexpected RingCentral response");
      throw new RcProtocolError({ operation: spec.operation, status: res.status, detail });
    }
    return parsed.data;
  }

  /** One logical call: auth, the single 401 retry, and bounded retries for idempotent calls. Returns a 2xx. */
  async call(spec: CallSpec, tokens?: TokenSource): Promise<Exchange> {
    this.o.assertOpen();
    const retry = this.o.retry;
    let attempt = 0;
    let reauthed = false;
    for (;;) {
      attempt++;
      let token: string | undefined;
      if (spec.auth === "bearer") {
        if (tokens === undefined) throw new Error("internal: bearer call without a token source");
        token = await tokens.accessToken();
      }
      let res: Exchange;
      try {
        res = await this.exchange(spec, token);
      } catch (err) {
        if (err instanceof RcNetworkError && spec.idempotent && attempt < retry.attempts) {
          const delay = this.backoff(attempt);
          this.log.debug(
            { event: "rc.retry", operation: spec.operation, attempt, delayMs: delay, reason: err.code ?? "network" },
            "retrying after network error",
          );
          await sleep(delay, undefined, spec.signal ? { signal: spec.signal } : undefined);
          continue;
        }
        throw err;
      }
      if (res.status >= 200 && res.status < 300) return res;

      if (res.status === 401 && token !== undefined && tokens !== undefined && spec.retryOn401 && !reauthed) {
        await res.body.dump();
        reauthed = true;
        attempt--; // the re-auth retry does not use the retry budget
        this.log.info({ event: "rc.auth.unauthorized", operation: spec.operation }, "401 from RingCentral; refreshing the token");
        tokens.invalidate(token);
        continue;
      }

      const err = await this.toApiError(spec, res);
      if (spec.idempotent && err.retryable && attempt < retry.attempts) {
        const wait = err.status === 429 ? 0 /* the group hold makes acquire() wait */ : (err.retryAfterMs ?? this.backoff(attempt));
        const serverWait = err.retryAfterMs ?? 0;
        if (serverWait <= retry.maxWaitMs && wait <= retry.maxWaitMs) {
          this.log.debug(
            { event: "rc.retry", operation: spec.operation, attempt, delayMs: Math.max(wait, serverWait), status: err.status },
            "retrying after HTTP error",
          );
          if (wait > 0) await sleep(wait, undefined, spec.signal ? { signal: spec.signal } : undefined);
          continue;
        }
      }
      throw err;
    }
  }

  /**
   * One HTTP exchange: wait for a slot in the operation's group, send, learn
   * rate-limit headers, hold the group on 429 / Remaining 0, log and count.
   */
  async exchange(spec: CallSpec, token: string | undefined): Promise<Exchange> {
    const pacer = this.o.pacer;
    const group = await pacer.acquire(spec.operation, spec.signal);
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": "faxbridge/0.1",
    };
    if (spec.auth === "bearer") {
      if (token === undefined) throw new Error("internal: bearer call without token");
      headers["authorization"] = `Bearer ${token}`;
    } else {
      headers["authorization"] = "Basic " + Buffer.from(`${this.o.clientId}:${this.o.clientSecret}`, "utf8").toString("base64");
    }
    const body = spec.body !== undefined ? await spec.body() : undefined;
    if (body !== undefined) {
      headers["content-type"] = body.contentType;
      if (body.contentLength !== undefined) headers["content-length"] = String(body.contentLength);
    }
    const started = this.o.now();
    let res: Dispatcher.ResponseData;
    try {
      res = await request(spec.url, {
        method: spec.method,
        headers,
        body: body?.body ?? null,
        dispatcher: this.o.dispatcher,
        signal: spec.signal ?? null,
        headersTimeout: this.o.timeoutMs,
        bodyTimeout: this.o.timeoutMs,
      });
    } catch (err) {
      body?.destroy?.();
      const durationMs = this.o.now() - started;
      this.record(group, spec, 0, durationMs);
      if (spec.signal?.aborted || isAbortError(err)) throw err;
      const code = errCode(err);
      throw new RcNetworkError(
        {
          operation: spec.operation,
          group,
          code,
          detail: this.scrub(err instanceof Error ? err.message : String(err)),
          maybeProcessed: code === undefined || !NOT_SENT_CODES.has(code),
        },
        { cause: err },
      );
    }
    const durationMs = this.o.now() - started;
    const resHeaders = res.headers as Headers;
    const reported = pacer.observe(spec.operation, group, res.statusCode, resHeaders);
    this.record(reported, spec, res.statusCode, durationMs);
    return { status: res.statusCode, headers: resHeaders, body: res.body, group: reported };
  }

  private backoff(attempt: number): number {
    const r = this.o.retry;
    const exp = Math.min(r.maxDelayMs, r.baseDelayMs * 2 ** (attempt - 1));
    return Math.round(exp * (0.5 + Math.random()));
  }

  private async toApiError(spec: CallSpec, res: Exchange): Promise<RcApiError> {
    let text = "";
    try {
      text = await res.body.text();
    } catch (err) {
      this.log.debug({ event: "rc.error_body_unreadable", operation: spec.operation, err: errCode(err) }, "error body unreadable");
    }
    const parsed = parseErrorBody(text);
    let retryAfterMs = parseRetryAfter(header(res.headers, "retry-after"), this.o.now());
    if (res.status === 429 && retryAfterMs === undefined) retryAfterMs = DEFAULT_429_WAIT_MS;
    const rateLimit: RateLimitInfo = {
      group: header(res.headers, "x-rate-limit-group"),
      limit: numHeader(res.headers, "x-rate-limit-limit"),
      remaining: numHeader(res.headers, "x-rate-limit-remaining"),
      windowSeconds: numHeader(res.headers, "x-rate-limit-window"),
    };
    const hasRateLimit = Object.values(rateLimit).some((v) => v !== undefined);
    return new RcApiError({
      status: res.status,
      errorCode: parsed.errorCode !== undefined ? this.scrub(parsed.errorCode) : undefined,
      serverMessage: parsed.message !== undefined ? this.scrub(parsed.message) : undefined,
      parameterName: parsed.parameterName,
      operation: spec.operation,
      group: res.group,
      retryAfterMs,
      rateLimit: hasRateLimit ? rateLimit : undefined,
    });
  }

  private record(group: RateGroup, spec: CallSpec, status: number, durationMs: number): void {
    this.log.debug({ event: "rc.call", group, operation: spec.operation, method: spec.method, status, durationMs }, "RingCentral call");
    if (this.o.onCall !== undefined) {
      try {
        this.o.onCall({ group, method: spec.method, operation: spec.operation, status, durationMs });
      } catch (err) {
        this.log.warn({ event: "rc.on_call_failed", err }, "onCall hook threw");
      }
    }
  }
}
