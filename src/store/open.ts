/**
 * The one way to open persistence: daemon, CLI, doctor, web and tests all
 * call openStores, which picks the backend from the configuration: SQLite
 * (`<dataDir>/faxbridge.db` + files) by default; a `database.url` of
 * postgres://… selects the PostgreSQL backend (./pg/), shared by instances.
 */
import { join, resolve } from "node:path";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import { AlwaysLeader, type Leadership } from "./leadership.js";
import type { Stores } from "./ports.js";
import { describeDatabase, openPgStores, type PgStores } from "./pg/open.js";
import { openSqliteStores } from "./sqlite/open.js";

export interface OpenStoresOptions {
  /**
   * "daemon": this process runs the workers; it takes the data directory
   * (SQLite: the pid file; DataDirInUseError when another daemon has it) and
   * releases the leases of processes that are gone. "operator": the CLI or
   * doctor, next to a running daemon; takes and releases nothing.
   */
  readonly role: "daemon" | "operator";
  /** The stores' clock, for tests. */
  readonly now?: () => number;
  /** The lease owner id; default a fresh one per open. */
  readonly owner?: string;
  /** SQLite: commit inserts inline rather than on a worker thread (default inline for operators). */
  readonly groupCommit?: "worker" | "inline";
}

/** What openStores reads of the configuration (`database` absent or its url empty: SQLite). */
export type StoresConfig = Pick<Readonly<Config>, "dataDir"> & { readonly database?: { readonly url: string } };

export function openStores(config: StoresConfig, logger: Logger, opts: OpenStoresOptions): Promise<Stores> {
  const dataDir = resolve(config.dataDir);
  const url = config.database?.url ?? "";
  if (url !== "") {
    return openPgStores({
      url,
      logger,
      // Staged uploads, local copies and extraction folders of this instance (nothing another instance needs).
      localDir: join(dataDir, "pg-local"),
      ...(opts.now !== undefined && { now: opts.now }),
      ...(opts.owner !== undefined && { owner: opts.owner }),
    });
  }
  return openSqliteStores({ dataDir, logger, ...opts });
}

/**
 * The database a configuration names, for messages (never the password):
 * "the database in /var/lib/faxbridge" or "the PostgreSQL database faxbridge@db:5432/faxbridge".
 */
export function databaseName(config: StoresConfig): string {
  const url = config.database?.url ?? "";
  if (url === "") return `the database in ${resolve(config.dataDir)}`;
  try {
    return `the PostgreSQL database ${describeDatabase(url).replace(/^postgres /, "")}`;
  } catch {
    return "the PostgreSQL database of database.url (malformed URL)";
  }
}

/**
 * Who leads inbound sync: on PostgreSQL, an election among the instances
 * (not started); on SQLite the one daemon, always.
 */
export function inboundLeadership(stores: Stores, opts: { leaseMs?: number } = {}): Leadership {
  if (stores.backend === "postgres") return (stores as PgStores).leadership({ role: "inbound", ...opts });
  return new AlwaysLeader();
}
