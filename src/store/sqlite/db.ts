import { chmodSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

export type Db = Database.Database;

/** A module's schema, versioned on its own: `steps[i]` upgrades from version i to i+1. */
export interface Migration {
  readonly module: string;
  readonly steps: readonly string[];
}

/**
 * Open the SQLite database in WAL mode with full durability: a transaction
 * that returned has been fsynced. Files are private to the daemon's user.
 */
export function openDatabase(file: string, migrations: readonly Migration[]): Db {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  try {
    chmodSync(file, 0o600);
  } catch {
    // ":memory:" and exotic filesystems have no mode to set; nothing to protect then.
  }
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db, migrations);
  cacheStatements(db);
  return db;
}

/** Distinct SQL texts kept prepared per connection (the stores use a few dozen; dynamic WHERE/SET lists stay bounded). */
export const STATEMENT_CACHE_SIZE = 256;

/**
 * Every `db.prepare(sql)` on this connection returns the statement prepared
 * the first time for that SQL text: the stores build SQL where they use it
 * (readable, next to the code), and the hot paths (claim, transition, insert,
 * get) still compile each statement once per connection, not once per call.
 * A cached statement is shared, so no caller may change its mode (pluck, raw,
 * expand, safeIntegers) or hold an iterate() open across another call.
 */
export function cacheStatements(db: Db): void {
  const prepare = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  const cached = (sql: string): Database.Statement => {
    let stmt = cache.get(sql);
    if (stmt !== undefined) {
      // Most recently used last, so the oldest goes first when the cache is full.
      cache.delete(sql);
      cache.set(sql, stmt);
      return stmt;
    }
    stmt = prepare(sql);
    if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(sql, stmt);
    return stmt;
  };
  db.prepare = cached as Db["prepare"];
}

function migrate(db: Db, migrations: readonly Migration[]): void {
  db.exec("CREATE TABLE IF NOT EXISTS schema_versions (module TEXT PRIMARY KEY, version INTEGER NOT NULL)");
  const get = db.prepare<[string], { version: number }>("SELECT version FROM schema_versions WHERE module = ?");
  const set = db.prepare("INSERT INTO schema_versions (module, version) VALUES (?, ?) ON CONFLICT(module) DO UPDATE SET version = excluded.version");
  for (const m of migrations) {
    db.transaction(() => {
      const current = get.get(m.module)?.version ?? 0;
      if (current > m.steps.length) {
        throw new Error(`database schema of ${m.module} is version ${current}, newer than this faxbridge knows (${m.steps.length}); upgrade faxbridge`);
      }
      for (let v = current; v < m.steps.length; v++) db.exec(m.steps[v] as string);
      if (current !== m.steps.length) set.run(m.module, m.steps.length);
    })();
  }
}
