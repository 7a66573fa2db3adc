import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase, type Db } from "../../src/store/db.js";
import { IDEMPOTENCY_TTL_MS, WebStore, webMigration } from "../../src/web/store.js";
import { tempDir } from "../helpers/tmp.js";

describe("WebStore", () => {
  const dir = tempDir("faxbridge-webstore-");
  let db: Db | undefined;
  afterEach(() => {
    db?.close();
    dir.cleanup();
  });

  it("claims, replays, refuses another body, frees a key after a refusal, takes over a key a stopped process left, and forgets keys after 24 h", () => {
    let now = 1_000_000;
    db = openDatabase(join(dir.path, "t.db"), [webMigration]);
    const s = new WebStore(db, () => now);
    expect(s.claimIdempotency("ehr", "k1", "h1", "job-a")).toEqual({ kind: "new" });
    expect(s.claimIdempotency("ehr", "k1", "h1", "job-b")).toEqual({ kind: "in_progress", jobId: "job-a" });
    expect(s.claimIdempotency("ehr", "k1", "h2", "job-c")).toEqual({ kind: "mismatch" });
    expect(s.claimIdempotency("billing", "k1", "h1", "job-d")).toEqual({ kind: "new" });
    s.reclaimIdempotency("ehr", "k1", "job-e");
    expect(s.claimIdempotency("ehr", "k1", "h1", "job-f")).toEqual({ kind: "in_progress", jobId: "job-e" });
    s.settleIdempotency("ehr", "k1", 202, '{"id":"job-e"}');
    expect(s.claimIdempotency("ehr", "k1", "h1", "job-g")).toEqual({ kind: "replay", status: 202, response: '{"id":"job-e"}' });
    s.settleIdempotency("billing", "k1", 0, undefined);
    expect(s.claimIdempotency("billing", "k1", "h9", "job-h")).toEqual({ kind: "new" });
    now += IDEMPOTENCY_TTL_MS + 1;
    expect(s.claimIdempotency("ehr", "k1", "h2", "job-i")).toEqual({ kind: "new" });
  });

  it("keeps sessions by hash only, expires and ends them, and spends one-time links once", () => {
    let now = 5_000;
    db = openDatabase(join(dir.path, "t.db"), [webMigration]);
    const s = new WebStore(db, () => now);
    const id = s.createSession("alice", "scrypt$hash", 1000);
    expect(s.sessionUser(id)).toEqual({ username: "alice", credential: WebStore.credentialDigest("scrypt$hash") });
    const stored = db.prepare<[], { id_hash: string }>("SELECT id_hash FROM web_sessions").all();
    expect(stored.map((r) => r.id_hash)).not.toContain(id);
    now += 1001;
    expect(s.sessionUser(id)).toBeUndefined();
    const other = s.createSession("bob", "scrypt$other", 1000);
    s.endSession(other);
    expect(s.sessionUser(other)).toBeUndefined();
    expect(s.spendLink("/l/x")).toBe(true);
    expect(s.spendLink("/l/x")).toBe(false);
  });
});
