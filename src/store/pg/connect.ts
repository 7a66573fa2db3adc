/**
 * The PostgreSQL connection: one pool per process, shared by the stores, the
 * document store and the leader election. Fail closed at start: a malformed
 * URL or a database that cannot be reached is a clear error (without the
 * password) before anything listens.
 */
import pg from "pg";
import type { Logger } from "../../log.js";
import { errorMessage } from "../../errors.js";

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type SqlParam = string | number | boolean | null | Buffer | readonly string[];

/** The database clock, in epoch milliseconds. Leases are timed by it, never by an instance's own clock. */
export const NOW_MS = "(floor(extract(epoch from now()) * 1000))::bigint";

export class DatabaseUrlError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DatabaseUrlError";
  }
}

/** The URL as it may be shown: no password. Malformed input shows only that it was malformed. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(malformed URL)";
  }
}

/** Check the URL's shape; throws DatabaseUrlError (never showing the password). */
export function parseDatabaseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DatabaseUrlError("database.url is not a valid URL; expected postgres://user:password@host:5432/database");
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") {
    throw new DatabaseUrlError(`database.url must start with postgres:// or postgresql:// (got ${u.protocol}//)`);
  }
  if (u.hostname === "") throw new DatabaseUrlError(`database.url ${redactDatabaseUrl(url)} names no host`);
  if (u.pathname.length <= 1) throw new DatabaseUrlError(`database.url ${redactDatabaseUrl(url)} names no database (…/database)`);
  return u;
}

/** BIGINT (epoch ms, sizes) as numbers: every value we store fits in 2^53. */
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === 20 && format !== "binary") return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export interface ConnectOptions {
  readonly logger: Logger;
  /** Most connections this process opens (default 10). */
  readonly max?: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName?: string;
  /** How long to wait for a connection (default 10 s). */
  readonly connectTimeoutMs?: number;
}

/** Strip the password from any text that might repeat it (driver errors). */
function scrub(text: string, url: URL): string {
  const pw = decodeURIComponent(url.password);
  return pw.length > 0 ? text.split(pw).join("***") : text;
}

/**
 * Open a pool and prove it works (one round trip). Throws DatabaseUrlError
 * for a malformed URL and an Error naming the redacted URL when the database
 * cannot be reached or refuses the login.
 */
export async function connectPool(url: string, opts: ConnectOptions): Promise<Pool> {
  const parsed = parseDatabaseUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? "faxbridge",
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    types,
  });
  pool.on("error", (err) => {
    // An idle connection died (server restart, network): the pool replaces it on the next query.
    opts.logger.warn({ event: "db.connection_lost", err: scrub(errorMessage(err), parsed) }, "an idle PostgreSQL connection failed");
  });
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    await pool.end().catch(() => undefined);
    // The driver's error is not attached: only its scrubbed message leaves here (fail closed on secrets).
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`cannot use the PostgreSQL database ${redactDatabaseUrl(url)}: ${scrub(errorMessage(err), parsed)}`);
  }
  return pool;
}

/** Run `fn` in one transaction on one connection; rolls back when it throws. */
export async function inTransaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const out = await fn(client);
    await client.query("COMMIT");
    return out;
  } catch (err) {
    try {
      await client.query("ROLLBACK");
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Deletes up to `limit` rows of `table` in one of the two finished `states`
 * last updated before `before` (rows another instance holds are skipped);
 * returns their ids, sorted.
 */
export async function deleteFinished(pool: Pool, table: "inbound_faxes" | "outbound_jobs", states: readonly [string, string], before: number, limit: number): Promise<string[]> {
  const r = await pool.query<{ id: string }>(
    `DELETE FROM ${table} WHERE id IN (
       SELECT id FROM ${table} WHERE state IN ('${states[0]}', '${states[1]}') AND updated_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
     ) RETURNING id`,
    [before, limit],
  );
  return r.rows.map((row) => row.id).sort();
}
