import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * A fresh PostgreSQL database for a bench run, on the server named by
 * FAXBRIDGE_BENCH_DATABASE_URL (else FAXBRIDGE_TEST_DATABASE_URL, else the
 * local default `.ci/run` sets up); its role needs CREATEDB. Resolves with
 * why not (password never shown) when no server is reachable, so a bench
 * part can report the PostgreSQL figure as skipped.
 */
const DEFAULT_URL = "postgres://faxbridge:faxbridge@127.0.0.1:5432/faxbridge";

export type BenchDatabase = { readonly url: string; drop(): Promise<void> } | { readonly skipped: string };

function serverUrl(): string {
  for (const name of ["FAXBRIDGE_BENCH_DATABASE_URL", "FAXBRIDGE_TEST_DATABASE_URL"]) {
    const v = process.env[name]?.trim() ?? "";
    if (v !== "") return v;
  }
  return DEFAULT_URL;
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

export async function benchDatabase(): Promise<BenchDatabase> {
  const url = serverUrl();
  const name = `fbbench_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString("hex")}`;
  try {
    await withClient(url, (c) => c.query(`CREATE DATABASE "${name}"`));
  } catch (err) {
    const u = new URL(url);
    const pw = decodeURIComponent(u.password);
    if (u.password !== "") u.password = "***";
    const why = err instanceof Error ? err.message : String(err);
    return { skipped: `PostgreSQL at ${u.toString()} not usable: ${pw === "" ? why : why.split(pw).join("***")}` };
  }
  const db = new URL(url);
  db.pathname = `/${name}`;
  return {
    url: db.toString(),
    drop: () => withClient(url, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}
