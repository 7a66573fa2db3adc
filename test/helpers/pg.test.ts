import pg from "pg";
import { describe, expect, it } from "vitest";
import { createTestDatabase, describePg, redactUrl, TEST_DATABASE_URL, usePgDatabase, withDatabase } from "./pg.js";

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

async function exists(name: string): Promise<boolean> {
  const rows = await query<{ n: string }>(TEST_DATABASE_URL, `SELECT count(*) AS n FROM pg_database WHERE datname = '${name}'`);
  return rows[0]?.n === "1";
}

describe("test PostgreSQL helper, without a server", () => {
  it("never shows the password and swaps the database name", () => {
    expect(redactUrl("postgres://faxbridge:s3cret@127.0.0.1:5432/faxbridge")).toBe("postgres://faxbridge:***@127.0.0.1:5432/faxbridge");
    expect(withDatabase("postgres://u:p@h:5432/faxbridge?sslmode=disable", "fbtest_1_ab")).toBe("postgres://u:p@h:5432/fbtest_1_ab?sslmode=disable");
  });
});

describePg("test PostgreSQL helper", () => {
  const db = usePgDatabase();

  it("gives the file its own empty database", async () => {
    const [row] = await query<{ db: string; tables: string }>(
      db.url,
      "SELECT current_database() AS db, (SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public') AS tables",
    );
    expect(row).toEqual({ db: db.name, tables: "0" });
    expect(db.name).toMatch(/^fbtest_\d+_[0-9a-f]+$/);
  });

  it("creates distinct databases and drops them even while connected", async () => {
    const a = await createTestDatabase();
    const b = await createTestDatabase();
    expect(a.name).not.toBe(b.name);
    const open = new pg.Client({ connectionString: a.url });
    await open.connect();
    open.on("error", () => undefined); // the forced drop terminates this connection
    await a.drop();
    await b.drop();
    await a.drop(); // idempotent
    expect(await exists(a.name)).toBe(false);
    expect(await exists(b.name)).toBe(false);
    await open.end().catch(() => undefined);
  });
});
