/**
 * WebStore (src/store/ports.ts) on PostgreSQL: sessions, idempotency records
 * and spent links shared by every instance (a session opened on one works on
 * all; an Idempotency-Key is claimed once across them). Secrets are stored
 * only as SHA-256 hashes, as in ../sqlite/web.ts.
 */
import { IDEMPOTENCY_TTL_MS, type IdempotencyClaim, type WebStore } from "../ports.js";
import { newSession, sha256, type SessionUserRow } from "../rows/web.js";
import { inTransaction, type Pool } from "./connect.js";

export class PgWebStore implements WebStore {
  readonly #pool: Pool;
  readonly #now: () => number;

  constructor(pool: Pool, now: () => number = Date.now) {
    this.#pool = pool;
    this.#now = now;
  }

  async createSession(username: string, credential: string, ttlMs: number): Promise<string> {
    const now = this.#now();
    const { id, values } = newSession(username, credential, ttlMs, now);
    await this.#pool.query("DELETE FROM web_sessions WHERE expires_at < $1", [now]);
    await this.#pool.query("INSERT INTO web_sessions (id_hash, username, credential, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)", values);
    return id;
  }

  async sessionUser(id: string): Promise<SessionUserRow | undefined> {
    const r = await this.#pool.query<SessionUserRow>(
      "SELECT username, credential FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
      [sha256(id), this.#now()],
    );
    return r.rows[0];
  }

  async endSession(id: string): Promise<void> {
    await this.#pool.query("DELETE FROM web_sessions WHERE id_hash = $1", [sha256(id)]);
  }

  /** Atomic across instances: the insert either creates the record or finds the one another request made. */
  async claimIdempotency(token: string, key: string, bodyHash: string, jobId: string): Promise<IdempotencyClaim> {
    const now = this.#now();
    return inTransaction(this.#pool, async (c): Promise<IdempotencyClaim> => {
      await c.query("DELETE FROM api_idempotency WHERE created_at < $1", [now - IDEMPOTENCY_TTL_MS]);
      const ins = await c.query(
        "INSERT INTO api_idempotency (token, key, body_hash, job_id, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token, key) DO NOTHING",
        [token, key, bodyHash, jobId, now],
      );
      if (ins.rowCount === 1) return { kind: "new" };
      const row = (
        await c.query<{ body_hash: string; job_id: string; status: number | null; response: string | null }>(
          "SELECT body_hash, job_id, status, response FROM api_idempotency WHERE token = $1 AND key = $2",
          [token, key],
        )
      ).rows[0];
      if (row === undefined) return { kind: "in_progress", jobId };
      if (row.body_hash !== bodyHash) return { kind: "mismatch" };
      if (row.status === null || row.response === null) return { kind: "in_progress", jobId: row.job_id };
      return { kind: "replay", status: row.status, response: row.response };
    });
  }

  async reclaimIdempotency(token: string, key: string, jobId: string): Promise<void> {
    await this.#pool.query("UPDATE api_idempotency SET job_id = $1, created_at = $2 WHERE token = $3 AND key = $4 AND status IS NULL", [jobId, this.#now(), token, key]);
  }

  async settleIdempotency(token: string, key: string, status: number, response: string | undefined): Promise<void> {
    if (response === undefined) await this.#pool.query("DELETE FROM api_idempotency WHERE token = $1 AND key = $2", [token, key]);
    else await this.#pool.query("UPDATE api_idempotency SET status = $1, response = $2 WHERE token = $3 AND key = $4", [status, response, token, key]);
  }

  async spendLink(link: string): Promise<boolean> {
    const r = await this.#pool.query("INSERT INTO web_link_uses (link_hash, used_at) VALUES ($1, $2) ON CONFLICT (link_hash) DO NOTHING", [sha256(link), this.#now()]);
    return r.rowCount === 1;
  }
}
