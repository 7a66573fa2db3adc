import { randomBytes } from "node:crypto";
import { SYNC_OVERLAP_MS } from "./constants.js";
import { invalidParam, isoTime, parseDateParam, rcError, resolvedPath } from "./http.js";
import { enumList, matches, newestFirst, type MessageFilter } from "./messages.js";
import { messageJson, messagePath, type MessageStore, type StoredMessage } from "./store.js";

interface SyncFrame {
  filter: MessageFilter;
  syncTime: number;
  generation: number;
}

/** message-sync (FSync / ISync) of one extension's store, with opaque tokens that carry the sync frame (another extension's token is unknown here). */
export class SyncService {
  private readonly tokens = new Map<string, SyncFrame>();
  private generation = 0;
  private readonly store: MessageStore;

  constructor(store: MessageStore) {
    this.store = store;
  }

  /** Every token issued so far stops working: the next ISync answers MSG-333. */
  invalidateAll(): void {
    this.generation++;
    this.tokens.clear();
  }

  sync(url: URL, baseUrl: string): Record<string, unknown> {
    const q = url.searchParams;
    const syncType = q.get("syncType") ?? "FSync";
    if (syncType === "FSync") return this.full(q, url, baseUrl);
    if (syncType === "ISync") return this.incremental(q, url, baseUrl);
    throw invalidParam("syncType", syncType);
  }

  private full(q: URLSearchParams, url: URL, baseUrl: string): Record<string, unknown> {
    const now = Date.now();
    const dateTo = parseDateParam("dateTo", q.get("dateTo"));
    const dateFrom = parseDateParam("dateFrom", q.get("dateFrom")) ?? (dateTo ?? now) - 24 * 3600 * 1000;
    const filter: MessageFilter = {
      messageType: enumList(q, "messageType", ["Fax", "SMS", "VoiceMail", "Pager"]),
      direction: enumList(q, "direction", ["Inbound", "Outbound"]),
      availability: ["Alive", "Deleted"],
      dateFrom,
    };
    if (dateTo !== undefined) filter.dateTo = dateTo;
    const recordCount = q.get("recordCount");
    let limit = Infinity;
    if (recordCount !== null && recordCount !== "") {
      limit = Number(recordCount);
      if (!Number.isInteger(limit) || limit < 1) throw invalidParam("recordCount", recordCount);
    }
    const all = this.store.all().filter((m) => matches(m, filter)).sort(newestFirst);
    const records = all.slice(0, limit);
    const token = this.issue({ filter: { messageType: filter.messageType, direction: filter.direction }, syncTime: now, generation: this.generation });
    return {
      uri: new URL(resolvedPath(url.pathname, this.store.owner.extensionId) + url.search, baseUrl).toString(),
      records: records.map((m) => messageJson(m, baseUrl)),
      syncInfo: { syncType: "FSync", syncToken: token, syncTime: isoTime(now), olderRecordsExist: all.length > records.length },
    };
  }

  private incremental(q: URLSearchParams, url: URL, baseUrl: string): Record<string, unknown> {
    const token = q.get("syncToken");
    if (!token) throw invalidParam("syncToken");
    const frame = this.tokens.get(token);
    if (!frame || frame.generation !== this.generation) {
      throw rcError(400, "MSG-333", "Invalid message synchronisation request: full synchronization is required");
    }
    const now = Date.now();
    const since = frame.syncTime - SYNC_OVERLAP_MS;
    const changed = this.store
      .all()
      .filter((m) => m.lastModifiedTime >= since && matches(m, frame.filter))
      .sort(newestFirst);
    const next = this.issue({ filter: frame.filter, syncTime: now, generation: this.generation });
    return {
      uri: new URL(resolvedPath(url.pathname, this.store.owner.extensionId) + url.search, baseUrl).toString(),
      records: changed.map((m) => this.record(m, baseUrl)),
      syncInfo: { syncType: "ISync", syncToken: next, syncTime: isoTime(now), olderRecordsExist: false },
    };
  }

  /** Deleted or purged messages come back as id and availability only. */
  private record(m: StoredMessage, baseUrl: string): Record<string, unknown> {
    if (m.availability === "Alive") return messageJson(m, baseUrl);
    return { id: m.id, uri: baseUrl + messagePath(m.id, this.store.owner.extensionId), availability: m.availability };
  }

  private issue(frame: SyncFrame): string {
    const token = randomBytes(18).toString("base64url");
    this.tokens.set(token, frame);
    return token;
  }
}
