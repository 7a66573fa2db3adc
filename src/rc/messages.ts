/** RingCentral message store and message sync: read, list, sync, download, delete, mark read. */
import { Transform, type Readable, type TransformCallback } from "node:stream";
import type { Rest } from "./endpoints.js";
import { RcNetworkError } from "./errors.js";
import { errCode, header, jsonBody, numHeader } from "./http-util.js";
import { paginate } from "./pagination.js";
import { messageInfoSchema, messageListSchema, messageSyncSchema, type MessageInfo, type MessageSyncResult } from "./types.js";

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

export interface DownloadedContent {
  body: Readable;
  contentType: string;
  contentLength: number | undefined;
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

export class RcMessages {
  private readonly rest: Rest;

  constructor(rest: Rest) {
    this.rest = rest;
  }

  async getMessage(messageId: string, extensionId = "~"): Promise<MessageInfo> {
    return this.rest.json("readMessage", messageInfoSchema, { params: { extensionId, messageId } });
  }

  /** Every message matching the query, following navigation.nextPage. */
  listMessages(query: ListMessagesQuery, extensionId = "~"): AsyncIterable<MessageInfo> {
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
    const first = this.rest.urls.spec("listMessages", { params: { extensionId }, query: params }).url;
    return paginate(this.rest, "listMessages", first, messageListSchema);
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
    return this.rest.json("syncMessages", messageSyncSchema, { params: { extensionId }, query: params });
  }

  /**
   * Stream an attachment from its absolute `uri` (media host). Only RingCentral
   * hosts (or the configured server's origin) get the Bearer token. The stream
   * errors with RcNetworkError when it ends short of Content-Length.
   */
  async downloadContent(uri: string, opts: { signal?: AbortSignal } = {}): Promise<DownloadedContent> {
    const url = this.rest.urls.trustedUrl(uri);
    const res = await this.rest.call("readMessageContent", { url, signal: opts.signal });
    const contentType = header(res.headers, "content-type") ?? "application/octet-stream";
    const contentLength = numHeader(res.headers, "content-length");
    const raw = res.body as unknown as Readable;
    if (contentLength === undefined) return { body: raw, contentType, contentLength };
    const check = new LengthCheck(contentLength, "readMessageContent");
    raw.on("error", (err: unknown) => {
      check.destroy(
        new RcNetworkError(
          { operation: "readMessageContent", group: "Medium", code: errCode(err), detail: "download interrupted", maybeProcessed: true },
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
    const query = opts.purge === true ? new URLSearchParams({ purge: "true" }) : undefined;
    const res = await this.rest.call("deleteMessage", { params: { extensionId: opts.extensionId ?? "~", messageId }, query });
    await res.body.dump();
  }

  async setReadStatus(messageId: string, readStatus: "Read" | "Unread", extensionId = "~"): Promise<void> {
    await this.rest.json("updateMessage", messageInfoSchema, { params: { extensionId, messageId }, body: () => jsonBody({ readStatus }) });
  }
}
