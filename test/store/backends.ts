/**
 * The store backends the contract suite (test/store/contract/) runs against.
 * Each opens fresh, empty stores; `instance()` opens another process's view
 * of the same data (another daemon on the same database), with its own clock
 * and owner. A backend that cannot run here (a database that is not
 * reachable) says why in `unavailable`, and its tests are skipped.
 */
import { silentLogger } from "../../src/log.js";
import { openStores } from "../../src/store/open.js";
import type { Stores } from "../../src/store/ports.js";
import { createTestDatabase, pgSkipReason } from "../helpers/pg.js";
import { tempDir } from "../helpers/tmp.js";

export interface InstanceOptions {
  /** The stores' clock (leases, updated times); default the real one. */
  readonly now?: () => number;
  /** The lease owner id; default a fresh one. */
  readonly owner?: string;
  /** "daemon" as the daemon opens it (releases what dead processes left), else as an operator. */
  readonly role?: "daemon" | "operator";
}

export interface BackendData {
  /** Open stores on this data: one instance of faxbridge. Closed by `cleanup`. */
  instance(opts?: InstanceOptions): Promise<Stores>;
  /** Close every instance and remove the data. */
  cleanup(): Promise<void>;
}

export interface Backend {
  readonly name: string;
  /** Why this backend cannot be tested here, or undefined when it can. */
  unavailable(): Promise<string | undefined>;
  /** Fresh, empty data. */
  create(): Promise<BackendData>;
  /** A daemon opening after a dead process releases that process's leases at once (SQLite); otherwise they expire. */
  readonly releasesLeasesAtOpen: boolean;
}

const sqlite: Backend = {
  name: "sqlite",
  releasesLeasesAtOpen: true,
  unavailable: async () => undefined,
  async create() {
    const dir = tempDir("faxbridge-contract-");
    const open: Stores[] = [];
    return {
      async instance(opts = {}) {
        const stores = await openStores({ dataDir: dir.path }, silentLogger(), {
          role: opts.role ?? "operator",
          groupCommit: "inline",
          ...(opts.now !== undefined && { now: opts.now }),
          ...(opts.owner !== undefined && { owner: opts.owner }),
        });
        open.push(stores);
        return stores;
      },
      async cleanup() {
        for (const s of open.splice(0)) await s.close();
        dir.cleanup();
      },
    };
  },
};

/**
 * PostgreSQL (src/store/pg/): a fresh database per `create()`; each instance
 * has its own data directory, as another machine would (no shared disk).
 */
const postgres: Backend = {
  name: "postgres",
  releasesLeasesAtOpen: false,
  unavailable: async () => pgSkipReason(),
  async create() {
    const db = await createTestDatabase();
    const dirs: ReturnType<typeof tempDir>[] = [];
    const open: Stores[] = [];
    return {
      async instance(opts = {}) {
        const dir = tempDir("faxbridge-contract-pg-");
        dirs.push(dir);
        const stores = await openStores({ dataDir: dir.path, database: { url: db.url } }, silentLogger(), {
          role: opts.role ?? "operator",
          ...(opts.now !== undefined && { now: opts.now }),
          ...(opts.owner !== undefined && { owner: opts.owner }),
        });
        open.push(stores);
        return stores;
      },
      async cleanup() {
        for (const s of open.splice(0)) await s.close();
        for (const d of dirs.splice(0)) d.cleanup();
        await db.drop();
      },
    };
  },
};

/** Every backend the contract suite runs against. */
export const BACKENDS: readonly Backend[] = [sqlite, postgres];

/** The describe title of a backend: its name, and why it is skipped when it is. */
export async function backendTitle(b: Backend, what: string): Promise<{ title: string; skip: boolean }> {
  const reason = await b.unavailable();
  return { title: `${what} [${b.name}]${reason === undefined ? "" : ` (skipped: ${reason})`}`, skip: reason !== undefined };
}
