/**
 * Issue 15: prepared statements are cached per SQLite connection, so the hot
 * paths (claim, transition, insert, get) compile each statement once, not on
 * every call; the cache is bounded for SQL built with varying WHERE/SET lists.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase, STATEMENT_CACHE_SIZE, type Db } from "../../src/store/sqlite/db.js";
import { tempDir } from "../helpers/tmp.js";

let dir: ReturnType<typeof tempDir> | undefined;
let db: Db | undefined;
afterEach(() => {
  db?.close();
  dir?.cleanup();
  db = undefined;
  dir = undefined;
});

function open(): Db {
  dir = tempDir();
  db = openDatabase(join(dir.path, "t.db"), [{ module: "t", steps: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"] }]);
  return db;
}

describe("SQLite statement cache", () => {
  it("prepares each SQL text once per connection and the statement still works", () => {
    const d = open();
    const insert = d.prepare("INSERT INTO t (v) VALUES (?)");
    expect(d.prepare("INSERT INTO t (v) VALUES (?)")).toBe(insert);
    insert.run("a");
    d.prepare("INSERT INTO t (v) VALUES (?)").run("b");
    expect(d.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM t").get()?.n).toBe(2);
    expect(d.prepare("SELECT v FROM t WHERE id = ?")).not.toBe(insert);
  });

  it("keeps at most STATEMENT_CACHE_SIZE statements, dropping the least recently used", () => {
    const d = open();
    const hot = d.prepare("SELECT v FROM t WHERE id = ?");
    for (let i = 0; i < STATEMENT_CACHE_SIZE * 2; i++) {
      d.prepare(`SELECT ${i} AS n`);
      // Used all along: never the oldest.
      expect(d.prepare("SELECT v FROM t WHERE id = ?")).toBe(hot);
    }
    const cold = d.prepare("SELECT 0 AS n");
    expect(cold.get()).toEqual({ n: 0 });
  });
});
