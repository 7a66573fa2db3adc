/**
 * The InboundStore, KeyValueStore and WebStore contracts (src/store/ports.ts),
 * run against every backend in test/store/backends.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IDEMPOTENCY_TTL_MS, credentialDigest, type InboundStore, type NewInboundFax, type Stores, type SyncCursor } from "../../../src/store/ports.js";
import { BACKENDS, backendTitle, type BackendData } from "../backends.js";

const T0 = 1_900_000_000_000;

function fax(rcId: string, extension = "200000001"): NewInboundFax {
  return {
    extension,
    rcMessageId: rcId,
    message: { from: "+15557654321", to: ["+15551230000"], creationTime: new Date(T0).toISOString(), attachments: [{ id: rcId, uri: `https://media.example/${rcId}` }] },
  };
}
const cursor = (token: string): SyncCursor => ({ syncToken: token, syncTime: "2030-01-01T00:00:00Z", lastFullSyncAt: T0 });

for (const backend of BACKENDS) {
  const { title, skip } = await backendTitle(backend, "InboundStore contract");
  describe.skipIf(skip)(`${title}`, () => {
    let data: BackendData;
    let clock: number;
    let sa: Stores;
    let a: InboundStore;
    let b: InboundStore;

    beforeEach(async () => {
      data = await backend.create();
      clock = T0;
      sa = await data.instance({ now: () => clock, owner: "instance-a" });
      a = sa.inbound;
      b = (await data.instance({ now: () => clock, owner: "instance-b" })).inbound;
    });
    afterEach(async () => {
      await data.cleanup();
    });

    it("records a sync once: the same fax twice is one row, and the cursor moves with it", async () => {
      const first = await a.recordSync("~", cursor("t1"), [fax("1"), fax("2")], clock);
      expect(first.map((f) => f.rcMessageId)).toEqual(["1", "2"]);
      expect(first[0]).toMatchObject({ state: "discovered", attempts: 0, mailMessageId: "<fax-200000001-1@faxbridge>" });
      // The overlap of the next sync, from another instance: only the new fax is inserted.
      const second = await b.recordSync("~", cursor("t2"), [fax("2"), fax("3"), fax("3")], clock);
      expect(second.map((f) => f.rcMessageId)).toEqual(["3"]);
      expect(await a.getCursor("~")).toEqual(cursor("t2"));
      // The same RingCentral id on another extension is another fax.
      expect(await a.recordSync("other", cursor("o1"), [fax("1", "300")], clock)).toHaveLength(1);
      expect((await b.countByState()).discovered).toBe(4);
      expect(await b.findByRcId("200000001", "2")).toMatchObject({ rcMessageId: "2" });
      await a.clearCursor("~");
      expect(await b.getCursor("~")).toBeUndefined();
    });

    it("claims each due fax once across instances and fences the claim by owner", async () => {
      await a.recordSync("~", cursor("t"), [fax("1"), fax("2")], clock);
      // One after the other: claiming at once, b (limit 5) may take both first on a backend with real concurrency (PostgreSQL's
      // SKIP LOCKED), and a would get none (test/store/pg/instances.test.ts races claimers).
      const fromA = await a.claimDue({ limit: 1, leaseMs: 1000, now: clock });
      const fromB = await b.claimDue({ limit: 5, leaseMs: 1000, now: clock });
      expect([...fromA, ...fromB].map((f) => f.rcMessageId).sort()).toEqual(["1", "2"]);
      const mine = fromA[0];
      expect(mine).toMatchObject({ leaseUntil: T0 + 1000, leaseOwner: "instance-a" });
      expect(await a.claimDue({ limit: 5, leaseMs: 1000, now: clock })).toEqual([]);
      expect(await a.nextWakeAt()).toBe(T0 + 1000);
      // a stalls; its lease runs out and b takes the fax over.
      clock += 1001;
      const taken = await b.claimDue({ limit: 5, leaseMs: 60_000, now: clock });
      expect(taken.map((f) => f.id)).toContain(mine?.id);
      await expect(a.markDelivered(mine?.id ?? "", { route: -1, mailTo: ["x@example.com"] }, clock)).rejects.toMatchObject({ name: "InboundStateError" });
      expect(await a.renewLease(mine?.id ?? "", 1000)).toBe(false);
      expect(await b.renewLease(mine?.id ?? "", 1000)).toBe(true);
      const delivered = await b.markDelivered(mine?.id ?? "", { route: -1, mailTo: ["x@example.com"] }, clock);
      expect(delivered).toMatchObject({ state: "delivered", leaseUntil: null, route: { route: -1, mailTo: ["x@example.com"] } });
      await expect(b.markDelivered(mine?.id ?? "", { route: -1, mailTo: [] }, clock)).rejects.toThrow(/delivered, expected discovered/);
      expect((await a.findDeliveredByRcId(mine?.rcMessageId ?? "")).map((f) => f.id)).toEqual([mine?.id]);
    });

    it("renews only its own live lease: a renewal that finds the fax taken over says so and leaves the claimer fenced", async () => {
      const [f] = await a.recordSync("~", cursor("t"), [fax("1")], clock);
      const id = f?.id ?? "";
      await a.claimDue({ limit: 1, leaseMs: 1000, now: clock });
      clock += 900;
      expect(await a.renewLease(id, 1000)).toBe(true);
      clock += 900;
      expect(await b.claimDue({ limit: 1, leaseMs: 1000, now: clock })).toEqual([]);
      clock += 1001;
      expect(await b.claimDue({ limit: 1, leaseMs: 1000, now: clock })).toHaveLength(1);
      expect(await a.renewLease(id, 1000)).toBe(false);
      await expect(a.markDelivered(id, { route: -1, mailTo: ["x@example.com"] }, clock)).rejects.toMatchObject({ name: "InboundStateError" });
      await expect(a.defer(id, clock + 1000, "mail 451", clock)).rejects.toMatchObject({ name: "InboundStateError" });
      expect(await b.get(id)).toMatchObject({ state: "discovered", leaseOwner: "instance-b", attempts: 0 });
    });

    it("defers, gives up, releases and redelivers", async () => {
      const [x, y] = await a.recordSync("~", cursor("t"), [fax("1"), fax("2")], clock);
      await a.claimDue({ limit: 5, leaseMs: 1000, now: clock });
      const deferred = await a.defer(x?.id ?? "", clock + 5000, "mail 451", clock);
      expect(deferred).toMatchObject({ attempts: 1, nextAttemptAt: clock + 5000, lastError: "mail 451", leaseUntil: null });
      const dead = await a.markDead(y?.id ?? "", "mailbox unknown", clock);
      expect(dead).toMatchObject({ state: "dead", attempts: 1 });
      expect(await b.claimDue({ limit: 5, leaseMs: 1000, now: clock })).toEqual([]);
      const back = await b.redeliver(y?.id ?? "", clock);
      expect(back).toMatchObject({ state: "discovered", attempts: 0 });
      expect(await b.redeliver("nope", clock)).toBeUndefined();
      const [again] = await b.claimDue({ limit: 5, leaseMs: 1000, now: clock });
      await b.release(again?.id ?? "", clock);
      expect((await a.get(again?.id ?? ""))?.leaseUntil).toBeNull();
    });

    it("lists with paging and purges finished faxes past retention", async () => {
      const faxes = await a.recordSync("~", cursor("t"), [fax("1"), fax("2"), fax("3")], clock);
      for (const f of faxes.slice(0, 2)) await a.markDead(f.id, "x", clock);
      const page = await b.listInbound({ limit: 2 });
      expect(page.map((f) => f.id)).toEqual(faxes.slice(0, 2).map((f) => f.id));
      expect(await b.listInbound({ after: page.at(-1)?.id ?? "" })).toHaveLength(1);
      expect((await b.listInbound({ state: "dead", newestFirst: true })).map((f) => f.id)).toEqual([faxes[1]?.id, faxes[0]?.id]);
      clock += 10;
      expect(await b.purgeFinished(clock + 1, 10)).toHaveLength(2);
      expect(await a.listInbound()).toHaveLength(1);
    });

    it("keeps shared values for every instance", async () => {
      await a.setValue("subscription", '{"id":"s1"}', clock);
      expect(await b.getValue("subscription")).toBe('{"id":"s1"}');
      await b.setValue("subscription", '{"id":"s2"}', clock);
      expect(await a.getValue("subscription")).toBe('{"id":"s2"}');
      await a.deleteValue("subscription");
      expect(await b.getValue("subscription")).toBeUndefined();
    });

    it("stores a value only when absent: instances starting together agree on the first one", async () => {
      const [x, y] = await Promise.all([a.setValueIfAbsent("token", "from-a", clock), b.setValueIfAbsent("token", "from-b", clock)]);
      expect(x).toBe(y);
      expect(["from-a", "from-b"]).toContain(x);
      expect(await a.setValueIfAbsent("token", "later", clock)).toBe(x);
      expect(await b.getValue("token")).toBe(x);
    });

    it("keeps web sessions by hash, claims an idempotency key once, spends a link once", async () => {
      const web = sa.web;
      const other = (await data.instance({ now: () => clock })).web;
      const claims = await Promise.all([web.claimIdempotency("ehr", "k1", "h1", "job-a"), other.claimIdempotency("ehr", "k1", "h1", "job-b")]);
      expect(claims.filter((c) => c.kind === "new")).toHaveLength(1);
      expect(claims.filter((c) => c.kind === "in_progress")).toHaveLength(1);
      expect(await other.claimIdempotency("ehr", "k1", "h2", "job-c")).toEqual({ kind: "mismatch" });
      await web.settleIdempotency("ehr", "k1", 202, '{"id":"job-a"}');
      expect(await other.claimIdempotency("ehr", "k1", "h1", "job-d")).toEqual({ kind: "replay", status: 202, response: '{"id":"job-a"}' });
      clock += IDEMPOTENCY_TTL_MS + 1;
      expect(await other.claimIdempotency("ehr", "k1", "h2", "job-e")).toEqual({ kind: "new" });

      const id = await web.createSession("alice", "scrypt$hash", 1000);
      expect(await other.sessionUser(id)).toEqual({ username: "alice", credential: credentialDigest("scrypt$hash") });
      await other.endSession(id);
      expect(await web.sessionUser(id)).toBeUndefined();
      const results = await Promise.all([web.spendLink("/l/x"), other.spendLink("/l/x")]);
      expect(results.sort()).toEqual([false, true]);
    });

    it("answers its health probe", async () => {
      await expect(sa.ping()).resolves.toBeUndefined();
      expect(sa.description).not.toMatch(/password|secret/i);
    });

    it("a daemon opening after a dead instance gets its claimed faxes back", async () => {
      await a.recordSync("~", cursor("t"), [fax("1")], clock);
      await a.claimDue({ limit: 1, leaseMs: 600_000, now: clock });
      const daemon = await data.instance({ now: () => clock, role: "daemon", owner: "daemon" });
      expect(daemon.releasedLeases.inbound).toBe(backend.releasesLeasesAtOpen ? 1 : 0);
      if (!backend.releasesLeasesAtOpen) clock += 600_001;
      expect(await daemon.inbound.claimDue({ limit: 1, leaseMs: 1000, now: clock })).toHaveLength(1);
    });
  });
}
