import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { InvalidTransitionError, StateConflictError, type OutboundJob } from "../../src/store/ports.js";
import { openDatabase, type Db } from "../../src/store/sqlite/db.js";
import { SqliteOutboundStore, outboundMigration } from "../../src/store/sqlite/outbound.js";
import { testJob as job } from "../helpers/stores.js";


for (const mode of ["worker", "inline"] as const) {
  describe(`SqliteOutboundStore (group commit: ${mode})`, () => {
    let dir: string;
    let db: Db;
    let store: SqliteOutboundStore;
    let clock: number;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), "faxbridge-store-"));
      db = openDatabase(join(dir, "faxbridge.db"), [outboundMigration]);
      clock = 1_700_000_000_000;
      store = new SqliteOutboundStore(db, { logger: silentLogger(), now: () => clock, groupCommit: mode });
    });

    afterEach(async () => {
      await store.close();
      db.close();
      await rm(dir, { recursive: true, force: true });
    });

    it("inserts a received job and reads it back", async () => {
      const inserted = await store.insertReceived(job({ mailFrom: "", client: { ip: "10.0.0.5", user: "scanner" } }));
      const got = await store.get(inserted.id);
      expect(got).toEqual(inserted);
      expect(got).toMatchObject({ state: "received", mailFrom: "", attempts: 0, nextAttemptAt: clock, client: { ip: "10.0.0.5", user: "scanner" } });
      expect(got?.rcptTo).toEqual([{ address: "+12025550143@fax.local", e164: "+12025550143", options: { resolution: "Low" } }]);
    });

    it("commits concurrent inserts of one tick in one transaction, each resolving after the commit", async () => {
      const before = store.commitStats.batches;
      const jobs = Array.from({ length: 25 }, () => job());
      const results = await Promise.all(jobs.map((j) => store.insertReceived(j)));
      expect(store.commitStats.batches - before).toBe(1);
      expect(store.commitStats.largest).toBe(25);
      expect(results.map((r) => r.id)).toEqual(jobs.map((j) => j.id));
      // Visible through the main connection once the promises resolved.
      const count = db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM outbound_jobs").get();
      expect(count?.n).toBe(25);
    });

    it("fails only the bad row of a batch", async () => {
      const dup = job();
      await store.insertReceived(dup);
      const good = job();
      const results = await Promise.allSettled([store.insertReceived(job({ id: dup.id })), store.insertReceived(good)]);
      expect(results[0]?.status).toBe("rejected");
      expect(results[1]?.status).toBe("fulfilled");
      expect((await store.get(good.id))?.state).toBe("received");
    });

    it("walks the state machine and rejects transitions from the wrong state", async () => {
      const { id } = await store.insertReceived(job());
      await store.transition(id, "received", "parsed", { messageId: "<m1@example.com>", faxRequest: { documents: ["a.pdf"] } });
      clock += 1000;
      const submitting = await store.transition(id, "parsed", "submitting", { submitStartedAt: clock });
      expect(submitting.submitStartedAt).toBe(clock);

      // Compare-and-set: a second worker that still believes the job is parsed loses.
      const conflict = store.transition(id, "parsed", "submitting", { submitStartedAt: clock });
      await expect(conflict).rejects.toBeInstanceOf(StateConflictError);
      await expect(conflict).rejects.toMatchObject({ expected: "parsed", actual: "submitting" });

      await store.transition(id, "submitting", "submitted", { rcMessageId: "rc-42" });
      await store.transition(id, "submitted", "final", { status: [{ e164: "+12025550143", status: "Delivered" }] });
      const notified = await store.transition(id, "final", "notified", { notifiedAt: clock });
      expect(notified).toMatchObject({
        state: "notified",
        messageId: "<m1@example.com>",
        faxRequest: { documents: ["a.pdf"] },
        rcMessageId: "rc-42",
        status: [{ e164: "+12025550143", status: "Delivered" }],
        notifiedAt: clock,
      });
      await expect(store.transition(id, "notified", "failed")).rejects.toBeInstanceOf(InvalidTransitionError);
      await expect(store.transition("0000000000000-00000000", "received", "parsed")).rejects.toMatchObject({ name: "StateConflictError", actual: undefined });
    });

    it("sends a failed job to notified with its error", async () => {
      const { id } = await store.insertReceived(job());
      await store.transition(id, "received", "failed", { errorCode: "no_documents", errorText: "The mail had nothing to fax." });
      const done = await store.transition(id, "failed", "notified", { notifiedAt: clock });
      expect(done).toMatchObject({ state: "notified", errorCode: "no_documents", errorText: "The mail had nothing to fax." });
      await expect(store.transition(id, "received", "cancelled")).rejects.toMatchObject({ actual: "notified" });
    });

    it("claims due jobs with an expiring lease", async () => {
      const a = await store.insertReceived(job());
      const b = await store.insertReceived(job());
      clock += 10;
      const first = await store.claimDue(["received"], { limit: 10, leaseMs: 60_000 });
      expect(first.map((j) => j.id).sort()).toEqual([a.id, b.id].sort());
      expect(first[0]?.leaseUntil).toBe(clock + 60_000);
      expect(await store.claimDue(["received"], { limit: 10, leaseMs: 60_000 })).toEqual([]);

      // A transition releases the lease; the lease of the other expires.
      await store.transition(a.id, "received", "parsed");
      clock += 60_001;
      const again = await store.claimDue(["received", "parsed"], { limit: 10, leaseMs: 1000 });
      expect(again.map((j) => j.id).sort()).toEqual([a.id, b.id].sort());
      expect(await store.claimDue(["received"], { limit: 10, leaseMs: 1000, now: clock + 1001 })).toHaveLength(1);
    });

    it("does not claim jobs that are not yet due", async () => {
      const { id } = await store.insertReceived(job());
      await store.transition(id, "received", "parsed");
      await store.transition(id, "parsed", "submitting", { submitStartedAt: clock });
      const deferred = await store.reschedule(id, { from: "submitting", to: "parsed", nextAttemptAt: clock + 30_000, error: "HTTP 503 from RingCentral" });
      expect(deferred).toMatchObject({ state: "parsed", attempts: 1, nextAttemptAt: clock + 30_000, lastError: "HTTP 503 from RingCentral", leaseUntil: null });
      expect(await store.claimDue(["parsed"], { limit: 5, leaseMs: 1000 })).toEqual([]);
      expect(await store.claimDue(["parsed"], { limit: 5, leaseMs: 1000, now: clock + 30_000 })).toHaveLength(1);
      await expect(store.reschedule(id, { from: "submitting", nextAttemptAt: clock, error: "x" })).rejects.toBeInstanceOf(StateConflictError);
    });

    it("finds duplicates by Message-ID and recipient set within the window", async () => {
      const rcpt = (e164: string) => ({ address: `${e164}@fax.local`, e164, options: {} });
      const parse = async (j: OutboundJob, messageId: string) => store.transition(j.id, "received", "parsed", { messageId });
      const first = await parse(await store.insertReceived(job({ rcptTo: [rcpt("+12025550143"), rcpt("+442071838750")] })), "<same@x>");
      clock += 5000;
      const second = await store.insertReceived(job({ rcptTo: [rcpt("+442071838750"), rcpt("+12025550143")] }));

      const q = { messageId: "<same@x>", identity: first.identity, recipients: ["+442071838750", "+12025550143"], since: clock - 86_400_000, excludeId: second.id };
      expect((await store.findDuplicate(q))?.id).toBe(first.id);
      // Someone else who learnt the Message-ID cannot cancel this sender's fax.
      expect(await store.findDuplicate({ ...q, identity: "mallory@evil.example" })).toBeUndefined();
      expect(await store.findDuplicate({ ...q, recipients: ["+12025550143"] })).toBeUndefined();
      expect(await store.findDuplicate({ ...q, messageId: "<other@x>" })).toBeUndefined();
      expect(await store.findDuplicate({ ...q, since: clock - 1000 })).toBeUndefined();
      expect(await store.findDuplicate({ ...q, excludeId: first.id })).toBeUndefined();

      await store.transition(first.id, "parsed", "failed", { errorCode: "x", errorText: "y" });
      expect(await store.findDuplicate(q)).toBeUndefined();
    });

    it("lists with paging, counts by state and finds interrupted submissions", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await store.insertReceived(job())).id);
      await store.transition(ids[0] as string, "received", "parsed");
      await store.transition(ids[0] as string, "parsed", "submitting", { submitStartedAt: clock - 120_000 });
      await store.transition(ids[1] as string, "received", "parsed");
      await store.transition(ids[1] as string, "parsed", "submitting", { submitStartedAt: clock - 120_000, leaseUntil: clock + 60_000 });
      await store.transition(ids[2] as string, "received", "cancelled");

      const page1 = await store.list({ limit: 2 });
      const page2 = await store.list({ limit: 2, after: page1.at(-1)?.id as string });
      expect([...page1, ...page2].map((j) => j.id)).toEqual(ids.slice(0, 4));
      expect((await store.list({ state: "received" })).map((j) => j.id)).toEqual(ids.slice(3));
      expect((await store.list({ state: ["submitting", "cancelled"] })).map((j) => j.id)).toEqual(ids.slice(0, 3));

      expect(await store.countByState()).toEqual({
        received: 2,
        parsed: 0,
        submitting: 2,
        submitted: 0,
        final: 0,
        notified: 0,
        failed: 0,
        cancelled: 1,
      });
      // The leased one is still being worked on; the other was interrupted.
      expect((await store.findInterruptedSubmissions(clock - 60_000)).map((j) => j.id)).toEqual([ids[0]]);
      expect(await store.findInterruptedSubmissions(clock - 180_000)).toEqual([]);
    });
  });
}
