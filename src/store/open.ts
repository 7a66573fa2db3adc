/**
 * The one way to open persistence: daemon, CLI, doctor, web and tests all
 * call openStores, which picks the backend from the configuration. Today
 * that is SQLite (`<dataDir>/faxbridge.db` + files); a `database.url` of
 * postgres://… selects the PostgreSQL backend (issue 11) here.
 */
import { resolve } from "node:path";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Stores } from "./ports.js";
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

export function openStores(config: Pick<Readonly<Config>, "dataDir">, logger: Logger, opts: OpenStoresOptions): Promise<Stores> {
  const dataDir = resolve(config.dataDir);
  // Seam for issue 11: `database.url` = postgres://… opens the PostgreSQL backend instead.
  return openSqliteStores({ dataDir, logger, ...opts });
}
