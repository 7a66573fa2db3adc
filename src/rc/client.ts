/**
 * RingCentral REST client for faxbridge: JWT auth with refresh, per-group
 * rate limiting, fax send/resend, message store, message sync, attachment
 * download, subscriptions and the WebSocket token.
 *
 * - Every JSON response is validated with zod (src/rc/types.ts).
 * - Only idempotent calls are retried here (network errors, 5xx, 429). A fax
 *   POST is never retried, except once after a 401 (not processed): the
 *   durable queue decides from the typed error.
 * - Secrets never reach a log line or an error message.
 */
import fs from "node:fs";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request, type Dispatcher } from "undici";
import type { z } from "zod";
import type { Logger } from "../log.js";
import {
  RcApiError,
  RcNetworkError,
  RcProtocolError,
  parseErrorBody,
  parseRetryAfter,
  type RateLimitInfo,
} from "./errors.js";
import { OPERATION_GROUPS, parseGroupHeader, type Operation, type RateGroup } from "./groups.js";
import { DEFAULT_RATE_LIMITS, RateLimiters, type GroupState, type RateLimitConfig } from "./limiter.js";
import type { StoredToken, TokenStore } from "./token-file.js";
import { buildFaxBody, type FaxDocument, type FaxLayout, type FaxRecipient, type SendFaxRequest } from "./multipart.js";
import {
  coverPageListSchema,
  faxResponseSchema,
  messageInfoSchema,
  messageListSchema,
  messageSyncSchema,
  subscriptionInfoSchema,
  tokenInfoSchema,
  wsTokenSchema,
  type FaxResponse,
  type MessageInfo,
  type MessageSyncResult,
  type SubscriptionInfo,
  type TokenInfo,
  type WsToken,
} from "./types.js";

export type { RateGroup } from "./groups.js";
export type { FaxDocument, FaxRecipient, SendFaxRequest } from "./multipart.js";
export type { FaxResponse, MessageInfo, MessageSyncResult, SubscriptionInfo, MessageAttachment } from "./types.js";

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

export interface RcClientOptions {
  serverUrl: string;
  clientId: string;
  clientSecret: string;
  jwt: string;
  logger: Logger;
  /** Assumed until X-Rate-Limit-* headers say otherwise. */
  rateLimits?: RateLimitConfig;
  /** Header and idle-body timeout per request (default 60 s). */
  requestTimeoutMs?: number;
  /** Body layout of a fax send (default form-data). */
  faxLayout?: FaxLayout;
  /** For metrics and call counting; called once per HTTP exchange. */
  onCall?: (call: RcCall) => void;
  /** undici dispatcher. When given, it stays the caller's (close() does not close it). */
  dispatcher?: Dispatcher;
  now?: () => number;
  retry?: Partial<RcRetryOptions>;
  /**
   * Keeps the token pair across restarts (src/rc/token-file.ts). With one,
   * close() keeps the session for the next run instead of revoking it.
   */
  tokenStore?: TokenStore;
  /** Told when RingCentral refuses the credentials at login, and when a login succeeds again. */
  onAuthResult?: (result: { ok: true } | { ok: false; status: number; errorCode: string | undefined }) => void;
  /**
   * Extra origins attachment content may be fetched from with the Bearer token
   * (ringcentral.mediaOrigins), besides the server's origin and https *.ringcentral.com.
   */
  mediaOrigins?: readonly string[];
}

export interface ListMessagesQuery {
  messageType?: string[];
  direction?: ("Inbound" | "Outbound")[];
  availability?: ("Alive" | "Deleted" | "Purged")[];
  readStatus?: ("Read" | "Unread")[];
  dateFrom?: string;
  dateTo?: string;
  page?: number;
  perPage?: number;
  phoneNumber?: string;
  conversationId?: string;
  distinctConversations?: boolean;
}

export type SyncQuery =
  | {
      syncType: "FSync";
      dateFrom?: string;
      dateTo?: string;
      messageType?: string[];
      direction?: string[];
      recordCount?: number;
    }
  | { syncType: "ISync"; syncToken: string };

export interface CreateSubscriptionRequest {
  eventFilters: string[];
  expiresIn: number;
  deliveryMode: { transportType: "WebHook"; address: string; verificationToken?: string };
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

interface RequestBody {
  body: string | Readable;
  contentType: string;
  contentLength?: number | undefined;
  /** Release resources when the body was never consumed. */
  destroy?: () => void;
}

interface CallSpec {
  operation: Operation;
  method: Method;
  url: URL;
  /** Built per attempt (streams can be read once). */
  body?: () => Promise<RequestBody> | RequestBody;
  /** Bearer (API calls) or Basic client auth (token endpoint). */
  auth: "bearer" | "basic";
  /** Retry on network errors, 5xx and 429. */
  idempotent: boolean;
  /** A 401 means "not processed": refresh/re-auth once and retry (bearer calls only). */
  retryOn401: boolean;
  signal?: AbortSignal | undefined;
}

interface Exchange {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData["body"];
  group: RateGroup;
}

/** The token pair held (same shape as the stored one). `scopes`: TokenInfo.scope split, when RingCentral said. */
type TokenState = StoredToken;

const DEFAULT_RETRY: RcRetryOptions = { attempts: 3, baseDelayMs: 500, maxDelayMs: 10_000, maxWaitMs: 65_000 };
/** Retry-After default for a 429 without one (RingCentral docs). */
const DEFAULT_429_WAIT_MS = 30_000;
const NOT_SENT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function header(h: Exchange["headers"], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function numHeader(h: Exchange["headers"], name: string): number | undefined {
  const v = header(h, name);
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function errCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const c = (err as { code: unknown }).code;
    if (typeof c === "string") return c;
  }
  return undefined;
}

function isAbortError(err: unknown): boolean {
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

/** Counts bytes and fails the stream when it ends short of / past Content-Length. */
class LengthCheck extends Transform {
  private seen = 0;
  private readonly expected: number;
  private readonly operation: string;
  constructor(expected: number, operation: string) {
    super();
    this.expected = expected;
    this.operation = operation;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.expected) {
      cb(this.mismatch());
      return;
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    cb(this.seen === this.expected ? null : this.mismatch());
  }
  private mismatch(): RcNetworkError {
    return new RcNetworkError({
      operation: this.operation,
      group: "Medium",
      code: "CONTENT_LENGTH_MISMATCH",
      detail: `body length ${this.seen} does not match Content-Length ${this.expected}`,
      maybeProcessed: true,
    });
  }
}

export class RingCentralClient {
  private readonly base: URL;
  private readonly basePath: string;
  private readonly opts: RcClientOptions;
  private readonly log: Logger;
  private readonly limiters: RateLimiters;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly retry: RcRetryOptions;
  private token: TokenState | undefined;
  private authFlight: Promise<TokenState> | undefined;
  /** Every token ever issued to us plus the static secrets: scrubbed from any error text. */
  private readonly secrets = new Set<string>();
  private closed = false;
  /** Groups learned from X-Rate-Limit-Group where they differ from the spec's. */
  private readonly groupOf = new Map<Operation, RateGroup>();
  /** Per group: the hold end already announced at warn (one line per hold, not per waiting call). */
  private readonly holdWarned = new Map<RateGroup, number>();
  private readonly mediaOrigins: ReadonlySet<string>;

  constructor(opts: RcClientOptions) {
    this.opts = opts;
    this.base = new URL(opts.serverUrl);
    this.basePath = this.base.pathname.replace(/\/+$/, "");
    this.log = opts.logger.child({ module: "rc" });
    this.now = opts.now ?? Date.now;
    this.limiters = new RateLimiters(opts.rateLimits ?? DEFAULT_RATE_LIMITS, {
      now: this.now,
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    });
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.retry = { ...DEFAULT_RETRY, ...(opts.retry ?? {}) };
    if (opts.dispatcher !== undefined) {
      this.dispatcher = opts.dispatcher;
      this.ownsDispatcher = false;
    } else {
      this.dispatcher = new Agent({ keepAliveTimeout: 30_000 });
      this.ownsDispatcher = true;
    }
    for (const s of [opts.clientSecret, opts.jwt]) if (s !== "") this.secrets.add(s);
    this.mediaOrigins = new Set((opts.mediaOrigins ?? []).map((o) => new URL(o).origin));
    this.adoptStored();
  }

  /** Take the stored token pair when it is still usable (access token or refresh token alive). */
  private adoptStored(): boolean {
    let t: StoredToken | undefined;
    try {
      t = this.opts.tokenStore?.load();
    } catch (err) {
      this.log.warn({ event: "rc.auth.token_store_unreadable", err: errCode(err) ?? "error" }, "stored RingCentral token unreadable; logging in instead");
    }
    if (t === undefined || t.accessToken === this.token?.accessToken) return false;
    const now = this.now();
    if (t.expiresAt <= now && !(t.refreshToken !== undefined && t.refreshExpiresAt - 5_000 > now)) return false;
    this.secrets.add(t.accessToken);
    if (t.refreshToken !== undefined) this.secrets.add(t.refreshToken);
    this.token = t;
    this.log.debug({ event: "rc.auth.token_reused", expiresAt: new Date(t.expiresAt).toISOString() }, "reusing the stored RingCentral token");
    return true;
  }

  private persist(t: StoredToken): void {
    try {
      this.opts.tokenStore?.save(t);
    } catch (err) {
      this.log.warn({ event: "rc.auth.token_store_failed", err: errCode(err) ?? "error" }, "could not keep the RingCentral token for the next start");
    }
  }

  // ------------------------------------------------------------------ public API

  /** Explicit JWT login (also done lazily before the first call). */
  async login(): Promise<void> {
    this.assertOpen();
    await this.singleFlight(() => this.jwtLogin());
  }

  /**
   * Make sure a valid access token is held: reuse the current one, refresh it
   * when near expiry, log in only when there is none. Cheap enough for a
   * readiness probe (a forced login() would spend the Auth group's 5/min).
   */
  async ensureAuthenticated(): Promise<void> {
    this.assertOpen();
    await this.accessToken();
  }

  /** The extension id the token belongs to (after login), from TokenInfo.owner_id. */
  get ownerId(): string | undefined {
    return this.token?.ownerId;
  }

  /** The app permissions the current token grants (TokenInfo.scope), after login; undefined when unknown. */
  get scopes(): readonly string[] | undefined {
    return this.token?.scopes;
  }

  /** Send a new fax. Never retried here (except once after a 401, which RingCentral did not process). */
  async sendFax(req: SendFaxRequest, documents: FaxDocument[], opts: { signal?: AbortSignal } = {}): Promise<FaxResponse> {
    if (req.to.length === 0) throw new TypeError("sendFax: at least one recipient is required");
    if (documents.length === 0) throw new TypeError("sendFax: at least one document is required");
    // stat before asking for a rate-limit slot, so a missing file costs no request
    const docs = await Promise.all(
      documents.map(async (d) => (d.size !== undefined ? d : { ...d, size: (await fs.promises.stat(d.path)).size })),
    );
    return this.postFax(async () => {
      const built = await buildFaxBody(req, docs, this.opts.faxLayout);
      return { body: built.body, contentType: built.contentType, contentLength: built.contentLength, destroy: built.destroy };
    }, opts.signal);
  }

  /** Resend/forward an existing fax by id (application/json to the fax endpoint). Never retried here. */
  async resendFax(req: { originalMessageId: string; to?: FaxRecipient[]; sendTime?: string }): Promise<FaxResponse> {
    const body: Record<string, unknown> = { originalMessageId: req.originalMessageId };
    if (req.to !== undefined) body["to"] = req.to;
    if (req.sendTime !== undefined) body["sendTime"] = req.sendTime;
    return this.postFax(() => jsonBody(body));
  }

  /** POST to the fax endpoint (send and resend): Heavy group, never retried except once after a 401. */
  private postFax(body: NonNullable<CallSpec["body"]>, signal?: AbortSignal): Promise<FaxResponse> {
    return this.callJson(
      {
        operation: "createFaxMessage",
        method: "POST",
        url: this.url("/restapi/v1.0/account/~/extension/~/fax"),
        auth: "bearer",
        idempotent: false,
        retryOn401: true,
        signal,
        body,
      },
      faxResponseSchema,
    );
  }

  async getMessage(messageId: string, extensionId = "~"): Promise<MessageInfo> {
    return this.callJson(
      {
        operation: "readMessage",
        method: "GET",
        url: this.url(`${this.extPath(extensionId)}/message-store/${encodeURIComponent(messageId)}`),
        auth: "bearer",
        idempotent: true,
        retryOn401: true,
      },
      messageInfoSchema,
    );
  }

  /** Every message matching the query, following navigation.nextPage. */
  async *listMessages(query: ListMessagesQuery, extensionId = "~"): AsyncIterable<MessageInfo> {
    const params = new URLSearchParams();
    for (const k of ["messageType", "direction", "availability", "readStatus"] as const) {
      for (const v of query[k] ?? []) params.append(k, v);
    }
    for (const k of ["dateFrom", "dateTo", "phoneNumber", "conversationId"] as const) {
      const v = query[k];
      if (v !== undefined) params.set(k, v);
    }
    if (query.page !== undefined) params.set("page", String(query.page));
    if (query.perPage !== undefined) params.set("perPage", String(query.perPage));
    if (query.distinctConversations !== undefined) params.set("distinctConversations", String(query.distinctConversations));
    let url: URL | undefined = this.url(`${this.extPath(extensionId)}/message-store`, params);
    const visited = new Set<string>();
    while (url !== undefined) {
      visited.add(url.toString());
      const page = await this.callJson(
        { operation: "listMessages", method: "GET", url, auth: "bearer", idempotent: true, retryOn401: true },
        messageListSchema,
      );
      for (const r of page.records) yield r;
      const next = page.navigation?.nextPage?.uri;
      url = undefined;
      if (next !== undefined && page.records.length > 0) {
        const candidate = this.rebase(next);
        if (!visited.has(candidate.toString())) url = candidate;
      }
    }
  }

  /** message-sync. An ISync with an unusable token throws RcApiError errorCode "MSG-333" (see isSyncTokenInvalid). */
  async syncMessages(q: SyncQuery, extensionId = "~"): Promise<MessageSyncResult> {
    const params = new URLSearchParams();
    params.set("syncType", q.syncType);
    if (q.syncType === "ISync") {
      params.set("syncToken", q.syncToken);
    } else {
      if (q.dateFrom !== undefined) params.set("dateFrom", q.dateFrom);
      if (q.dateTo !== undefined) params.set("dateTo", q.dateTo);
      for (const v of q.messageType ?? []) params.append("messageType", v);
      for (const v of q.direction ?? []) params.append("direction", v);
      if (q.recordCount !== undefined) params.set("recordCount", String(q.recordCount));
    }
    return this.callJson(
      {
        operation: "syncMessages",
        method: "GET",
        url: this.url(`${this.extPath(extensionId)}/message-sync`, params),
        auth: "bearer",
        idempotent: true,
        retryOn401: true,
      },
      messageSyncSchema,
    );
  }

  /**
   * Stream an attachment from its absolute `uri` (media host). Only RingCentral
   * hosts (or the configured server's origin) get the Bearer token. The stream
   * errors with RcNetworkError when it ends short of Content-Length.
   */
  async downloadContent(
    uri: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ body: Readable; contentType: string; contentLength: number | undefined }> {
    const url = this.trustedUrl(uri);
    const res = await this.call({
      operation: "readMessageContent",
      method: "GET",
      url,
      auth: "bearer",
      idempotent: true,
      retryOn401: true,
      signal: opts.signal,
    });
    const contentType = header(res.headers, "content-type") ?? "application/octet-stream";
    const contentLength = numHeader(res.headers, "content-length");
    const raw = res.body as unknown as Readable;
    if (contentLength === undefined) return { body: raw, contentType, contentLength };
    const check = new LengthCheck(contentLength, "readMessageContent");
    raw.on("error", (err: unknown) => {
      check.destroy(
        new RcNetworkError(
          {
            operation: "readMessageContent",
            group: "Medium",
            code: errCode(err),
            detail: "download interrupted",
            maybeProcessed: true,
          },
          { cause: err },
        ),
      );
    });
    raw.pipe(check);
    return { body: check, contentType, contentLength };
  }

  /**
   * DELETE a message-store record: the first call moves it to Deleted, a
   * second (or `purge`) purges it. Deleting a fax still queued for a later
   * sendTime cancels it (RingCentral's way to cancel a scheduled fax). Not
   * retried on its own: a repeated DELETE would purge, and a purged message
   * answers 404, so the caller decides.
   */
  async deleteMessage(messageId: string, opts: { purge?: boolean; extensionId?: string } = {}): Promise<void> {
    const params = opts.purge === true ? new URLSearchParams({ purge: "true" }) : undefined;
    const res = await this.call({
      operation: "deleteMessage",
      method: "DELETE",
      url: this.url(`${this.extPath(opts.extensionId ?? "~")}/message-store/${encodeURIComponent(messageId)}`, params),
      auth: "bearer",
      idempotent: false,
      retryOn401: true,
    });
    await res.body.dump();
  }

  async setReadStatus(messageId: string, readStatus: "Read" | "Unread", extensionId = "~"): Promise<void> {
    await this.callJson(
      {
        operation: "updateMessage",
        method: "PUT",
        url: this.url(`${this.extPath(extensionId)}/message-store/${encodeURIComponent(messageId)}`),
        auth: "bearer",
        idempotent: true,
        retryOn401: true,
        body: () => jsonBody({ readStatus }),
      },
      messageInfoSchema,
    );
  }

  async listCoverPages(): Promise<{ id: string; name: string }[]> {
    const params = new URLSearchParams({ perPage: "100" });
    let url: URL | undefined = this.url("/restapi/v1.0/dictionary/fax-cover-page", params);
    const out: { id: string; name: string }[] = [];
    const visited = new Set<string>();
    while (url !== undefined) {
      visited.add(url.toString());
      const page = await this.callJson(
        { operation: "listFaxCoverPages", method: "GET", url, auth: "bearer", idempotent: true, retryOn401: true },
        coverPageListSchema,
      );
      for (const r of page.records) out.push({ id: r.id, name: r.name });
      const next = page.navigation?.nextPage?.uri;
      url = undefined;
      if (next !== undefined && page.records.length > 0) {
        const candidate = this.rebase(next);
        if (!visited.has(candidate.toString())) url = candidate;
      }
    }
    return out;
  }

  async createSubscription(req: CreateSubscriptionRequest): Promise<SubscriptionInfo> {
    return this.callJson(
      {
        operation: "createSubscription",
        method: "POST",
        url: this.url("/restapi/v1.0/subscription"),
        auth: "bearer",
        idempotent: false,
        retryOn401: true,
        body: () => jsonBody(req),
      },
      subscriptionInfoSchema,
    );
  }

  async getSubscription(id: string): Promise<SubscriptionInfo> {
    return this.callJson(
      {
        operation: "readSubscription",
        method: "GET",
        url: this.url(`/restapi/v1.0/subscription/${encodeURIComponent(id)}`),
        auth: "bearer",
        idempotent: true,
        retryOn401: true,
      },
      subscriptionInfoSchema,
    );
  }

  /** POST …/renew: extends the subscription by its expiresIn. Safe to repeat, so retried. */
  async renewSubscription(id: string): Promise<SubscriptionInfo> {
    return this.callJson(
      {
        operation: "renewSubscription",
        method: "POST",
        url: this.url(`/restapi/v1.0/subscription/${encodeURIComponent(id)}/renew`),
        auth: "bearer",
        idempotent: true,
        retryOn401: true,
      },
      subscriptionInfoSchema,
    );
  }

  async deleteSubscription(id: string): Promise<void> {
    const res = await this.call({
      operation: "deleteSubscription",
      method: "DELETE",
      url: this.url(`/restapi/v1.0/subscription/${encodeURIComponent(id)}`),
      auth: "bearer",
      idempotent: true,
      retryOn401: true,
    });
    await res.body.dump();
  }

  async getWsToken(): Promise<WsToken> {
    return this.callJson(
      {
        operation: "authWsToken",
        method: "POST",
        url: this.url("/restapi/oauth/wstoken"),
        auth: "bearer",
        idempotent: false,
        retryOn401: true,
      },
      wsTokenSchema,
    );
  }

  /**
   * Revoke the session (failures ignored, per RingCentral) unless a token
   * store keeps it for the next run, stop the limiters, close our dispatcher.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const t = this.token;
    this.token = undefined;
    if (t !== undefined && this.opts.tokenStore === undefined) {
      try {
        const res = await this.exchange(
          {
            operation: "revokeToken",
            method: "POST",
            url: this.url("/restapi/oauth/revoke"),
            auth: "basic",
            idempotent: false,
            retryOn401: false,
            signal: AbortSignal.timeout(Math.min(this.timeoutMs, 5_000)),
            body: () => formBody({ token: t.accessToken }),
          },
          undefined,
        );
        await res.body.dump();
        this.log.debug({ event: "rc.auth.revoked", status: res.status }, "token revoked");
      } catch (err) {
        // RingCentral: if revoke fails, ignore it and do not retry.
        this.log.debug({ event: "rc.auth.revoke_failed", err: this.scrub(String(err)) }, "token revoke failed (ignored)");
      }
    }
    this.limiters.close();
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /**
   * Shutdown: fail the calls waiting for a group RingCentral holds (a 429's
   * Retry-After can be a minute), so stopping never waits for it. Calls in
   * groups that are not held go on as usual.
   */
  releaseHeldWaits(): void {
    const now = this.now();
    for (const [group, st] of Object.entries(this.limiters.state()) as [RateGroup, GroupState][]) {
      if (st.heldUntil > now + 1_000) {
        this.log.info({ event: "rc.rate_limit_wait_cancelled", group, waiting: st.waiting }, `shutting down: not waiting for the RingCentral ${group} group`);
        this.limiters.get(group).close();
      }
    }
  }

  rateLimitState(): Record<RateGroup, GroupState> {
    return this.limiters.state();
  }

  // ------------------------------------------------------------------ auth

  private assertOpen(): void {
    if (this.closed) throw new Error("RingCentralClient is closed");
  }

  private refreshThresholdMs(t: TokenState): number {
    return Math.min(60_000, t.ttlMs * 0.1);
  }

  /** A valid access token, refreshing ahead of expiry. */
  private async accessToken(): Promise<string> {
    const t = this.token;
    if (t !== undefined && t.expiresAt - this.refreshThresholdMs(t) > this.now()) return t.accessToken;
    const fresh = await this.singleFlight(() => this.renew());
    return fresh.accessToken;
  }

  private singleFlight(fn: () => Promise<TokenState>): Promise<TokenState> {
    if (this.authFlight === undefined) {
      this.authFlight = fn().finally(() => {
        this.authFlight = undefined;
      });
    }
    return this.authFlight;
  }

  /** Refresh with the refresh token; when it is dead (400/401 or expired), log in again with the JWT. */
  private async renew(): Promise<TokenState> {
    const t = this.token;
    if (t === undefined) return this.jwtLogin();
    if (t.expiresAt - this.refreshThresholdMs(t) > this.now()) return t; // someone else renewed meanwhile
    if (t.refreshToken !== undefined && t.refreshExpiresAt - 5_000 > this.now()) {
      try {
        const state = await this.tokenRequest({ grant_type: "refresh_token", refresh_token: t.refreshToken });
        this.log.info({ event: "rc.auth.refreshed", expiresInSeconds: state.ttlMs / 1000 }, "access token refreshed");
        return state;
      } catch (err) {
        if (err instanceof RcApiError && (err.status === 400 || err.status === 401)) {
          // Another process sharing the token file (doctor, a previous run) may have refreshed it.
          if (this.adoptStored() && this.token !== undefined && this.token.expiresAt - this.refreshThresholdMs(this.token) > this.now()) return this.token;
          this.log.warn(
            { event: "rc.auth.refresh_rejected", status: err.status, errorCode: err.errorCode },
            "refresh token rejected; logging in again with the JWT",
          );
        } else {
          throw err;
        }
      }
    }
    return this.jwtLogin();
  }

  private async jwtLogin(): Promise<TokenState> {
    let state: TokenState;
    try {
      state = await this.tokenRequest({
        grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion: this.opts.jwt,
      });
    } catch (err) {
      if (err instanceof RcApiError && (err.status === 400 || err.status === 401 || err.status === 403)) {
        this.opts.onAuthResult?.({ ok: false, status: err.status, errorCode: err.errorCode });
      }
      throw err;
    }
    this.log.info({ event: "rc.auth.login", expiresInSeconds: state.ttlMs / 1000 }, "logged in with JWT");
    this.opts.onAuthResult?.({ ok: true });
    return state;
  }

  private async tokenRequest(form: Record<string, string>): Promise<TokenState> {
    const info: TokenInfo = await this.callJson(
      {
        operation: "getToken",
        method: "POST",
        url: this.url("/restapi/oauth/token"),
        auth: "basic",
        idempotent: true,
        retryOn401: false,
        body: () => formBody(form),
      },
      tokenInfoSchema,
    );
    const now = this.now();
    const state: TokenState = {
      accessToken: info.access_token,
      expiresAt: now + info.expires_in * 1000,
      ttlMs: info.expires_in * 1000,
      refreshToken: info.refresh_token,
      refreshExpiresAt:
        info.refresh_token !== undefined ? now + (info.refresh_token_expires_in ?? 7 * 24 * 3600) * 1000 : 0,
      ownerId: info.owner_id,
      scopes: info.scope?.split(/\s+/).filter((s) => s !== ""),
    };
    this.secrets.add(state.accessToken);
    if (state.refreshToken !== undefined) this.secrets.add(state.refreshToken);
    this.token = state;
    this.persist(state);
    return state;
  }

  /** After a 401 with `used`: force the next accessToken() to refresh (unless already replaced). */
  private invalidate(used: string): void {
    const t = this.token;
    if (t !== undefined && t.accessToken === used) this.token = { ...t, expiresAt: 0 };
  }

  // ------------------------------------------------------------------ HTTP core

  private extPath(extensionId: string): string {
    return `/restapi/v1.0/account/~/extension/${encodeURIComponent(extensionId).replace(/%7E/gi, "~")}`;
  }

  private url(path: string, params?: URLSearchParams): URL {
    const u = new URL(this.base.origin + this.basePath + path);
    if (params !== undefined) u.search = params.toString();
    return u;
  }

  /** A navigation URI from RingCentral, re-based onto the configured server (the token stays on our host). */
  private rebase(uri: string): URL {
    const u = new URL(uri, this.base);
    return new URL(u.pathname + u.search, this.base.origin);
  }

  /** Only send the Bearer token to the configured origin, the configured media origins or https RingCentral hosts. */
  private trustedUrl(uri: string): URL {
    const u = new URL(uri, this.base);
    if (u.origin === this.base.origin) return u;
    if (this.mediaOrigins.has(u.origin)) return u;
    if (u.protocol === "https:" && (u.hostname === "ringcentral.com" || u.hostname.endsWith(".ringcentral.com"))) return u;
    throw new TypeError(`refusing to send credentials to untrusted host ${u.host}`);
  }

  private scrub(text: string): string {
    let out = text.replace(/(access_token|refresh_token|assertion|token)=[^&\s"']+/gi, "$1=[redacted]");
    for (const s of this.secrets) if (s.length >= 4) out = out.split(s).join("[redacted]");
    return out;
  }

  private async callJson<S extends z.ZodType>(spec: CallSpec, schema: S): Promise<z.output<S>> {
    const res = await this.call(spec);
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
  private async call(spec: CallSpec): Promise<Exchange> {
    this.assertOpen();
    let attempt = 0;
    let reauthed = false;
    for (;;) {
      attempt++;
      const token = spec.auth === "bearer" ? await this.accessToken() : undefined;
      let res: Exchange;
      try {
        res = await this.exchange(spec, token);
      } catch (err) {
        if (err instanceof RcNetworkError && spec.idempotent && attempt < this.retry.attempts) {
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

      if (res.status === 401 && token !== undefined && spec.retryOn401 && !reauthed) {
        await res.body.dump();
        reauthed = true;
        attempt--; // the re-auth retry does not use the retry budget
        this.log.info({ event: "rc.auth.unauthorized", operation: spec.operation }, "401 from RingCentral; refreshing the token");
        this.invalidate(token);
        continue;
      }

      const err = await this.toApiError(spec, res);
      if (spec.idempotent && err.retryable && attempt < this.retry.attempts) {
        const wait = err.status === 429 ? 0 /* the group hold makes acquire() wait */ : (err.retryAfterMs ?? this.backoff(attempt));
        const serverWait = err.retryAfterMs ?? 0;
        if (serverWait <= this.retry.maxWaitMs && wait <= this.retry.maxWaitMs) {
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

  private backoff(attempt: number): number {
    const exp = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
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
    let retryAfterMs = parseRetryAfter(header(res.headers, "retry-after"), this.now());
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

  /**
   * One HTTP exchange: wait for a slot in the operation's group, send, learn
   * rate-limit headers, hold the group on 429 / Remaining 0, log and count.
   */
  private async exchange(spec: CallSpec, token: string | undefined): Promise<Exchange> {
    const group = this.groupOf.get(spec.operation) ?? OPERATION_GROUPS[spec.operation];
    this.warnIfHeld(group, spec.operation);
    await this.limiters.get(group).acquire(spec.signal);
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": "faxbridge/0.1",
    };
    if (spec.auth === "bearer") {
      if (token === undefined) throw new Error("internal: bearer call without token");
      headers["authorization"] = `Bearer ${token}`;
    } else {
      headers["authorization"] =
        "Basic " + Buffer.from(`${this.opts.clientId}:${this.opts.clientSecret}`, "utf8").toString("base64");
    }
    const body = spec.body !== undefined ? await spec.body() : undefined;
    if (body !== undefined) {
      headers["content-type"] = body.contentType;
      if (body.contentLength !== undefined) headers["content-length"] = String(body.contentLength);
    }
    const started = this.now();
    let res: Dispatcher.ResponseData;
    try {
      res = await request(spec.url, {
        method: spec.method,
        headers,
        body: body?.body ?? null,
        dispatcher: this.dispatcher,
        signal: spec.signal ?? null,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      body?.destroy?.();
      const durationMs = this.now() - started;
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
    const durationMs = this.now() - started;
    const resHeaders = res.headers as Exchange["headers"];
    const reported = parseGroupHeader(header(resHeaders, "x-rate-limit-group")) ?? group;
    if (reported !== group) {
      // RingCentral counts this operation in another group (media downloads may): pace it there from now on.
      this.groupOf.set(spec.operation, reported);
      this.log.info(
        { event: "rc.rate_group_learned", operation: spec.operation, assumed: group, reported },
        "operation belongs to another rate-limit group",
      );
    }
    const limiter = this.limiters.get(reported);
    const limit = numHeader(resHeaders, "x-rate-limit-limit");
    const windowSeconds = numHeader(resHeaders, "x-rate-limit-window");
    const remaining = numHeader(resHeaders, "x-rate-limit-remaining");
    limiter.learn(limit, windowSeconds);
    const now = this.now();
    if (res.statusCode === 429) {
      const wait = parseRetryAfter(header(resHeaders, "retry-after"), now) ?? DEFAULT_429_WAIT_MS;
      limiter.hold(now + wait);
      // the retry (if any) waits in the group it was assumed to be in; hold that too
      if (reported !== group) this.limiters.get(group).hold(now + wait);
      this.log.warn(
        { event: "rc.rate_limited", group: reported, operation: spec.operation, retryAfterMs: wait, until: new Date(now + wait).toISOString() },
        `RingCentral rate limit hit (429): ${reported} calls wait until ${new Date(now + wait).toISOString()}`,
      );
      this.holdWarned.set(reported, now + wait);
    } else if (remaining === 0) {
      const w = (windowSeconds ?? limiter.windowSeconds) * 1000;
      limiter.hold(now + w);
      this.log.warn(
        { event: "rc.rate_limit_exhausted", group: reported, operation: spec.operation, holdMs: w, until: new Date(now + w).toISOString() },
        `RingCentral ${reported} rate-limit window used up: calls in that group wait until ${new Date(now + w).toISOString()}`,
      );
      this.holdWarned.set(reported, now + w);
    }
    this.record(reported, spec, res.statusCode, durationMs);
    return { status: res.statusCode, headers: resHeaders, body: res.body, group: reported };
  }

  /** Say at warn, once per hold, which call waits for a held group and until when. */
  private warnIfHeld(group: RateGroup, operation: Operation): void {
    const until = this.limiters.get(group).state().heldUntil;
    if (until <= this.now() || this.holdWarned.get(group) === until) return;
    this.holdWarned.set(group, until);
    this.log.warn(
      { event: "rc.rate_limit_wait", group, operation, until: new Date(until).toISOString() },
      `${operation} waits for the RingCentral ${group} rate-limit group until ${new Date(until).toISOString()}`,
    );
  }

  private record(group: RateGroup, spec: CallSpec, status: number, durationMs: number): void {
    this.log.debug(
      { event: "rc.call", group, operation: spec.operation, method: spec.method, status, durationMs },
      "RingCentral call",
    );
    if (this.opts.onCall !== undefined) {
      try {
        this.opts.onCall({ group, method: spec.method, operation: spec.operation, status, durationMs });
      } catch (err) {
        this.log.warn({ event: "rc.on_call_failed", err }, "onCall hook threw");
      }
    }
  }
}

function jsonBody(value: unknown): RequestBody {
  const text = JSON.stringify(value);
  return { body: text, contentType: "application/json", contentLength: Buffer.byteLength(text) };
}

function formBody(fields: Record<string, string>): RequestBody {
  const text = new URLSearchParams(fields).toString();
  return { body: text, contentType: "application/x-www-form-urlencoded", contentLength: Buffer.byteLength(text) };
}
