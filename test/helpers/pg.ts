/**
 * PostgreSQL for tests: a fresh database per test file, created from the
 * server named by FAXBRIDGE_TEST_DATABASE_URL (default: the local CI one,
 * postgres://faxbridge:faxbridge@127.0.0.1:5432/faxbridge, a role with
 * CREATEDB). When no server answers, `pgAvailable` is false and the tests
 * using it skip with a message saying so.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";

export const PG_ADMIN_URL = process.env.FAXBRIDGE_TEST_DATABASE_URL ?? "postgres://faxbridge:faxbridge@127.0.0.1:5432/faxbridge";

async function probe(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query("SELECT 1");
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await c.end().catch(() => undefined);
  }
}

const problem = await probe();
if (problem !== undefined) {
  console.warn(`PostgreSQL tests skipped: no PostgreSQL at ${PG_ADMIN_URL.replace(/:[^:@/]*@/, ":***@")} (${problem}); set FAXBRIDGE_TEST_DATABASE_URL or start one (see README, Development)`);
}

/** True when the PostgreSQL tests can run. Use with `describe.skipIf(!pgAvailable)`. */
export const pgAvailable = problem === undefined;

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** Drop the database (terminating connections left open). */
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A new, empty database on the test server. */
export async function createTestDatabase(prefix = "fbt"): Promise<TestDatabase> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    drop: () =>
      admin(async (c) => {
        await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [name]);
        await c.query(`DROP DATABASE IF EXISTS ${name}`);
      }),
  };
}
