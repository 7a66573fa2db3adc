/**
 * Backend-neutral pieces of the web tables shared by the SQLite
 * (../sqlite/web.ts) and PostgreSQL (../pg/web.ts) stores. Secrets (session
 * ids, credentials, links) are stored only as SHA-256 hashes.
 */
import { createHash, randomBytes } from "node:crypto";

export function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** What web_sessions returns for a live session. */
export interface SessionUserRow {
  username: string;
  credential: string;
}

/** The web_sessions columns (id_hash, username, credential, created_at, expires_at), in that order. */
export type SessionValues = [idHash: string, username: string, credential: string, createdAt: number, expiresAt: number];

/** A new session: the cookie value (never stored as such) and the row to insert. */
export function newSession(username: string, credential: string, ttlMs: number, now: number): { id: string; values: SessionValues } {
  const id = randomBytes(32).toString("base64url");
  return { id, values: [sha256(id), username, sha256(credential), now, now + ttlMs] };
}
