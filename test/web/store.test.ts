import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { IDEMPOTENCY_TTL_MS, credentialDigest } from "../../src/store/ports.js";
import { openDatabase, type Db } from "../../src/store/sqlite/db.js";
import { SqliteWebStore as WebStore, webMigration } from "../../src/store/sqlite/web.js";
import { tempDir } from "../helpers/tmp.js";

describe("WebStore", () => {
  const dir = tempDir("faxbridge-webstore-");
  let db: Db | undefined;
  afterEach(() => {
    db?.close();
    dir.cleanup();
  });

  it("claims, replays, refuses another body, frees a key after a refusal, takes over a key a stopped process left, and forgets keys after 24 h", async () => {
    let now = 1_000_000;
    db = openDatabase(join(dir.path, "t.db"), [webMigration]);
    const s = new WebStore(db, () => now);
    expect(await s.claimIdempotency("ehr", "k1", "h1", "job-a")).toEqual({ kind: "new" });
    expect(await s.claimIdempotency("ehr", "k1", "h1", "job-b")).toEqual({ kind: "in_progress", jobId: "job-a" });
    expect(await s.claimIdempotency("ehr", "k1", "h2", "job-c")).toEqual({ kind: "mismatch" });
    expect(await s.claimIdempotency("billing", "k1", "h1", "job-d")).toEqual({ kind: "new" });
    await s.reclaimIdempotency("ehr", "k1", "job-e");
    expect(await s.claimIdempotency("ehr", "k1", "h1", "job-f")).toEqual({ kind: "in_progress", jobId: "job-e" });
    await s.settleIdempotency("ehr", "k1", 202, '{"id":"job-e"}');
    expect(await s.claimIdempotency("ehr", "k1", "h1", "job-g")).toEqual({ kind: "replay", status: 202, response: '{"id":"job-e"}' });
    await s.settleIdempotency("billing", "k1", 0, undefined);
    expect(await s.claimIdempotency("billing", "k1", "h9", "job-h")).toEqual({ kind: "new" });
    now += IDEMPOTENCY_TTL_MS + 1;
    expect(await s.claimIdempotency("ehr", "k1", "h2", "job-i")).toEqual({ kind: "new" });
  });

  it("keeps sessions by hash only, expires and ends them, and spends one-time links once", async () => {
    let now = 5_000;
    db = openDatabase(join(dir.path, "t.db"), [webMigration]);
    const s = new WebStore(db, () => now);
    const id = await s.createSession("alice", "scrypt$hash", 1000);
    expect(await s.sessionUser(id)).toEqual({ username: "alice", credential: credentialDigest("scrypt$hash") });
    const stored = db.prepare<[], { id_hash: string }>("SELECT id_hash FROM web_sessions").all();
    expect(stored.map((r) => r.id_hash)).not.toContain(id);
    now += 1001;
    expect(await s.sessionUser(id)).toBeUndefined();
    const other = await s.createSession("bob", "scrypt$other", 1000);
    await s.endSession(other);
    expect(await s.sessionUser(other)).toBeUndefined();
    expect(await s.spendLink("/l/x")).toBe(true);
    expect(await s.spendLink("/l/x")).toBe(false);
  });
});
