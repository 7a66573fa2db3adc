/**
 * What the rest of faxbridge asks of RingCentral, as small interfaces per API
 * area. RingCentralClient (one extension) and RcPool (several) implement them;
 * consumers depend on these, never on the concrete classes.
 */
import type { Readable } from "node:stream";
import type { ResendFaxRequest } from "./fax.js";
import type { RateGroup } from "./groups.js";
import type { GroupState } from "./limiter.js";
import type { ListMessagesQuery, SyncQuery } from "./messages.js";
import type { FaxDocument, SendFaxRequest } from "./multipart.js";
import type { CreateSubscriptionRequest } from "./subscriptions.js";
import type { FaxResponse, MessageInfo, MessageSyncResult, SubscriptionInfo, WsToken } from "./types.js";

/** Sending faxes (Heavy group) and the fax dictionary. */
export interface FaxApi {
  sendFax(req: SendFaxRequest, documents: FaxDocument[], opts?: { signal?: AbortSignal }): Promise<FaxResponse>;
  resendFax(req: ResendFaxRequest): Promise<FaxResponse>;
  listCoverPages(): Promise<{ id: string; name: string }[]>;
}

/** The message store, message sync and attachment download. `extensionId` defaults to "~" (the token's own). */
export interface MessageApi {
  getMessage(messageId: string, extensionId?: string): Promise<MessageInfo>;
  listMessages(query: ListMessagesQuery, extensionId?: string): AsyncIterable<MessageInfo>;
  syncMessages(q: SyncQuery, extensionId?: string): Promise<MessageSyncResult>;
  downloadContent(uri: string, opts?: { signal?: AbortSignal }): Promise<{ body: Readable; contentType: string; contentLength: number | undefined }>;
  deleteMessage(messageId: string, opts?: { purge?: boolean; extensionId?: string }): Promise<void>;
  setReadStatus(messageId: string, readStatus: "Read" | "Unread", extensionId?: string): Promise<void>;
}

/** Webhook subscriptions. */
export interface SubscriptionApi {
  createSubscription(req: CreateSubscriptionRequest): Promise<SubscriptionInfo>;
  getSubscription(id: string): Promise<SubscriptionInfo>;
  renewSubscription(id: string): Promise<SubscriptionInfo>;
  deleteSubscription(id: string): Promise<void>;
}

/** The token of the WebSocket notification transport. */
export interface WsTokenApi {
  getWsToken(): Promise<WsToken>;
}

/** Who we are logged in as. */
export interface SessionApi {
  /** Explicit JWT login (also done lazily before the first call). */
  login(): Promise<void>;
  /** Make sure a valid access token is held (refresh when near expiry, log in only when there is none). */
  ensureAuthenticated(): Promise<void>;
  /** The extension id the token belongs to (after login). */
  readonly ownerId: string | undefined;
  /** The app permissions the current token grants, after login; undefined when unknown. */
  readonly scopes: readonly string[] | undefined;
}

/** Client-side pacing per rate-limit group. */
export interface PacingApi {
  rateLimitState(): Record<RateGroup, GroupState>;
}

/** The sending extensions of an extension pool (RcPool). */
export interface PoolApi {
  /** The extension id of every pool member but the first ("~"), logging in those not yet; members that cannot log in are left out. */
  otherMemberIds(): Promise<string[]>;
  /** The session of the member with this extension id (its own subscriptions and WebSocket), or undefined. */
  memberSession(extensionId: string): (SubscriptionApi & WsTokenApi) | undefined;
}

/** Everything one RingCentral session offers. */
export type RingCentralApi = FaxApi & MessageApi & SubscriptionApi & WsTokenApi & SessionApi & PacingApi;
