/**
 * Finds received faxes with RingCentral's message-sync, per watched extension:
 * one FSync (explicit dateFrom, faxes, inbound), then ISync with the stored
 * token; MSG-333 → a fresh FSync from the last syncTime minus a margin. Every
 * sync commits its new cursor together with the faxes it found (see
 * src/store/inbound.ts), so overlap and restarts never duplicate a delivery.
 *
 * Triggers (timer, notifications, start-up, operator) are coalesced per
 * extension: one sync runs at a time, and any trigger during it asks for
 * exactly one more run afterwards. Runs are also spaced by `minGapMs` so a
 * stream of notifications stays inside RingCentral's Light group limit.
 */
import type { MessageApi, SessionApi } from "../rc/api.js";
import { isSyncTokenInvalid } from "../rc/errors.js";
import type { MessageInfo } from "../rc/types.js";
import type { Logger } from "../log.js";
import type { InboundFax, InboundMessage, InboundStore, NewInboundFax, SyncCursor } from "../store/ports.js";

export type SyncClient = Pick<MessageApi, "syncMessages" | "listMessages"> & Pick<SessionApi, "ownerId">;

export interface InboundSyncDeps {
  readonly client: SyncClient;
  readonly store: InboundStore;
  readonly logger: Logger;
  /** On the first sync of an extension, faxes this far back are delivered. */
  readonly lookbackMs: number;
  /** After MSG-333, the fresh FSync starts this long before the last syncTime. */
  readonly resetMarginMs: number;
  /** Least time between the starts of two syncs of the same extension. */
  readonly minGapMs: number;
  readonly now: () => number;
  /** Called with the faxes a sync inserted (not seen before). */
  readonly onDiscovered: (faxes: readonly InboundFax[]) => void;
}

interface Flight {
  readonly promise: Promise<void>;
  again: boolean;
}

const FAX_FILTER = { messageType: ["Fax"], direction: ["Inbound"] } as const;

/** Only finished, present, received faxes become deliveries. */
export function isDeliverableFax(r: MessageInfo): boolean {
  return (
    (r.type === undefined || r.type === "Fax") &&
    r.direction === "Inbound" &&
    r.messageStatus === "Received" &&
    r.availability === "Alive"
  );
}

/** A message-store record → what the store keeps. */
export function toNewFax(r: MessageInfo, extension: string, now: number): NewInboundFax {
  const message: InboundMessage = {
    from: r.from?.phoneNumber ?? "",
    to: (r.to ?? []).map((t) => t.phoneNumber).filter((n): n is string => n !== undefined && n !== ""),
    creationTime: r.creationTime ?? new Date(now).toISOString(),
    attachments: (r.attachments ?? []).map((a) => {
      const fileName = a.fileName ?? a.filename;
      return {
        id: a.id,
        uri: a.uri,
        ...(a.type !== undefined ? { type: a.type } : {}),
        ...(a.contentType !== undefined ? { contentType: a.contentType } : {}),
        ...(a.size !== undefined ? { size: a.size } : {}),
        ...(fileName !== undefined ? { fileName } : {}),
      };
    }),
    ...(r.from?.name !== undefined ? { fromName: r.from.name } : {}),
    ...(r.faxPageCount !== undefined ? { pages: r.faxPageCount } : {}),
    ...(r.faxResolution !== undefined ? { resolution: r.faxResolution } : {}),
    ...(r.subject !== undefined ? { subject: r.subject } : {}),
  };
  return { extension: r.extensionId ?? extension, rcMessageId: r.id, message };
}

export class InboundSync {
  readonly #deps: InboundSyncDeps;
  readonly #log: Logger;
  readonly #flights = new Map<string, Flight>();
  readonly #lastStart = new Map<string, number>();
  readonly #gapWaits = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  #stopped = false;

  constructor(deps: InboundSyncDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
  }

  /**
   * Ask for a sync of `extension`. Resolves when a sync that started after
   * this call has finished; rejects with its error if that sync failed.
   */
  trigger(extension: string): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    const existing = this.#flights.get(extension);
    if (existing) {
      existing.again = true;
      return existing.promise;
    }
    let resolveFlight!: () => void;
    let rejectFlight!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolveFlight = res;
      rejectFlight = rej;
    });
    const flight: Flight = { promise, again: false };
    this.#flights.set(extension, flight);
    void (async () => {
      let lastError: unknown;
      let failed = false;
      do {
        flight.again = false;
        await this.#waitGap(extension);
        if (this.#stopped) break;
        this.#lastStart.set(extension, this.#deps.now());
        try {
          await this.syncOnce(extension);
          failed = false;
        } catch (err) {
          failed = true;
          lastError = err;
          this.#log.warn({ event: "inbound.sync_failed", extension, err }, "inbound sync failed; the next trigger or the timer retries");
        }
      } while (flight.again && !this.#stopped);
      this.#flights.delete(extension);
      if (failed) rejectFlight(lastError);
      else resolveFlight();
    })();
    return promise;
  }

  /** Accept triggers again after stop() (this instance leads inbound sync again). */
  resume(): void {
    this.#stopped = false;
  }

  /** Stop: no new runs; resolves when running syncs have finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const w of this.#gapWaits) {
      clearTimeout(w.timer);
      w.resolve();
    }
    this.#gapWaits.clear();
    await Promise.allSettled([...this.#flights.values()].map((f) => f.promise));
  }

  async #waitGap(extension: string): Promise<void> {
    const last = this.#lastStart.get(extension);
    if (last === undefined || this.#deps.minGapMs <= 0) return;
    const wait = last + this.#deps.minGapMs - this.#deps.now();
    if (wait <= 0) return;
    await new Promise<void>((resolve) => {
      const w = {
        timer: setTimeout(() => {
          this.#gapWaits.delete(w);
          resolve();
        }, wait),
        resolve,
      };
      this.#gapWaits.add(w);
    });
  }

  /** One sync of one extension (not coalesced; use trigger). Returns how many new faxes it found. */
  async syncOnce(extension: string): Promise<number> {
    const cursor = await this.#deps.store.getCursor(extension);
    if (cursor === undefined) {
      const from = this.#deps.now() - this.#deps.lookbackMs;
      return this.#full(extension, from, "first");
    }
    try {
      const res = await this.#deps.client.syncMessages({ syncType: "ISync", syncToken: cursor.syncToken }, extension);
      const next: SyncCursor = { syncToken: res.syncInfo.syncToken, syncTime: res.syncInfo.syncTime ?? cursor.syncTime, lastFullSyncAt: cursor.lastFullSyncAt };
      return await this.#record(extension, "ISync", next, res.records);
    } catch (err) {
      if (!isSyncTokenInvalid(err)) throw err;
      const last = cursor.syncTime !== null ? Date.parse(cursor.syncTime) : Number.NaN;
      const floor = this.#deps.now() - this.#deps.lookbackMs;
      const base = Number.isNaN(last) ? floor : last;
      // inbound.lookbackHours holds after a reset too: a long outage does not mail faxes older than that.
      const from = Math.max(base - this.#deps.resetMarginMs, floor);
      this.#log.warn(
        { event: "inbound.sync_reset", extension, dateFrom: new Date(from).toISOString() },
        "sync token no longer valid (MSG-333): full sync from the last sync time (at most inbound.lookbackHours back)",
      );
      return this.#full(extension, from, "reset");
    }
  }

  async #full(extension: string, dateFrom: number, why: "first" | "reset"): Promise<number> {
    const dateFromIso = new Date(dateFrom).toISOString();
    const res = await this.#deps.client.syncMessages(
      { syncType: "FSync", dateFrom: dateFromIso, messageType: [...FAX_FILTER.messageType], direction: [...FAX_FILTER.direction] },
      extension,
    );
    let records = res.records;
    if (res.syncInfo.olderRecordsExist === true) {
      // FSync returned only the newest part of the frame; page through the rest with the message list.
      const more: MessageInfo[] = [];
      const query = {
        messageType: [...FAX_FILTER.messageType],
        direction: ["Inbound" as const],
        availability: ["Alive" as const],
        dateFrom: dateFromIso,
        perPage: 1000,
        ...(res.syncInfo.syncTime !== undefined ? { dateTo: res.syncInfo.syncTime } : {}),
      };
      for await (const r of this.#deps.client.listMessages(query, extension)) more.push(r);
      records = [...records, ...more];
      this.#log.info({ event: "inbound.sync_paged", extension, extra: more.length }, "full sync had older records; listed them");
    }
    const next: SyncCursor = { syncToken: res.syncInfo.syncToken, syncTime: res.syncInfo.syncTime ?? null, lastFullSyncAt: this.#deps.now() };
    return this.#record(extension, `FSync(${why})`, next, records);
  }

  async #record(extension: string, kind: string, cursor: SyncCursor, records: readonly MessageInfo[]): Promise<number> {
    const now = this.#deps.now();
    const owner = extension === "~" ? (this.#deps.client.ownerId ?? extension) : extension;
    const faxes = records.filter(isDeliverableFax).map((r) => toNewFax(r, owner, now));
    const inserted = await this.#deps.store.recordSync(extension, cursor, faxes, now);
    for (const f of inserted) {
      this.#log.info(
        { event: "inbound.discovered", faxId: f.id, extension: f.extension, rcMessageId: f.rcMessageId, pages: f.message.pages, via: kind },
        "received fax discovered",
      );
    }
    const level = inserted.length > 0 || kind !== "ISync" ? "info" : "debug";
    this.#log[level](
      { event: "inbound.sync", extension, kind, records: records.length, faxes: faxes.length, new: inserted.length },
      "inbound sync done",
    );
    if (inserted.length > 0) this.#deps.onDiscovered(inserted);
    return inserted.length;
  }
}
