/**
 * InboundStore (src/store/ports.ts) on SQLite; the model and the
 * exactly-once rules are in ../inbound.ts. Leases are timed by the store's
 * clock and fenced by owner like the outbound store's.
 */
import type { Logger } from "../../log.js";
import { newId } from "../../util/ids.js";
import {
  InboundStateError,
  inboundMailMessageId,
  type ClaimInboundOptions,
  type InboundFax,
  type InboundRouteResult,
  type InboundState,
  type InboundStore,
  type ListInboundOptions,
  type NewInboundFax,
  type SyncCursor,
} from "../ports.js";
import { clip, inboundFromRow, type CursorRow, type InboundRow } from "../rows/inbound.js";
import type { Db, Migration } from "./db.js";
import { newOwnerId } from "../owner.js";

export const inboundMigration: Migration = {
  module: "inbound",
  steps: [
    `CREATE TABLE inbound_sync (
       extension TEXT PRIMARY KEY,
       sync_token TEXT NOT NULL,
       sync_time TEXT,
       last_full_sync_at INTEGER,
       updated_at INTEGER NOT NULL
     );
     CREATE TABLE inbound_faxes (
       id TEXT PRIMARY KEY,
       extension TEXT NOT NULL,
       rc_message_id TEXT NOT NULL,
       state TEXT NOT NULL CHECK (state IN ('discovered','delivered','dead')),
       attempts INTEGER NOT NULL DEFAULT 0,
       next_attempt_at INTEGER NOT NULL,
       lease_until INTEGER,
       message TEXT NOT NULL,
       route TEXT,
       mail_message_id TEXT NOT NULL,
       discovered_at INTEGER NOT NULL,
       delivered_at INTEGER,
       last_error TEXT,
       updated_at INTEGER NOT NULL,
       UNIQUE (extension, rc_message_id)
     );
     CREATE INDEX inbound_faxes_due ON inbound_faxes (state, next_attempt_at);
     CREATE TABLE inbound_kv (
       key TEXT PRIMARY KEY,
       value TEXT NOT NULL,
       updated_at INTEGER NOT NULL
     );`,
    // Store ports (issue 10): leases record their owner.
    `ALTER TABLE inbound_faxes ADD COLUMN lease_owner TEXT;`,
  ],
};


export interface SqliteInboundStoreOptions {
  readonly db: Db;
  readonly logger: Logger;
  /** InboundRow ids; default src/util/ids.ts newId. */
  readonly newId?: (now: number) => string;
  /**
   * The store's clock for leases. Without one, leases run from the `now` the
   * caller passes (one machine: the same clock).
   */
  readonly now?: () => number;
  /** Who this store's leases belong to; default a fresh random id. */
  readonly owner?: string;
}

/**
 * InboundStore on the SQLite database from openDatabase() (opened with
 * `inboundMigration`).
 */
export class SqliteInboundStore implements InboundStore {
  readonly owner: string;
  readonly #db: Db;
  readonly #clock: (() => number) | undefined;
  /** Rows whose lease this store took and has not given back: finishing them is fenced by owner. */
  readonly #held = new Set<string>();
  readonly #newId: (now: number) => string;
  readonly #stmts;
  readonly #log: Logger;

  constructor(opts: SqliteInboundStoreOptions) {
    const db = opts.db;
    this.#db = db;
    this.#log = opts.logger;
    this.#newId = opts.newId ?? newId;
    this.#clock = opts.now;
    this.owner = opts.owner ?? newOwnerId();
    this.#stmts = {
      getCursor: db.prepare<[string], CursorRow>("SELECT sync_token, sync_time, last_full_sync_at FROM inbound_sync WHERE extension = ?"),
      putCursor: db.prepare<[string, string, string | null, number | null, number]>(
        `INSERT INTO inbound_sync (extension, sync_token, sync_time, last_full_sync_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(extension) DO UPDATE SET sync_token = excluded.sync_token, sync_time = excluded.sync_time,
           last_full_sync_at = excluded.last_full_sync_at, updated_at = excluded.updated_at`,
      ),
      clearCursor: db.prepare<[string]>("DELETE FROM inbound_sync WHERE extension = ?"),
      insertFax: db.prepare<[string, string, string, number, string, string, number, number]>(
        // Only the (extension, rc_message_id) conflict is ignored (INSERT OR IGNORE would also swallow NOT NULL violations).
        `INSERT INTO inbound_faxes (id, extension, rc_message_id, state, attempts, next_attempt_at, message, mail_message_id, discovered_at, updated_at)
         VALUES (?, ?, ?, 'discovered', 0, ?, ?, ?, ?, ?) ON CONFLICT (extension, rc_message_id) DO NOTHING`,
      ),
      get: db.prepare<[string], InboundRow>("SELECT * FROM inbound_faxes WHERE id = ?"),
      byRcId: db.prepare<[string, string], InboundRow>("SELECT * FROM inbound_faxes WHERE extension = ? AND rc_message_id = ?"),
      due: db.prepare<[number, number, number], InboundRow>(
        `SELECT * FROM inbound_faxes WHERE state = 'discovered' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
         ORDER BY next_attempt_at, id LIMIT ?`,
      ),
      lease: db.prepare<[number, string, number, string]>("UPDATE inbound_faxes SET lease_until = ?, lease_owner = ?, updated_at = ? WHERE id = ?"),
      renew: db.prepare<[number, string, string]>("UPDATE inbound_faxes SET lease_until = ? WHERE id = ? AND state = 'discovered' AND lease_owner = ? AND lease_until IS NOT NULL"),
      nextWake: db.prepare<[], { at: number | null }>(
        "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) AS at FROM inbound_faxes WHERE state = 'discovered'",
      ),
      delivered: db.prepare<[string, number, number, string, number, string | null]>(
        `UPDATE inbound_faxes SET state = 'delivered', route = ?, delivered_at = ?, last_error = NULL, lease_until = NULL, lease_owner = NULL, updated_at = ?
         WHERE id = ? AND state = 'discovered' AND (? = 0 OR lease_owner IS ?)`,
      ),
      defer: db.prepare<[number, string, number, string, number, string | null]>(
        `UPDATE inbound_faxes SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, lease_until = NULL, lease_owner = NULL, updated_at = ?
         WHERE id = ? AND state = 'discovered' AND (? = 0 OR lease_owner IS ?)`,
      ),
      dead: db.prepare<[string, number, string, number, string | null]>(
        `UPDATE inbound_faxes SET state = 'dead', attempts = attempts + 1, last_error = ?, lease_until = NULL, lease_owner = NULL, updated_at = ?
         WHERE id = ? AND state = 'discovered' AND (? = 0 OR lease_owner IS ?)`,
      ),
      release: db.prepare<[number, string, number, string | null]>("UPDATE inbound_faxes SET lease_until = NULL, lease_owner = NULL, updated_at = ? WHERE id = ? AND state = 'discovered' AND (? = 0 OR lease_owner IS ?)"),
      redeliver: db.prepare<[number, number, string]>(
        `UPDATE inbound_faxes SET state = 'discovered', attempts = 0, next_attempt_at = ?, lease_until = NULL, lease_owner = NULL, delivered_at = NULL, updated_at = ?
         WHERE id = ? AND state IN ('delivered','dead')`,
      ),
      count: db.prepare<[], { state: InboundState; n: number }>("SELECT state, COUNT(*) AS n FROM inbound_faxes GROUP BY state"),
      getValue: db.prepare<[string], { value: string }>("SELECT value FROM inbound_kv WHERE key = ?"),
      setValue: db.prepare<[string, string, number]>(
        "INSERT INTO inbound_kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      ),
      setValueIfAbsent: db.prepare<[string, string, number]>("INSERT INTO inbound_kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING"),
      deleteValue: db.prepare<[string]>("DELETE FROM inbound_kv WHERE key = ?"),
    };
  }

  async getCursor(extension: string): Promise<SyncCursor | undefined> {
    const r = this.#stmts.getCursor.get(extension);
    return r === undefined ? undefined : { syncToken: r.sync_token, syncTime: r.sync_time, lastFullSyncAt: r.last_full_sync_at };
  }

  async recordSync(extension: string, cursor: SyncCursor, faxes: readonly NewInboundFax[], now: number): Promise<InboundFax[]> {
    const inserted = this.#db.transaction(() => {
      const out: InboundFax[] = [];
      for (const f of faxes) {
        const id = this.#newId(now);
        const res = this.#stmts.insertFax.run(
          id,
          f.extension,
          f.rcMessageId,
          now,
          JSON.stringify(f.message),
          inboundMailMessageId(f.extension, f.rcMessageId),
          now,
          now,
        );
        if (res.changes === 1) {
          const row = this.#stmts.get.get(id);
          if (row !== undefined) out.push(inboundFromRow(row));
        }
      }
      this.#stmts.putCursor.run(extension, cursor.syncToken, cursor.syncTime, cursor.lastFullSyncAt, now);
      return out;
    })();
    return inserted;
  }

  async clearCursor(extension: string): Promise<void> {
    this.#stmts.clearCursor.run(extension);
  }

  async claimDue(opts: ClaimInboundOptions): Promise<InboundFax[]> {
    const clock = this.#clock?.() ?? opts.now;
    const claimed = this.#db.transaction(() => {
      const rows = this.#stmts.due.all(opts.now, opts.now, opts.limit);
      const until = clock + opts.leaseMs;
      for (const r of rows) this.#stmts.lease.run(until, this.owner, opts.now, r.id);
      return rows.map((r) => inboundFromRow({ ...r, lease_until: until, lease_owner: this.owner, updated_at: opts.now }));
    }).immediate();
    for (const f of claimed) this.#held.add(f.id);
    return claimed;
  }

  async renewLease(id: string, leaseMs: number): Promise<boolean> {
    const ok = this.#stmts.renew.run((this.#clock?.() ?? Date.now()) + leaseMs, id, this.owner).changes === 1;
    // A lease lost to another owner stays fenced: this store's later transitions of the row are refused.
    return ok;
  }

  async nextWakeAt(): Promise<number | undefined> {
    const r = this.#stmts.nextWake.get();
    return r?.at ?? undefined;
  }

  /** The fencing arguments of an update: (1, owner) for a row this store holds, (0, null) otherwise. */
  #fence(id: string): [number, string | null] {
    return this.#held.has(id) ? [1, this.owner] : [0, null];
  }

  async markDelivered(id: string, route: InboundRouteResult, now: number): Promise<InboundFax> {
    return this.#update(id, () => this.#stmts.delivered.run(JSON.stringify(route), now, now, id, ...this.#fence(id)).changes);
  }

  async defer(id: string, nextAttemptAt: number, error: string, now: number): Promise<InboundFax> {
    return this.#update(id, () => this.#stmts.defer.run(nextAttemptAt, clip(error), now, id, ...this.#fence(id)).changes);
  }

  async markDead(id: string, error: string, now: number): Promise<InboundFax> {
    return this.#update(id, () => this.#stmts.dead.run(clip(error), now, id, ...this.#fence(id)).changes);
  }

  async release(id: string, now: number): Promise<void> {
    this.#stmts.release.run(now, id, ...this.#fence(id));
    this.#held.delete(id);
  }

  #update(id: string, run: () => number): InboundFax {
    const fenced = this.#held.has(id);
    const fax = this.#db.transaction(() => {
      const changes = run();
      const row = this.#stmts.get.get(id);
      if (row === undefined) throw new InboundStateError(id, `inbound fax ${id} does not exist`);
      if (changes !== 1 && fenced && row.state === "discovered") {
        throw new InboundStateError(id, `inbound fax ${id}: the lease of ${this.owner} was lost${row.lease_until === null ? "" : ` (now held by ${row.lease_owner ?? "?"})`}`);
      }
      if (changes !== 1) throw new InboundStateError(id, `inbound fax ${id} is ${row.state}, expected discovered`);
      return inboundFromRow(row);
    }).immediate();
    this.#held.delete(id);
    return fax;
  }

  async get(id: string): Promise<InboundFax | undefined> {
    const r = this.#stmts.get.get(id);
    return r === undefined ? undefined : inboundFromRow(r);
  }

  async findByRcId(extension: string, rcMessageId: string): Promise<InboundFax | undefined> {
    const r = this.#stmts.byRcId.get(extension, rcMessageId);
    return r === undefined ? undefined : inboundFromRow(r);
  }

  async findDeliveredByRcId(rcMessageId: string): Promise<InboundFax[]> {
    return this.#db
      .prepare<[string], InboundRow>("SELECT * FROM inbound_faxes WHERE rc_message_id = ? AND state = 'delivered' ORDER BY id")
      .all(rcMessageId)
      .map(inboundFromRow);
  }

  async listInbound(opts: ListInboundOptions = {}): Promise<InboundFax[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (opts.state !== undefined) {
      const states: readonly InboundState[] = typeof opts.state === "string" ? [opts.state] : opts.state;
      if (states.length === 0) return [];
      where.push(`state IN (${states.map(() => "?").join(",")})`);
      params.push(...states);
    }
    if (opts.after !== undefined) {
      where.push("id > ?");
      params.push(opts.after);
    }
    if (opts.before !== undefined) {
      where.push("id < ?");
      params.push(opts.before);
    }
    const sql = `SELECT * FROM inbound_faxes ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id${opts.newestFirst === true ? " DESC" : ""} LIMIT ?`;
    params.push(opts.limit ?? 100);
    const rows = this.#db.prepare<(string | number)[], InboundRow>(sql).all(...params);
    return rows.map(inboundFromRow);
  }

  async countByState(): Promise<Record<InboundState, number>> {
    const out: Record<InboundState, number> = { discovered: 0, delivered: 0, dead: 0 };
    for (const r of this.#stmts.count.all()) out[r.state] = r.n;
    return out;
  }

  async purgeFinished(before: number, limit: number): Promise<string[]> {
    const ids = this.#db.transaction(() => {
      const rows = this.#db
        .prepare<[number, number], { id: string }>("SELECT id FROM inbound_faxes WHERE state IN ('delivered', 'dead') AND updated_at < ? ORDER BY id LIMIT ?")
        .all(before, limit);
      const del = this.#db.prepare<[string]>("DELETE FROM inbound_faxes WHERE id = ?");
      for (const r of rows) del.run(r.id);
      return rows.map((r) => r.id);
    })();
    if (ids.length > 0) this.#log.info({ event: "inbound.purged", count: ids.length }, "finished inbound faxes past retention deleted");
    return ids;
  }

  async redeliver(id: string, now: number): Promise<InboundFax | undefined> {
    const r = this.#db.transaction(() => {
      const row = this.#stmts.get.get(id);
      if (row === undefined) return undefined;
      if (row.state === "discovered") return inboundFromRow(row);
      this.#stmts.redeliver.run(now, now, id);
      const after = this.#stmts.get.get(id);
      return after === undefined ? undefined : inboundFromRow(after);
    })();
    if (r !== undefined) this.#log.info({ event: "inbound.redeliver", faxId: id, rcMessageId: r.rcMessageId }, "fax queued for redelivery");
    return r;
  }

  async getValue(key: string): Promise<string | undefined> {
    return this.#stmts.getValue.get(key)?.value;
  }

  async setValue(key: string, value: string, now: number): Promise<void> {
    this.#stmts.setValue.run(key, value, now);
  }

  async setValueIfAbsent(key: string, value: string, now: number): Promise<string> {
    this.#stmts.setValueIfAbsent.run(key, value, now);
    return this.#stmts.getValue.get(key)?.value ?? value;
  }

  async deleteValue(key: string): Promise<void> {
    this.#stmts.deleteValue.run(key);
  }
}
