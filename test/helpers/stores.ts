/**
 * The stores of a test, opened the one way the daemon and the CLI open them
 * (src/store/open.ts), plus a spool on their document store.
 */
import { join } from "node:path";
import { silentLogger, type Logger } from "../../src/log.js";
import { Spool } from "../../src/spool/spool.js";
import { openStores, type OpenStoresOptions } from "../../src/store/open.js";
import { mailKey, type NewJob, type Stores } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";

/** The SQLite backend's spool file layout, for tests that look at the files. */
export interface SpoolFiles {
  readonly tmpDir: string;
  readonly msgDir: string;
  readonly workDir: string;
  /** The file of a job's raw message. */
  messagePath(id: string): string;
}

/** A spool with its file layout at hand. */
export type TestSpool = Spool & SpoolFiles;

export interface TestStores extends Stores {
  readonly spool: TestSpool;
  readonly dataDir: string;
  /** The SQLite backend's file layout under <dataDir>/spool/ (tmp/, msg/, work/). */
  readonly tmpDir: string;
  readonly msgDir: string;
  readonly workDir: string;
  /** The file of a job's raw message (SQLite backend). */
  messagePath(id: string): string;
}

export interface TestStoresOptions extends Partial<OpenStoresOptions> {
  readonly logger?: Logger;
  /** A postgres:// URL: the PostgreSQL backend instead of SQLite in dataDir. */
  readonly databaseUrl?: string;
}

/** Open the stores on `dataDir` (default role "operator": no pid file, leases left as they are). */
export async function openTestStores(dataDir: string, opts: TestStoresOptions = {}): Promise<TestStores> {
  const { logger = silentLogger(), role = "operator", databaseUrl = "", ...rest } = opts;
  const stores = await openStores({ dataDir, database: { url: databaseUrl } }, logger, { role, ...rest });
  const root = join(dataDir, "spool");
  const files: SpoolFiles = {
    tmpDir: join(root, "tmp"),
    msgDir: join(root, "msg"),
    workDir: join(root, "work"),
    messagePath: (id) => join(root, ...mailKey(id).split("/")),
  };
  const spool: TestSpool = Object.assign(new Spool({ documents: stores.documents, logger }), files);
  return {
    ...stores,
    close: () => stores.close(),
    ping: () => stores.ping(),
    spool,
    dataDir,
    ...files,
  };
}

/** A new outbound job for store tests: one recipient, its mail under the usual key; `over` replaces any field. */
export function testJob(over: Partial<NewJob> = {}): NewJob {
  const id = over.id ?? newId();
  return {
    id,
    mailFrom: "alice@example.com",
    rcptTo: [{ address: "+12025550143@fax.local", e164: "+12025550143", options: { resolution: "Low" } }],
    mailKey: mailKey(id),
    size: 1234,
    client: { ip: "127.0.0.1" },
    ...over,
  };
}
