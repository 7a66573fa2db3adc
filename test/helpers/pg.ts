import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe } from "vitest";

/**
 * PostgreSQL for tests. The server is found through FAXBRIDGE_TEST_DATABASE_URL
 * (default postgres://faxbridge:faxbridge@127.0.0.1:5432/faxbridge, what
 * `.ci/run` sets up); its role needs CREATEDB. Each test file gets its own
 * database (CREATE DATABASE with a unique name, dropped afterwards), so files
 * running in parallel never see each other's rows.
 *
 * Reachability is checked once, when a test file first imports this module.
 * Unreachable and the URL is the default: `describePg` blocks are skipped with
 * a message saying why (so `npm test` passes on a laptop without PostgreSQL).
 * Unreachable although FAXBRIDGE_TEST_DATABASE_URL was set explicitly: the
 * blocks fail, since someone asked for PostgreSQL tests and would otherwise
 * get a green run that tested nothing.
 */
export const DEFAULT_TEST_DATABASE_URL = "postgres://faxbridge:faxbridge@127.0.0.1:5432/faxbridge";

const explicitUrl = process.env["FAXBRIDGE_TEST_DATABASE_URL"]?.trim() ?? "";
/** The server tests use (its database is the one new test databases are created from). */
export const TEST_DATABASE_URL = explicitUrl !== "" ? explicitUrl : DEFAULT_TEST_DATABASE_URL;

/** Test databases are named `fbtest_<unix seconds>_<random>`; ones left by a killed run are dropped after this. */
const STALE_AFTER_S = 6 * 3600;
const NAME_RE = /^fbtest_(\d+)_[0-9a-f]+$/;

/** The URL with its password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable FAXBRIDGE_TEST_DATABASE_URL)";
  }
}

/** `url` with its database name replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export type PgAvailability = { ok: true; version: string } | { ok: false; reason: string };

async function probe(): Promise<PgAvailability> {
  try {
    return await withClient(TEST_DATABASE_URL, async (c) => {
      const r = await c.query<{ server_version: string; createdb: boolean }>(
        "SELECT current_setting('server_version') AS server_version, rolcreatedb AS createdb FROM pg_roles WHERE rolname = current_user",
      );
      const row = r.rows[0];
      if (row === undefined || !row.createdb) return { ok: false, reason: "the role cannot CREATE DATABASE (grant it CREATEDB)" };
      await dropStale(c);
      return { ok: true, version: row.server_version };
    });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { ok: false, reason: [e.code, e.message].filter((s) => s !== undefined && s !== "").join(": ") || String(err) };
  }
}

/** Drops test databases a killed run left behind (older than STALE_AFTER_S; newer ones may belong to a run in progress). */
async function dropStale(c: pg.Client): Promise<void> {
  const r = await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'fbtest\\_%'");
  const now = Math.floor(Date.now() / 1000);
  for (const { datname } of r.rows) {
    const m = NAME_RE.exec(datname);
    if (m === null || now - Number(m[1]) < STALE_AFTER_S) continue;
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(datname)} WITH (FORCE)`).catch(() => undefined);
  }
}

/** Checked once per test file (module load). */
export const pgAvailability: PgAvailability = await probe();

/** Why PostgreSQL tests do not run here, or undefined when they do. */
export function pgSkipReason(): string | undefined {
  if (pgAvailability.ok) return undefined;
  return `no PostgreSQL at ${redactUrl(TEST_DATABASE_URL)} (${pgAvailability.reason}); start one and set FAXBRIDGE_TEST_DATABASE_URL (README: "PostgreSQL tests")`;
}

let announced = false;

/**
 * `describe` for tests that need PostgreSQL: skipped (with the reason in its
 * title and once on stderr) when none is reachable at the default URL;
 * failing when FAXBRIDGE_TEST_DATABASE_URL names one that is not reachable.
 */
/* eslint-disable vitest/valid-title, vitest/valid-describe-callback, vitest/no-disabled-tests -- a describe wrapper: forwards the caller's title and callback, skipping is its purpose */
export function describePg(name: string, fn: () => void): void {
  const reason = pgSkipReason();
  if (reason === undefined) {
    describe(name, fn);
    return;
  }
  if (explicitUrl !== "") {
    describe(name, () => {
      beforeAll(() => {
        throw new Error(`FAXBRIDGE_TEST_DATABASE_URL is set but ${reason}`);
      });
      fn();
    });
    return;
  }
  if (!announced) {
    announced = true;
    process.stderr.write(`PostgreSQL tests skipped: ${reason}\n`);
  }
  describe.skip(`${name} (skipped: ${reason})`, fn);
}
/* eslint-enable vitest/valid-title, vitest/valid-describe-callback, vitest/no-disabled-tests */

export interface TestDatabase {
  /** Database name (fbtest_…). */
  readonly name: string;
  /** Connection URL of the new, empty database. */
  readonly url: string;
  /** Drops it, closing whatever is still connected. Idempotent. */
  drop(): Promise<void>;
}

/**
 * DROP DATABASE … WITH (FORCE), retried: FORCE may only end sessions of our own
 * role, so an autovacuum worker that just entered the database makes it fail
 * with 42501 ("must be a member of the role whose process is being
 * terminated") until that worker leaves, a moment later. A database that still
 * cannot be dropped is left to the stale-database sweep (a warning, not a
 * failed test: the test's own work is done).
 */
async function dropDatabase(name: string): Promise<void> {
  let last: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      await withClient(TEST_DATABASE_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
      return;
    } catch (err) {
      last = err;
      const code = (err as { code?: unknown }).code;
      if (code !== "42501" && code !== "55006") throw err;
      await new Promise((r) => setTimeout(r, 250 * (attempt + 1)));
    }
  }
  process.stderr.write(`test database ${name} not dropped (${String((last as Error).message)}); a later run's stale sweep removes it\n`);
}

/** Creates a new, empty database on the test server. */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (!pgAvailability.ok) throw new Error(`PostgreSQL tests cannot run: ${pgSkipReason() ?? ""}`);
  const name = `fbtest_${Math.floor(Date.now() / 1000)}_${randomBytes(6).toString("hex")}`;
  await withClient(TEST_DATABASE_URL, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`));
  let dropped = false;
  return {
    name,
    url: withDatabase(TEST_DATABASE_URL, name),
    drop: async () => {
      if (dropped) return;
      dropped = true;
      await dropDatabase(name);
    },
  };
}

/**
 * A fresh database for the enclosing describe block (use inside describePg):
 * created in beforeAll, dropped in afterAll. Read `.url` inside tests or hooks.
 */
export function usePgDatabase(): { readonly url: string; readonly name: string } {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });
  const get = (): TestDatabase => {
    if (db === undefined) throw new Error("usePgDatabase: the database exists only inside tests and hooks (after beforeAll)");
    return db;
  };
  return {
    get url() {
      return get().url;
    },
    get name() {
      return get().name;
    },
  };
}
