/**
 * The SQLite backend: one database file `<dataDir>/faxbridge.db` and the
 * documents as files under `<dataDir>/spool/`, for one daemon on one machine.
 *
 * The daemon role owns the data directory (a pid file, ./ownership.ts): every
 * lease still set when it opens belongs to a process that is gone, and is
 * released at once. The operator role (CLI, doctor) opens next to a running
 * daemon: WAL mode and a busy timeout let both work, every change is a
 * compare-and-set, and nothing is released or swept.
 */
import { join } from "node:path";
import type { Logger } from "../../log.js";
import type { Stores } from "../ports.js";
import { openDatabase, type Db } from "./db.js";
import { FileDocumentStore } from "./files/documents.js";
import { SqliteInboundStore, inboundMigration } from "./inbound.js";
import { SqliteOutboundStore, outboundMigration } from "./outbound.js";
import { lockDataDir, releaseStaleLeases } from "./ownership.js";
import { SqliteQuotaStore, quotaMigration } from "./quota.js";
import { SqliteWebStore, webMigration } from "./web.js";

export interface SqliteStoresOptions {
  /** The absolute data directory. */
  readonly dataDir: string;
  readonly logger: Logger;
  readonly role: "daemon" | "operator";
  /** The database file; default `<dataDir>/faxbridge.db` (":memory:" for unit tests). */
  readonly file?: string;
  /** The stores' clock, for tests. */
  readonly now?: () => number;
  /** The lease owner id of the stores; default a fresh one. */
  readonly owner?: string;
  /** Commit inserts inline (tests, CLI) instead of on a worker thread; default: inline for operators. */
  readonly groupCommit?: "worker" | "inline";
}

export async function openSqliteStores(opts: SqliteStoresOptions): Promise<Stores> {
  const log = opts.logger;
  const file = opts.file ?? join(opts.dataDir, "faxbridge.db");
  const unlock = opts.role === "daemon" ? lockDataDir(opts.dataDir, log) : undefined;
  let db: Db | undefined;
  try {
    db = openDatabase(file, [outboundMigration, inboundMigration, webMigration, quotaMigration]);
    // This process owns the data directory: leases still set belong to a process that died.
    const releasedLeases = opts.role === "daemon" ? releaseStaleLeases(db, log) : { outbound: 0, inbound: 0 };
    const clock = opts.now === undefined ? {} : { now: opts.now };
    const owner = opts.owner === undefined ? {} : { owner: opts.owner };
    const outbound = new SqliteOutboundStore(db, { logger: log, groupCommit: opts.groupCommit ?? (opts.role === "daemon" ? "worker" : "inline"), ...clock, ...owner });
    const inbound = new SqliteInboundStore({ db, logger: log, ...clock, owner: outbound.owner });
    const web = new SqliteWebStore(db, opts.now);
    const documents = await FileDocumentStore.open({ root: join(opts.dataDir, "spool"), logger: log });
    const ping = db.prepare("SELECT 1");
    const opened = db;
    let closing: Promise<void> | undefined;
    return {
      backend: "sqlite",
      description: `sqlite ${file}`,
      outbound,
      inbound,
      web,
      documents,
      quota: new SqliteQuotaStore(db),
      releasedLeases,
      async ping() {
        ping.get();
      },
      close() {
        closing ??= (async () => {
          try {
            await documents.close();
            await outbound.close();
          } finally {
            opened.close();
            unlock?.();
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    db?.close();
    unlock?.();
    throw err;
  }
}
