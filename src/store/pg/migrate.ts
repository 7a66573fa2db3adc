/**
 * Versioned schema migrations for PostgreSQL, run at every start. Several
 * instances may start at once: the whole run holds one advisory lock, so one
 * instance migrates and the others wait, then find nothing left to do. Each
 * module's steps and its new version commit in one transaction.
 */
import type { Logger } from "../../log.js";
import type { Pool } from "./connect.js";

/** A module's schema, versioned on its own: `steps[i]` upgrades from version i to i+1. */
export interface PgMigration {
  readonly module: string;
  readonly steps: readonly string[];
}

/** The advisory lock key of the migration run ("faxbmigr"). */
export const MIGRATION_LOCK_KEY = 0x6661_7862_6d69_6772n;

export class SchemaTooNewError extends Error {
  constructor(module: string, found: number, known: number) {
    super(`database schema of ${module} is version ${found}, newer than this faxbridge knows (${known}); upgrade faxbridge`);
    this.name = "SchemaTooNewError";
  }
}

/** Apply every step not yet applied; resolves with the number of steps applied. */
export async function migrate(pool: Pool, migrations: readonly PgMigration[], log: Logger): Promise<number> {
  const client = await pool.connect();
  let applied = 0;
  let broken: Error | undefined;
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
    try {
      await client.query("CREATE TABLE IF NOT EXISTS schema_versions (module TEXT PRIMARY KEY, version INTEGER NOT NULL)");
      for (const m of migrations) {
        await client.query("BEGIN");
        try {
          const r = await client.query<{ version: number }>("SELECT version FROM schema_versions WHERE module = $1", [m.module]);
          const current = r.rows[0]?.version ?? 0;
          if (current > m.steps.length) throw new SchemaTooNewError(m.module, current, m.steps.length);
          for (let v = current; v < m.steps.length; v++) await client.query(m.steps[v] as string);
          if (current !== m.steps.length) {
            await client.query(
              "INSERT INTO schema_versions (module, version) VALUES ($1, $2) ON CONFLICT (module) DO UPDATE SET version = excluded.version",
              [m.module, m.steps.length],
            );
            log.info({ event: "db.migrated", module: m.module, from: current, to: m.steps.length }, "database schema upgraded");
            applied += m.steps.length - current;
          }
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK");
          throw err;
        }
      }
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY.toString()]);
    }
  } catch (err) {
    // A connection left in an unknown state (e.g. the unlock failed) is not given back to the pool.
    if (!(err instanceof SchemaTooNewError)) broken = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.release(broken);
  }
  return applied;
}
