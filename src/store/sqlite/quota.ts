import type { QuotaEntry, QuotaLimit, QuotaStore, QuotaTake } from "../ports.js";
import { freeAt, newTakeId, sortedKeys } from "../rows/quota.js";
import type { Db, Migration } from "./db.js";

/**
 * The quota ledger (QuotaStore, src/store/ports.ts) on SQLite. A take is one
 * IMMEDIATE transaction: it holds the database's write lock from its first
 * read, so the daemon and a `faxbridge send` next to it cannot both fit under
 * the same limit.
 */
export const quotaMigration: Migration = {
  module: "quota",
  steps: [
    `CREATE TABLE quota_usage (
       take_id TEXT NOT NULL,
       key TEXT NOT NULL,
       at INTEGER NOT NULL,
       n INTEGER NOT NULL
     );
     CREATE INDEX quota_usage_key_at ON quota_usage (key, at);
     CREATE INDEX quota_usage_take ON quota_usage (take_id);
     CREATE INDEX quota_usage_at ON quota_usage (at);
     CREATE TABLE quota_seeds (
       scope TEXT PRIMARY KEY,
       at INTEGER NOT NULL
     );`,
  ],
};

export class SqliteQuotaStore implements QuotaStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  #verdict(limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): QuotaTake | undefined {
    const since = at - windowMs;
    const used = this.#db.prepare<[string, number], { total: number | null }>("SELECT sum(n) AS total FROM quota_usage WHERE key = ? AND at > ?");
    for (const l of limits) {
      if (l.limit <= 0) continue;
      const total = used.get(l.key, since)?.total ?? 0;
      if (total + n > l.limit) {
        const events = this.#db.prepare<[string, number], { at: number; n: number }>("SELECT at, n FROM quota_usage WHERE key = ? AND at > ? ORDER BY at").all(l.key, since);
        return { ok: false, key: l.key, limit: l.limit, freeAt: freeAt(events, l.limit, n, windowMs, at) };
      }
    }
    return undefined;
  }

  async take(limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): Promise<QuotaTake> {
    const id = newTakeId();
    return this.#db
      .transaction((): QuotaTake => {
        const refused = this.#verdict(limits, n, at, windowMs);
        if (refused !== undefined) return refused;
        const insert = this.#db.prepare("INSERT INTO quota_usage (take_id, key, at, n) VALUES (?, ?, ?, ?)");
        for (const key of sortedKeys(limits)) insert.run(id, key, at, n);
        return { ok: true, id };
      })
      .immediate();
  }

  async check(limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): Promise<QuotaTake> {
    return this.#verdict(limits, n, at, windowMs) ?? { ok: true, id: "" };
  }

  async release(id: string): Promise<void> {
    this.#db.prepare("DELETE FROM quota_usage WHERE take_id = ?").run(id);
  }

  async seed(scope: string, entries: readonly QuotaEntry[]): Promise<boolean> {
    return this.#db
      .transaction((): boolean => {
        const first = this.#db.prepare("INSERT OR IGNORE INTO quota_seeds (scope, at) VALUES (?, ?)").run(scope, Date.now());
        if (first.changes !== 1) return false;
        const insert = this.#db.prepare("INSERT INTO quota_usage (take_id, key, at, n) VALUES (?, ?, ?, ?)");
        for (const e of entries) {
          const id = newTakeId();
          for (const key of new Set(e.keys)) insert.run(id, key, e.at, e.n);
        }
        return true;
      })
      .immediate();
  }

  async purge(before: number): Promise<number> {
    return this.#db.prepare("DELETE FROM quota_usage WHERE at < ?").run(before).changes;
  }
}
