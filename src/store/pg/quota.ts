/**
 * The quota ledger (QuotaStore, src/store/ports.ts) on PostgreSQL, shared by
 * every instance. A take is one transaction that first takes a transaction
 * advisory lock per key (sorted, so two takes never wait on each other in a
 * cycle), then sums the window and inserts: a second instance taking the same
 * key waits for the first to commit and then sees its rows (READ COMMITTED
 * reads a fresh snapshot per statement). The locks are per key, so
 * unrelated senders do not wait for each other; the global key serialises
 * takes only when a global limit is set.
 */
import type { QuotaEntry, QuotaLimit, QuotaStore, QuotaTake } from "../ports.js";
import { freeAt, newTakeId, sortedKeys } from "../rows/quota.js";
import { inTransaction, type Pool, type PoolClient } from "./connect.js";

/** The advisory lock space of quota keys (the first argument of pg_advisory_xact_lock(int, int)): "quot". */
const QUOTA_LOCK_SPACE = 0x71756f74;

async function verdict(c: Pool | PoolClient, limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): Promise<QuotaTake | undefined> {
  const checked = limits.filter((l) => l.limit > 0);
  if (checked.length === 0) return undefined;
  const since = at - windowMs;
  const r = await c.query<{ key: string; total: number }>(
    "SELECT key, sum(n)::bigint AS total FROM quota_usage WHERE key = ANY($1::text[]) AND at > $2 GROUP BY key",
    [checked.map((l) => l.key), since],
  );
  const totals = new Map(r.rows.map((row) => [row.key, Number(row.total)]));
  for (const l of checked) {
    if ((totals.get(l.key) ?? 0) + n <= l.limit) continue;
    const events = await c.query<{ at: number; n: number }>("SELECT at, n FROM quota_usage WHERE key = $1 AND at > $2 ORDER BY at", [l.key, since]);
    return { ok: false, key: l.key, limit: l.limit, freeAt: freeAt(events.rows, l.limit, n, windowMs, at) };
  }
  return undefined;
}

export class PgQuotaStore implements QuotaStore {
  readonly #pool: Pool;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  async take(limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): Promise<QuotaTake> {
    const keys = sortedKeys(limits);
    const id = newTakeId();
    return inTransaction(this.#pool, async (c): Promise<QuotaTake> => {
      for (const key of keys) await c.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [QUOTA_LOCK_SPACE, key]);
      const refused = await verdict(c, limits, n, at, windowMs);
      if (refused !== undefined) return refused;
      await c.query("INSERT INTO quota_usage (take_id, key, at, n) SELECT $1, k, $3, $4 FROM unnest($2::text[]) AS k", [id, keys, at, n]);
      return { ok: true, id };
    });
  }

  async check(limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): Promise<QuotaTake> {
    return (await verdict(this.#pool, limits, n, at, windowMs)) ?? { ok: true, id: "" };
  }

  async release(id: string): Promise<void> {
    await this.#pool.query("DELETE FROM quota_usage WHERE take_id = $1", [id]);
  }

  async seed(scope: string, entries: readonly QuotaEntry[]): Promise<boolean> {
    return inTransaction(this.#pool, async (c) => {
      const first = await c.query("INSERT INTO quota_seeds (scope, at) VALUES ($1, $2) ON CONFLICT (scope) DO NOTHING", [scope, Date.now()]);
      if (first.rowCount !== 1) return false;
      for (const e of entries) {
        await c.query("INSERT INTO quota_usage (take_id, key, at, n) SELECT $1, k, $3, $4 FROM unnest($2::text[]) AS k", [newTakeId(), [...new Set(e.keys)], e.at, e.n]);
      }
      return true;
    });
  }

  async purge(before: number): Promise<number> {
    return (await this.#pool.query("DELETE FROM quota_usage WHERE at < $1", [before])).rowCount ?? 0;
  }
}
