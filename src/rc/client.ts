/**
 * RingCentral REST client for faxbridge: one extension's session. A facade
 * over the transport (src/rc/transport.ts), the token manager, the pacing and
 * one module per API area (fax, messages, subscriptions, WebSocket token); it
 * implements the interfaces of src/rc/api.ts, which consumers depend on.
 *
 * - Every JSON response is validated with zod (src/rc/types.ts).
 * - Only idempotent calls are retried (network errors, 5xx, 429). A fax POST
 *   is never retried, except once after a 401 (not processed): the durable
 *   queue decides from the typed error.
 * - Secrets never reach a log line or an error message.
 */
import { Agent, type Dispatcher } from "undici";
import type { Logger } from "../log.js";
import type { RingCentralApi } from "./api.js";
import { bindRest, RcUrls } from "./endpoints.js";
import { RcFax, type ResendFaxRequest } from "./fax.js";
import type { RateGroup } from "./groups.js";
import type { GroupState, RateLimitConfig } from "./limiter.js";
import { RcMessages, type DownloadedContent, type ListMessagesQuery, type SyncQuery } from "./messages.js";
import type { FaxDocument, FaxLayout, SendFaxRequest } from "./multipart.js";
import { Pacer } from "./pacing.js";
import { RcSubscriptions, type CreateSubscriptionRequest } from "./subscriptions.js";
import type { StoredToken, TokenStore } from "./token-file.js";
import { TokenManager, type AuthResult } from "./token-manager.js";
import { DEFAULT_RETRY, RcTransport, Secrets, type RcCall, type RcRetryOptions } from "./transport.js";
import type { FaxResponse, MessageInfo, MessageSyncResult, SubscriptionInfo, WsToken } from "./types.js";
import { RcWsToken } from "./ws-token.js";

export type { RateGroup } from "./groups.js";
export type { FaxDocument, FaxRecipient, SendFaxRequest } from "./multipart.js";
export type { FaxResponse, MessageInfo, MessageSyncResult, SubscriptionInfo, MessageAttachment } from "./types.js";
export type { RcCall, RcRetryOptions } from "./transport.js";
export type { ListMessagesQuery, SyncQuery } from "./messages.js";
export type { CreateSubscriptionRequest } from "./subscriptions.js";
export type { ResendFaxRequest } from "./fax.js";
export { parseJsonKeepingIds } from "./http-util.js";

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
  onAuthResult?: (result: AuthResult) => void;
  /**
   * Extra origins attachment content may be fetched from with the Bearer token
   * (ringcentral.mediaOrigins), besides the server's origin and https *.ringcentral.com.
   */
  mediaOrigins?: readonly string[];
}

export class RingCentralClient implements RingCentralApi {
  private readonly pacer: Pacer;
  private readonly tokens: TokenManager;
  private readonly fax: RcFax;
  private readonly messages: RcMessages;
  private readonly subscriptions: RcSubscriptions;
  private readonly ws: RcWsToken;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(opts: RcClientOptions) {
    const log = opts.logger.child({ module: "rc" });
    const now = opts.now ?? Date.now;
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
    if (opts.dispatcher !== undefined) {
      this.dispatcher = opts.dispatcher;
      this.ownsDispatcher = false;
    } else {
      this.dispatcher = new Agent({ keepAliveTimeout: 30_000 });
      this.ownsDispatcher = true;
    }
    const secrets = new Secrets();
    secrets.add(opts.clientSecret);
    secrets.add(opts.jwt);
    this.pacer = new Pacer({ logger: log, now, rateLimits: opts.rateLimits });
    const transport = new RcTransport({
      clientId: opts.clientId,
      clientSecret: opts.clientSecret,
      logger: log,
      now,
      timeoutMs: this.timeoutMs,
      retry: { ...DEFAULT_RETRY, ...(opts.retry ?? {}) },
      dispatcher: this.dispatcher,
      pacer: this.pacer,
      secrets,
      onCall: opts.onCall,
      assertOpen: () => this.assertOpen(),
    });
    const urls = new RcUrls(opts.serverUrl, opts.mediaOrigins);
    this.tokens = new TokenManager({
      jwt: opts.jwt,
      logger: log,
      now,
      secrets,
      rest: bindRest(transport, urls),
      tokenStore: opts.tokenStore,
      onAuthResult: opts.onAuthResult,
    });
    const rest = bindRest(transport, urls, this.tokens);
    this.fax = new RcFax(rest, opts.faxLayout);
    this.messages = new RcMessages(rest);
    this.subscriptions = new RcSubscriptions(rest);
    this.ws = new RcWsToken(rest);
  }

  // ------------------------------------------------------------------ session

  /** Explicit JWT login (also done lazily before the first call). */
  async login(): Promise<void> {
    this.assertOpen();
    await this.tokens.login();
  }

  /**
   * Make sure a valid access token is held: reuse the current one, refresh it
   * when near expiry, log in only when there is none. Cheap enough for a
   * readiness probe (a forced login() would spend the Auth group's 5/min).
   */
  async ensureAuthenticated(): Promise<void> {
    this.assertOpen();
    await this.tokens.accessToken();
  }

  /** The extension id the token belongs to (after login), from TokenInfo.owner_id. */
  get ownerId(): string | undefined {
    return this.tokens.ownerId;
  }

  /** The app permissions the current token grants (TokenInfo.scope), after login; undefined when unknown. */
  get scopes(): readonly string[] | undefined {
    return this.tokens.scopes;
  }

  // ------------------------------------------------------------------ fax

  sendFax(req: SendFaxRequest, documents: FaxDocument[], opts: { signal?: AbortSignal } = {}): Promise<FaxResponse> {
    return this.fax.sendFax(req, documents, opts);
  }

  resendFax(req: ResendFaxRequest): Promise<FaxResponse> {
    return this.fax.resendFax(req);
  }

  listCoverPages(): Promise<{ id: string; name: string }[]> {
    return this.fax.listCoverPages();
  }

  // ------------------------------------------------------------------ messages

  getMessage(messageId: string, extensionId = "~"): Promise<MessageInfo> {
    return this.messages.getMessage(messageId, extensionId);
  }

  listMessages(query: ListMessagesQuery, extensionId = "~"): AsyncIterable<MessageInfo> {
    return this.messages.listMessages(query, extensionId);
  }

  syncMessages(q: SyncQuery, extensionId = "~"): Promise<MessageSyncResult> {
    return this.messages.syncMessages(q, extensionId);
  }

  downloadContent(uri: string, opts: { signal?: AbortSignal } = {}): Promise<DownloadedContent> {
    return this.messages.downloadContent(uri, opts);
  }

  deleteMessage(messageId: string, opts: { purge?: boolean; extensionId?: string } = {}): Promise<void> {
    return this.messages.deleteMessage(messageId, opts);
  }

  setReadStatus(messageId: string, readStatus: "Read" | "Unread", extensionId = "~"): Promise<void> {
    return this.messages.setReadStatus(messageId, readStatus, extensionId);
  }

  // ------------------------------------------------------------------ subscriptions, WebSocket

  createSubscription(req: CreateSubscriptionRequest): Promise<SubscriptionInfo> {
    return this.subscriptions.createSubscription(req);
  }

  getSubscription(id: string): Promise<SubscriptionInfo> {
    return this.subscriptions.getSubscription(id);
  }

  renewSubscription(id: string): Promise<SubscriptionInfo> {
    return this.subscriptions.renewSubscription(id);
  }

  deleteSubscription(id: string): Promise<void> {
    return this.subscriptions.deleteSubscription(id);
  }

  getWsToken(): Promise<WsToken> {
    return this.ws.getWsToken();
  }

  // ------------------------------------------------------------------ lifecycle, pacing

  /**
   * Revoke the session (failures ignored, per RingCentral) unless a token
   * store keeps it for the next run, stop the limiters, close our dispatcher.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tokens.close(this.timeoutMs);
    this.pacer.close();
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /**
   * Shutdown: fail the calls waiting for a group RingCentral holds (a 429's
   * Retry-After can be a minute), so stopping never waits for it. Calls in
   * groups that are not held go on as usual.
   */
  releaseHeldWaits(): void {
    this.pacer.releaseHeldWaits();
  }

  rateLimitState(): Record<RateGroup, GroupState> {
    return this.pacer.state();
  }

  /** The token pair held (tests look at it). */
  protected get token(): StoredToken | undefined {
    return this.tokens.current;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("RingCentralClient is closed");
  }
}
