/**
 * The OutboundStore contract (src/store/ports.ts), run against every backend
 * in test/store/backends.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DuplicateJobError,
  InvalidTransitionError,
  LeaseLostError,
  StateConflictError,
  mailKey,
  type DuplicateQuery,
  type NewJob,
  type OutboundStore,
} from "../../../src/store/ports.js";
import { newId } from "../../../src/util/ids.js";
import { BACKENDS, backendTitle, type BackendData } from "../backends.js";

const T0 = 1_900_000_000_000;
const rcpt = (e164: string) => ({ address: `${e164.slice(1)}@fax.local`, e164, options: {} });

function job(over: Partial<NewJob> = {}, at = T0): NewJob {
  const id = over.id ?? newId(at);
  return { id, mailFrom: "alice@example.com", rcptTo: [rcpt("+12025550143")], mailKey: mailKey(id), size: 100, client: { ip: "127.0.0.1" }, receivedAt: at, ...over };
}

for (const backend of BACKENDS) {
  const { title, skip } = await backendTitle(backend, "OutboundStore contract");
  describe.skipIf(skip)(`${title}`, () => {
    let data: BackendData;
    let clock: number;
    let a: OutboundStore;
    let b: OutboundStore;

    beforeEach(async () => {
      data = await backend.create();
      clock = T0;
      a = (await data.instance({ now: () => clock, owner: "instance-a" })).outbound;
      b = (await data.instance({ now: () => clock, owner: "instance-b" })).outbound;
    });
    afterEach(async () => {
      await data.cleanup();
    });

    it("records a received job with its document key and reads it back from another instance", async () => {
      const j = await a.insertReceived(job({ client: { ip: "10.0.0.5", user: "scanner" } }));
      expect(j).toMatchObject({ state: "received", attempts: 0, leaseUntil: null, mailKey: mailKey(j.id), nextAttemptAt: T0, identity: "user:scanner" });
      expect(await b.get(j.id)).toEqual(j);
      expect(a.owner).toBe("instance-a");
    });

    it("claims each due job once across instances, with a lease on the store's clock held by the claimer", async () => {
      const ids = await Promise.all(Array.from({ length: 6 }, () => a.insertReceived(job())));
      const [fromA, fromB] = await Promise.all([a.claimDue(["received"], { limit: 4, leaseMs: 60_000 }), b.claimDue(["received"], { limit: 4, leaseMs: 60_000 })]);
      const all = [...fromA, ...fromB].map((j) => j.id).sort();
      expect(all).toEqual(ids.map((j) => j.id).sort());
      expect(new Set(all).size).toBe(6);
      for (const j of fromA) expect(j).toMatchObject({ leaseUntil: T0 + 60_000, leaseOwner: "instance-a" });
      expect(await a.claimDue(["received"], { limit: 10, leaseMs: 60_000 })).toEqual([]);
      // Expired leases are claimable again.
      clock += 60_001;
      expect(await b.claimDue(["received"], { limit: 10, leaseMs: 1000 })).toHaveLength(6);
    });

    it("does not claim jobs before they are due", async () => {
      const j = await a.insertReceived(job());
      await a.reschedule(j.id, { from: "received", nextAttemptAt: T0 + 30_000, error: "later" });
      expect(await a.claimDue(["received"], { limit: 5, leaseMs: 1000 })).toEqual([]);
      clock = T0 + 30_000;
      expect(await a.claimDue(["received"], { limit: 5, leaseMs: 1000 })).toHaveLength(1);
    });

    it("moves jobs by compare-and-set, refusing wrong states and impossible transitions", async () => {
      const j = await a.insertReceived(job());
      const parsed = await a.transition(j.id, "received", "parsed", { messageId: "<m@x>", faxRequest: { v: 1 } });
      expect(parsed).toMatchObject({ state: "parsed", messageId: "<m@x>", faxRequest: { v: 1 }, leaseUntil: null });
      await expect(b.transition(j.id, "received", "parsed")).rejects.toBeInstanceOf(StateConflictError);
      await expect(b.transition(j.id, "parsed", "notified")).rejects.toBeInstanceOf(InvalidTransitionError);
      await expect(b.transition("0000000000000-00000000", "received", "parsed")).rejects.toMatchObject({ name: "StateConflictError", actual: undefined });
      const deferred = await b.reschedule(j.id, { from: "parsed", nextAttemptAt: T0 + 5, error: "HTTP 503" });
      expect(deferred).toMatchObject({ state: "parsed", attempts: 1, lastError: "HTTP 503", nextAttemptAt: T0 + 5 });
    });

    it("fences a claim: the instance whose lease was taken over cannot move the job any more", async () => {
      const j = await a.insertReceived(job());
      expect(await a.claimDue(["received"], { limit: 1, leaseMs: 1000 })).toHaveLength(1);
      expect(await a.renewLease(j.id, 1000)).toBe(true);
      clock += 1001;
      const [taken] = await b.claimDue(["received"], { limit: 1, leaseMs: 60_000 });
      expect(taken).toMatchObject({ id: j.id, leaseOwner: "instance-b" });
      await expect(a.transition(j.id, "received", "parsed")).rejects.toBeInstanceOf(LeaseLostError);
      await expect(a.reschedule(j.id, { from: "received", nextAttemptAt: clock, error: "x" })).rejects.toBeInstanceOf(StateConflictError);
      expect(await a.renewLease(j.id, 1000)).toBe(false);
      // The holder still can; the lease can be kept through a transition.
      const kept = await b.transition(j.id, "received", "parsed", { leaseMs: 5000 });
      expect(kept).toMatchObject({ state: "parsed", leaseUntil: clock + 5000, leaseOwner: "instance-b" });
      expect(await b.renewLease(j.id, 10_000)).toBe(true);
      expect((await a.get(j.id))?.leaseUntil).toBe(clock + 10_000);
      const released = await b.transition(j.id, "parsed", "submitting", { submitStartedAt: clock });
      expect(released).toMatchObject({ leaseUntil: null });
    });

    it("renews only its own live lease: a renewal that finds the job taken over says so and leaves the claimer fenced", async () => {
      const j = await a.insertReceived(job());
      await a.claimDue(["received"], { limit: 1, leaseMs: 1000 });
      // Renewed before it ran out, the lease outlives its first term: nobody else can claim the job.
      clock += 900;
      expect(await a.renewLease(j.id, 1000)).toBe(true);
      clock += 900;
      expect(await b.claimDue(["received"], { limit: 1, leaseMs: 1000 })).toEqual([]);
      expect(await b.renewLease(j.id, 1000)).toBe(false);
      // a stalls past its lease; b takes the job over. a's heartbeat learns it first, and a stays fenced after.
      clock += 1001;
      expect(await b.claimDue(["received"], { limit: 1, leaseMs: 1000 })).toHaveLength(1);
      expect(await a.renewLease(j.id, 1000)).toBe(false);
      await expect(a.transition(j.id, "received", "parsed")).rejects.toBeInstanceOf(LeaseLostError);
      expect(await b.get(j.id)).toMatchObject({ state: "received", leaseOwner: "instance-b" });
      // A lease released by its holder's transition is not renewed either.
      await b.transition(j.id, "received", "parsed");
      expect(await b.renewLease(j.id, 1000)).toBe(false);
    });

    it("lets an operator's change through on a job it did not claim (compare-and-set only)", async () => {
      const j = await a.insertReceived(job());
      await a.claimDue(["received"], { limit: 1, leaseMs: 60_000 });
      const cancelled = await b.transition(j.id, "received", "cancelled", { errorCode: "cancelled" });
      expect(cancelled.state).toBe("cancelled");
      await expect(a.transition(j.id, "received", "parsed")).rejects.toBeInstanceOf(StateConflictError);
    });

    it("checks duplicates atomically with the transition: of two concurrent copies exactly one passes", async () => {
      const x = await a.insertReceived(job({ rcptTo: [rcpt("+12025550143"), rcpt("+442071838750")] }));
      const y = await b.insertReceived(job({ rcptTo: [rcpt("+442071838750"), rcpt("+12025550143")] }));
      const query = (id: string): DuplicateQuery => ({ messageId: "<same@x>", identity: x.identity, recipients: ["+12025550143", "+442071838750"], since: T0 - 1000, excludeId: id });
      const results = await Promise.allSettled([
        a.transition(x.id, "received", "parsed", { messageId: "<same@x>" }, { unlessDuplicate: query(x.id) }),
        b.transition(y.id, "received", "parsed", { messageId: "<same@x>" }, { unlessDuplicate: query(y.id) }),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const refused = results.find((r) => r.status === "rejected");
      expect(refused?.status === "rejected" && refused.reason).toBeInstanceOf(DuplicateJobError);
      const winner = results[0]?.status === "fulfilled" ? x : y;
      const loser = winner === x ? y : x;
      expect((await a.get(loser.id))?.state).toBe("received");
      expect(await a.findDuplicate(query(loser.id))).toMatchObject({ id: winner.id });
      // Another sender's mail with the same Message-ID is not a duplicate.
      expect(await a.findDuplicate({ ...query(loser.id), identity: "mail:mallory@example.com" })).toBeUndefined();
    });

    it("finds a job by its RingCentral message id without paging, optionally by state", async () => {
      const j = await a.insertReceived(job());
      await a.transition(j.id, "received", "parsed");
      await a.transition(j.id, "parsed", "submitting", { submitStartedAt: clock });
      await a.transition(j.id, "submitting", "submitted", { rcMessageId: "4242" });
      expect(await b.findByRcMessageId("4242")).toMatchObject({ id: j.id });
      expect(await b.findByRcMessageId("4242", ["submitted", "final"])).toMatchObject({ id: j.id });
      expect(await b.findByRcMessageId("4242", ["final"])).toBeUndefined();
      expect(await b.findByRcMessageId("4243")).toBeUndefined();
      expect(await b.findSentBy("4242", j.identity)).toMatchObject({ id: j.id });
      expect(await b.findSentBy("4242", "mail:other@example.com")).toBeUndefined();
    });

    it("lists the jobs received after a time for the quota rebuild, across pages", async () => {
      for (let i = 0; i < 1205; i += 100) await Promise.all(Array.from({ length: Math.min(100, 1205 - i) }, (_, k) => a.insertReceived(job({}, T0 + i + k))));
      const seen: number[] = [];
      for await (const j of b.receivedSince(T0 + 199)) seen.push(j.receivedAt);
      expect(seen).toHaveLength(1005);
      expect(seen[0]).toBe(T0 + 200);
      expect(seen.every((t, i) => i === 0 || t >= (seen[i - 1] ?? 0))).toBe(true);
    });

    it("counts, lists with keyset paging, and reports the oldest unfinished job", async () => {
      const jobs = [];
      for (let i = 0; i < 5; i++) jobs.push(await a.insertReceived(job({}, T0 + i)));
      await a.transition(jobs[0]?.id ?? "", "received", "cancelled");
      expect((await b.countByState()).received).toBe(4);
      expect(await b.oldestUnfinishedAt()).toBe(T0 + 1);
      const page1 = await b.list({ limit: 2 });
      const page2 = await b.list({ limit: 2, after: page1.at(-1)?.id ?? "" });
      expect([...page1, ...page2].map((j) => j.id)).toEqual(jobs.slice(0, 4).map((j) => j.id));
      expect((await b.list({ state: "cancelled" })).map((j) => j.id)).toEqual([jobs[0]?.id]);
      expect((await b.list({ newestFirst: true, limit: 1 }))[0]?.id).toBe(jobs[4]?.id);
    });

    it("finds interrupted submissions only once their lease has expired", async () => {
      const j = await a.insertReceived(job());
      await a.transition(j.id, "received", "parsed");
      await a.claimDue(["parsed"], { limit: 1, leaseMs: 1000 });
      await a.transition(j.id, "parsed", "submitting", { submitStartedAt: clock, leaseMs: 10_000 });
      expect(await b.findInterruptedSubmissions(clock + 1)).toEqual([]);
      clock += 10_001;
      expect((await b.findInterruptedSubmissions(clock)).map((x) => x.id)).toEqual([j.id]);
    });

    it("purges finished jobs past retention, in batches", async () => {
      const done = [];
      for (let i = 0; i < 3; i++) {
        const j = await a.insertReceived(job());
        await a.transition(j.id, "received", "cancelled");
        done.push(j.id);
      }
      const live = await a.insertReceived(job());
      clock += 1000;
      expect(await b.purgeFinished(clock, 2)).toHaveLength(2);
      expect(await b.purgeFinished(clock, 10)).toHaveLength(1);
      for (const id of done) expect(await a.get(id)).toBeUndefined();
      expect(await a.get(live.id)).toBeDefined();
    });

    it("a daemon opening after a dead instance gets its claimed work back", async () => {
      const j = await a.insertReceived(job());
      await a.claimDue(["received"], { limit: 1, leaseMs: 600_000 });
      const daemon = await data.instance({ now: () => clock, role: "daemon", owner: "daemon" });
      // Released at open, or (a backend whose instances share leases) once the dead instance's lease expires.
      expect(daemon.releasedLeases.outbound).toBe(backend.releasesLeasesAtOpen ? 1 : 0);
      if (!backend.releasesLeasesAtOpen) clock += 600_001;
      expect((await daemon.outbound.claimDue(["received"], { limit: 1, leaseMs: 1000 })).map((x) => x.id)).toEqual([j.id]);
    });
  });
}
