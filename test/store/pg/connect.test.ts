import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { connectPool, DatabaseUrlError, parseDatabaseUrl, redactDatabaseUrl } from "../../../src/store/pg/connect.js";
import { migrate } from "../../../src/store/pg/migrate.js";
import { PG_MIGRATIONS } from "../../../src/store/pg/schema.js";
import { describePg, usePgDatabase } from "../../helpers/pg.js";

describe("database.url checks", () => {
  it("refuses malformed URLs without showing the password", () => {
    expect(() => parseDatabaseUrl("not a url s3cret")).toThrow(DatabaseUrlError);
    expect(() => parseDatabaseUrl("not a url s3cret")).not.toThrow(/s3cret/);
    expect(() => parseDatabaseUrl("mysql://u:s3cret@db/x")).toThrow(/postgres:\/\//);
    expect(() => parseDatabaseUrl("postgres://u:s3cret@db")).toThrow(/names no database/);
    expect(() => parseDatabaseUrl("postgres://u:s3cret@db")).not.toThrow(/s3cret/);
    expect(redactDatabaseUrl("postgres://u:s3cret@db:5432/x")).toBe("postgres://u:***@db:5432/x");
  });

  it("fails closed on an unreachable database, naming it without the password", async () => {
    const err = await connectPool("postgres://faxbridge:s3cret-pw@127.0.0.1:1/faxbridge", { logger: silentLogger(), connectTimeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/cannot use the PostgreSQL database postgres:\/\/faxbridge:\*\*\*@127\.0\.0\.1:1\/faxbridge/);
    expect((err as Error).message).not.toContain("s3cret-pw");
  });
});

describePg("PostgreSQL migrations", () => {
  const db = usePgDatabase();

  it("refuses a wrong password without repeating it", async () => {
    const u = new URL(db.url);
    u.password = "wrong-pass-xyz";
    const err = await connectPool(u.toString(), { logger: silentLogger() }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/cannot use the PostgreSQL database/);
    expect((err as Error).message).not.toContain("wrong-pass-xyz");
  });

  it("three instances starting at once migrate once, and a later start has nothing to do", async () => {
    const pools = await Promise.all([0, 1, 2].map(() => connectPool(db.url, { logger: silentLogger(), max: 2 })));
    try {
      const applied = await Promise.all(pools.map((p) => migrate(p, PG_MIGRATIONS, silentLogger())));
      const total = PG_MIGRATIONS.reduce((n, m) => n + m.steps.length, 0);
      expect(applied.reduce((a, b) => a + b, 0)).toBe(total);
      expect(applied.filter((n) => n > 0).length).toBeGreaterThanOrEqual(1);
      const versions = await pools[0]!.query<{ module: string; version: number }>("SELECT module, version FROM schema_versions ORDER BY module");
      expect(versions.rows).toEqual(PG_MIGRATIONS.map((m) => ({ module: m.module, version: m.steps.length })).sort((a, b) => a.module.localeCompare(b.module)));
      expect(await migrate(pools[1]!, PG_MIGRATIONS, silentLogger())).toBe(0);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it("refuses a schema newer than this faxbridge knows", async () => {
    const pool = await connectPool(db.url, { logger: silentLogger() });
    try {
      await expect(migrate(pool, [{ module: "outbound", steps: [] }], silentLogger())).rejects.toThrow(/newer than this faxbridge knows/);
    } finally {
      await pool.end();
    }
  });
});
