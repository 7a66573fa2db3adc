/**
 * InboundStore (src/store/ports.ts) on PostgreSQL; the model and the
 * exactly-once rules are in ../inbound.ts. As in ../sqlite/inbound.ts, the
 * sync cursor commits with the faxes it found (`ON CONFLICT DO NOTHING` on
 * extension + RingCentral id, so two instances recording one fax make one
 * row), and deliveries are claimed with `FOR UPDATE SKIP LOCKED` under leases
 * timed by the database clock and fenced by owner.
 */
import type { Logger } from "../../log.js";
import { newId } from "../../util/ids.js";
import { newOwnerId } from "../owner.js";
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
import { deleteFinished, inTransaction, type Pool, type SqlParam } from "./connect.js";
import { clockSql, type PgStoreOptions } from "./outbound.js";


export interface PgInboundStoreOptions extends PgStoreOptions {
  /** InboundRow ids; default src/util/ids.ts newId. */
  readonly newId?: (now: number) => string;
}

export class PgInboundStore implements InboundStore {
  readonly owner: string;
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #now: (() => number) | undefined;
  readonly #newId: (now: number) => string;
  /** Rows whose lease this store took and has not given back: finishing them is fenced by owner. */
  readonly #held = new Set<string>();

  constructor(pool: Pool, opts: PgInboundStoreOptions) {
    this.#pool = pool;
    this.#log = opts.logger;
    this.#now = opts.now;
    this.#newId = opts.newId ?? newId;
    this.owner = opts.owner ?? newOwnerId();
  }

  get #clock(): string {
    return clockSql(this.#now);
  }

  async getCursor(extension: string): Promise<SyncCursor | undefined> {
    const r = await this.#pool.query<CursorRow>(
      "SELECT sync_token, sync_time, last_full_sync_at FROM inbound_sync WHERE extension = $1",
      [extension],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : { syncToken: row.sync_token, syncTime: row.sync_time, lastFullSyncAt: row.last_full_sync_at };
  }

  async recordSync(extension: string, cursor: SyncCursor, faxes: readonly NewInboundFax[], now: number): Promise<InboundFax[]> {
    return inTransaction(this.#pool, async (c) => {
      const out: InboundFax[] = [];
      for (const f of faxes) {
        const r = await c.query<InboundRow>(
          `INSERT INTO inbound_faxes (id, extension, rc_message_id, state, attempts, next_attempt_at, message, mail_message_id, discovered_at, updated_at)
           VALUES ($1, $2, $3, 'discovered', 0, $4, $5, $6, $4, $4) ON CONFLICT (extension, rc_message_id) DO NOTHING RETURNING *`,
          [this.#newId(now), f.extension, f.rcMessageId, now, JSON.stringify(f.message), inboundMailMessageId(f.extension, f.rcMessageId)],
        );
        const row = r.rows[0];
        if (row !== undefined) out.push(inboundFromRow(row));
      }
      await c.query(
        `INSERT INTO inbound_sync (extension, sync_token, sync_time, last_full_sync_at, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (extension) DO UPDATE SET sync_token = excluded.sync_token, sync_time = excluded.sync_time,
           last_full_sync_at = excluded.last_full_sync_at, updated_at = excluded.updated_at`,
        [extension, cursor.syncToken, cursor.syncTime, cursor.lastFullSyncAt, now],
      );
      return out;
    });
  }

  async clearCursor(extension: string): Promise<void> {
    await this.#pool.query("DELETE FROM inbound_sync WHERE extension = $1", [extension]);
  }

  async claimDue(opts: ClaimInboundOptions): Promise<InboundFax[]> {
    if (opts.limit <= 0) return [];
    const clock = this.#clock;
    const r = await this.#pool.query<InboundRow>(
      `WITH due AS (
         SELECT id FROM inbound_faxes
         WHERE state = 'discovered' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= ${clock})
         ORDER BY next_attempt_at, id LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       UPDATE inbound_faxes f SET lease_until = ${clock} + $3, lease_owner = $4, updated_at = $1
       FROM due WHERE f.id = due.id
       RETURNING f.*`,
      [opts.now, opts.limit, opts.leaseMs, this.owner],
    );
    const faxes = r.rows.map(inboundFromRow).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const f of faxes) this.#held.add(f.id);
    return faxes;
  }

  async renewLease(id: string, leaseMs: number): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE inbound_faxes SET lease_until = ${this.#clock} + $1 WHERE id = $2 AND state = 'discovered' AND lease_owner = $3 AND lease_until IS NOT NULL`,
      [leaseMs, id, this.owner],
    );
    const ok = r.rowCount === 1;
    // A lease lost to another owner stays fenced: this store's later transitions of the row are refused.
    return ok;
  }

  async nextWakeAt(): Promise<number | undefined> {
    const r = await this.#pool.query<{ at: number | null }>(
      "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, 0))) AS at FROM inbound_faxes WHERE state = 'discovered'",
    );
    return r.rows[0]?.at ?? undefined;
  }

  async markDelivered(id: string, route: InboundRouteResult, now: number): Promise<InboundFax> {
    return this.#update(id, "state = 'delivered', route = $3, delivered_at = $4, last_error = NULL, updated_at = $4", [JSON.stringify(route), now]);
  }

  async defer(id: string, nextAttemptAt: number, error: string, now: number): Promise<InboundFax> {
    return this.#update(id, "attempts = attempts + 1, next_attempt_at = $3, last_error = $4, updated_at = $5", [nextAttemptAt, clip(error), now]);
  }

  async markDead(id: string, error: string, now: number): Promise<InboundFax> {
    return this.#update(id, "state = 'dead', attempts = attempts + 1, last_error = $3, updated_at = $4", [clip(error), now]);
  }

  async release(id: string, now: number): Promise<void> {
    const fenced = this.#held.has(id);
    await this.#pool.query(
      `UPDATE inbound_faxes SET lease_until = NULL, lease_owner = NULL, updated_at = $2 WHERE id = $1 AND state = 'discovered'${fenced ? " AND lease_owner = $3" : ""}`,
      fenced ? [id, now, this.owner] : [id, now],
    );
    this.#held.delete(id);
  }

  /** Finish a `discovered` row (releasing its lease): $1 is the id, $2 the owner when fenced, $3… the caller's values. */
  async #update(id: string, sets: string, values: SqlParam[]): Promise<InboundFax> {
    const fenced = this.#held.has(id);
    const fax = await inTransaction(this.#pool, async (c) => {
      const r = await c.query<InboundRow>(
        `UPDATE inbound_faxes SET ${sets}, lease_until = NULL, lease_owner = NULL
         WHERE id = $1 AND state = 'discovered' AND ($2::text IS NULL OR lease_owner = $2) RETURNING *`,
        [id, fenced ? this.owner : null, ...values],
      );
      const row = r.rows[0];
      if (row !== undefined) return inboundFromRow(row);
      const found = (await c.query<InboundRow>("SELECT * FROM inbound_faxes WHERE id = $1", [id])).rows[0];
      if (found === undefined) throw new InboundStateError(id, `inbound fax ${id} does not exist`);
      if (fenced && found.state === "discovered") {
        throw new InboundStateError(id, `inbound fax ${id}: the lease of ${this.owner} was lost${found.lease_until === null ? "" : ` (now held by ${found.lease_owner ?? "?"})`}`);
      }
      throw new InboundStateError(id, `inbound fax ${id} is ${found.state}, expected discovered`);
    });
    this.#held.delete(id);
    return fax;
  }

  async get(id: string): Promise<InboundFax | undefined> {
    const row = (await this.#pool.query<InboundRow>("SELECT * FROM inbound_faxes WHERE id = $1", [id])).rows[0];
    return row === undefined ? undefined : inboundFromRow(row);
  }

  async findByRcId(extension: string, rcMessageId: string): Promise<InboundFax | undefined> {
    const row = (await this.#pool.query<InboundRow>("SELECT * FROM inbound_faxes WHERE extension = $1 AND rc_message_id = $2", [extension, rcMessageId])).rows[0];
    return row === undefined ? undefined : inboundFromRow(row);
  }

  async findDeliveredByRcId(rcMessageId: string): Promise<InboundFax[]> {
    const r = await this.#pool.query<InboundRow>("SELECT * FROM inbound_faxes WHERE rc_message_id = $1 AND state = 'delivered' ORDER BY id", [rcMessageId]);
    return r.rows.map(inboundFromRow);
  }

  async listInbound(opts: ListInboundOptions = {}): Promise<InboundFax[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    const add = (v: SqlParam): string => {
      params.push(v);
      return `$${params.length}`;
    };
    if (opts.state !== undefined) {
      const states: readonly InboundState[] = typeof opts.state === "string" ? [opts.state] : opts.state;
      if (states.length === 0) return [];
      where.push(`state = ANY(${add(states)}::text[])`);
    }
    if (opts.after !== undefined) where.push(`id > ${add(opts.after)}`);
    if (opts.before !== undefined) where.push(`id < ${add(opts.before)}`);
    const r = await this.#pool.query<InboundRow>(
      `SELECT * FROM inbound_faxes ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id${opts.newestFirst === true ? " DESC" : ""} LIMIT ${add(opts.limit ?? 100)}`,
      params,
    );
    return r.rows.map(inboundFromRow);
  }

  async countByState(): Promise<Record<InboundState, number>> {
    const out: Record<InboundState, number> = { discovered: 0, delivered: 0, dead: 0 };
    const r = await this.#pool.query<{ state: InboundState; n: number }>("SELECT state, COUNT(*)::int AS n FROM inbound_faxes GROUP BY state");
    for (const row of r.rows) out[row.state] = row.n;
    return out;
  }

  async purgeFinished(before: number, limit: number): Promise<string[]> {
    const ids = await deleteFinished(this.#pool, "inbound_faxes", ["delivered", "dead"], before, limit);
    if (ids.length > 0) this.#log.info({ event: "inbound.purged", count: ids.length }, "finished inbound faxes past retention deleted");
    return ids;
  }

  async redeliver(id: string, now: number): Promise<InboundFax | undefined> {
    const fax = await inTransaction(this.#pool, async (c) => {
      const row = (await c.query<InboundRow>("SELECT * FROM inbound_faxes WHERE id = $1 FOR UPDATE", [id])).rows[0];
      if (row === undefined) return undefined;
      if (row.state === "discovered") return inboundFromRow(row);
      const r = await c.query<InboundRow>(
        `UPDATE inbound_faxes SET state = 'discovered', attempts = 0, next_attempt_at = $2, lease_until = NULL, lease_owner = NULL, delivered_at = NULL, updated_at = $2
         WHERE id = $1 RETURNING *`,
        [id, now],
      );
      const after = r.rows[0];
      return after === undefined ? undefined : inboundFromRow(after);
    });
    if (fax !== undefined) this.#log.info({ event: "inbound.redeliver", faxId: id, rcMessageId: fax.rcMessageId }, "fax queued for redelivery");
    return fax;
  }

  async getValue(key: string): Promise<string | undefined> {
    const r = await this.#pool.query<{ value: string }>("SELECT value FROM inbound_kv WHERE key = $1", [key]);
    return r.rows[0]?.value;
  }

  async setValue(key: string, value: string, now: number): Promise<void> {
    await this.#pool.query(
      "INSERT INTO inbound_kv (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      [key, value, now],
    );
  }

  async setValueIfAbsent(key: string, value: string, now: number): Promise<string> {
    await this.#pool.query("INSERT INTO inbound_kv (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING", [key, value, now]);
    // A separate statement: it sees the row another instance committed while ours waited on the conflict.
    return (await this.getValue(key)) ?? value;
  }

  async deleteValue(key: string): Promise<void> {
    await this.#pool.query("DELETE FROM inbound_kv WHERE key = $1", [key]);
  }
}
