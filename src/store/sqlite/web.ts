import { IDEMPOTENCY_TTL_MS, type IdempotencyClaim, type WebStore } from "../ports.js";
import { newSession, sha256, type SessionUserRow } from "../rows/web.js";
import type { Db, Migration } from "./db.js";

/**
 * What the web console and the API keep in the database: sign-in sessions
 * (so a sign-out or a restart is honoured and a stolen cookie can be revoked),
 * idempotency records of API submissions, and spent one-time links.
 * Secrets (session ids) are stored only as SHA-256 hashes.
 */
export const webMigration: Migration = {
  module: "web",
  steps: [
    `CREATE TABLE web_sessions (
       id_hash TEXT PRIMARY KEY,
       username TEXT NOT NULL,
       credential TEXT NOT NULL,
       created_at INTEGER NOT NULL,
       expires_at INTEGER NOT NULL
     );
     CREATE TABLE api_idempotency (
       token TEXT NOT NULL,
       key TEXT NOT NULL,
       body_hash TEXT NOT NULL,
       job_id TEXT NOT NULL,
       status INTEGER,
       response TEXT,
       created_at INTEGER NOT NULL,
       PRIMARY KEY (token, key)
     );
     CREATE TABLE web_link_uses (
       link_hash TEXT PRIMARY KEY,
       used_at INTEGER NOT NULL
     );`,
  ],
};

/** WebStore (src/store/ports.ts) on SQLite. */
export class SqliteWebStore implements WebStore {
  readonly #db: Db;
  readonly #now: () => number;

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db;
    this.#now = now;
  }

  /**
   * A new session; returns the cookie value (never stored as such).
   * `credential` names the password it was opened with (a hash of the stored
   * hash): changing a user's password in the config ends their sessions.
   */
  async createSession(username: string, credential: string, ttlMs: number): Promise<string> {
    const now = this.#now();
    const { id, values } = newSession(username, credential, ttlMs, now);
    this.#db.prepare("DELETE FROM web_sessions WHERE expires_at < ?").run(now);
    this.#db.prepare("INSERT INTO web_sessions (id_hash, username, credential, created_at, expires_at) VALUES (?, ?, ?, ?, ?)").run(...values);
    return id;
  }

  async sessionUser(id: string): Promise<SessionUserRow | undefined> {
    return this.#db
      .prepare<[string, number], SessionUserRow>("SELECT username, credential FROM web_sessions WHERE id_hash = ? AND expires_at > ?")
      .get(sha256(id), this.#now());
  }

  async endSession(id: string): Promise<void> {
    this.#db.prepare("DELETE FROM web_sessions WHERE id_hash = ?").run(sha256(id));
  }

  /**
   * Claim an Idempotency-Key for a body (one synchronous transaction, so two
   * concurrent requests cannot both see "new").
   */
  async claimIdempotency(token: string, key: string, bodyHash: string, jobId: string): Promise<IdempotencyClaim> {
    const now = this.#now();
    return this.#db.transaction((): IdempotencyClaim => {
      this.#db.prepare("DELETE FROM api_idempotency WHERE created_at < ?").run(now - IDEMPOTENCY_TTL_MS);
      const row = this.#db
        .prepare<[string, string], { body_hash: string; job_id: string; status: number | null; response: string | null }>(
          "SELECT body_hash, job_id, status, response FROM api_idempotency WHERE token = ? AND key = ?",
        )
        .get(token, key);
      if (row === undefined) {
        this.#db.prepare("INSERT INTO api_idempotency (token, key, body_hash, job_id, created_at) VALUES (?, ?, ?, ?, ?)").run(token, key, bodyHash, jobId, now);
        return { kind: "new" };
      }
      if (row.body_hash !== bodyHash) return { kind: "mismatch" };
      if (row.status === null || row.response === null) return { kind: "in_progress", jobId: row.job_id };
      return { kind: "replay", status: row.status, response: row.response };
    })();
  }

  /** Take over a key left unanswered by a stopped process whose job was never recorded. */
  async reclaimIdempotency(token: string, key: string, jobId: string): Promise<void> {
    this.#db.prepare("UPDATE api_idempotency SET job_id = ?, created_at = ? WHERE token = ? AND key = ? AND status IS NULL").run(jobId, this.#now(), token, key);
  }

  /** Record the answer to a claimed key (only successful submissions are kept; a refusal frees the key). */
  async settleIdempotency(token: string, key: string, status: number, response: string | undefined): Promise<void> {
    if (response === undefined) this.#db.prepare("DELETE FROM api_idempotency WHERE token = ? AND key = ?").run(token, key);
    else this.#db.prepare("UPDATE api_idempotency SET status = ?, response = ? WHERE token = ? AND key = ?").run(status, response, token, key);
  }

  /** Spend a one-time link; false when it was spent before. */
  async spendLink(link: string): Promise<boolean> {
    const r = this.#db.prepare("INSERT OR IGNORE INTO web_link_uses (link_hash, used_at) VALUES (?, ?)").run(sha256(link), this.#now());
    return r.changes === 1;
  }
}
