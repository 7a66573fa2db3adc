/**
 * Open the PostgreSQL backend: connect (failing closed, no password in the
 * error), migrate under the advisory lock, and build the stores on one pool.
 * ../open.ts calls this when `database.url` is set.
 */
import type { Logger } from "../../log.js";
import { newOwnerId } from "../owner.js";
import type { Stores } from "../ports.js";
import { connectPool, parseDatabaseUrl, type Pool } from "./connect.js";
import { PgDocumentStore } from "./documents.js";
import { PgInboundStore } from "./inbound.js";
import { PgLeadership } from "./leadership.js";
import { migrate } from "./migrate.js";
import { PgOutboundStore } from "./outbound.js";
import { PG_MIGRATIONS } from "./schema.js";
import { PgQuotaStore } from "./quota.js";
import { PgWebStore } from "./web.js";

export interface OpenPgOptions {
  readonly url: string;
  readonly logger: Logger;
  /** This instance's id in leases and the leader election; default a fresh one. */
  readonly owner?: string;
  /** This instance's local directory for staged uploads, local copies and extraction folders (PgDocumentStore). */
  readonly localDir?: string;
  /** Most connections (default 10). */
  readonly maxConnections?: number;
  /** A clock instead of the database's (tests only). */
  readonly now?: () => number;
}

export interface PgStores extends Stores {
  readonly backend: "postgres";
  readonly pool: Pool;
  /** This instance's id (the stores' lease owner). */
  readonly owner: string;
  /** The leader election for `role` (not started). */
  leadership(opts?: { role?: string; leaseMs?: number }): PgLeadership;
}

/** "postgres faxbridge@db:5432/faxbridge": where, never the password. */
export function describeDatabase(url: string): string {
  const u = parseDatabaseUrl(url);
  return `postgres ${u.username === "" ? "" : `${decodeURIComponent(u.username)}@`}${u.host}${u.pathname}`;
}

export async function openPgStores(opts: OpenPgOptions): Promise<PgStores> {
  const log = opts.logger.child({ component: "db" });
  const description = describeDatabase(opts.url);
  const pool = await connectPool(opts.url, { logger: log, ...(opts.maxConnections !== undefined && { max: opts.maxConnections }) });
  try {
    await migrate(pool, PG_MIGRATIONS, log);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  const owner = opts.owner ?? newOwnerId();
  const clock = opts.now === undefined ? {} : { now: opts.now };
  const outbound = new PgOutboundStore(pool, { logger: opts.logger, owner, ...clock });
  const inbound = new PgInboundStore(pool, { logger: opts.logger, owner, ...clock });
  let closed: Promise<void> | undefined;
  log.info({ event: "db.opened", database: description, owner }, "PostgreSQL database opened");
  return {
    backend: "postgres",
    description,
    pool,
    owner,
    outbound,
    inbound,
    web: new PgWebStore(pool, opts.now),
    quota: new PgQuotaStore(pool),
    documents: new PgDocumentStore(pool, { logger: opts.logger, ...(opts.localDir !== undefined && { localDir: opts.localDir }) }),
    // Other instances may hold leases right now: expired ones are simply claimable, nothing is released at open.
    releasedLeases: { outbound: 0, inbound: 0 },
    async ping() {
      await pool.query("SELECT 1");
    },
    leadership: (l = {}) =>
      new PgLeadership({ pool, url: opts.url, logger: opts.logger, owner, ...(l.role !== undefined && { role: l.role }), ...(l.leaseMs !== undefined && { leaseMs: l.leaseMs }) }),
    close() {
      closed ??= (async () => {
        await outbound.close();
        await pool.end();
      })();
      return closed;
    },
  };
}
