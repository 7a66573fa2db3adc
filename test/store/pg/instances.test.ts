/**
 * The PostgreSQL backend as several instances see it: two store bundles on
 * one database, each with its own owner, racing for the same rows.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { openPgStores, type PgStores } from "../../../src/store/pg/open.js";
import { DuplicateJobError, LeaseLostError, mailKey, type NewJob } from "../../../src/store/ports.js";
import { newId } from "../../../src/util/ids.js";
import { describePg, usePgDatabase } from "../../helpers/pg.js";
import { waitFor } from "../../helpers/wait.js";

function job(over: Partial<NewJob> = {}): NewJob {
  const id = over.id ?? newId();
  return {
    id,
    mailFrom: "alice@example.com",
    rcptTo: [{ address: "+12025550143@fax.local", e164: "+12025550143", options: {} }],
    mailKey: mailKey(id),
    size: 1234,
    client: { ip: "127.0.0.1" },
    ...over,
  };
}

describePg("PostgreSQL backend across instances", () => {
  const db = usePgDatabase();
  let a: PgStores;
  let b: PgStores;
  beforeAll(async () => {
    [a, b] = await Promise.all([openPgStores({ url: db.url, logger: silentLogger(), owner: "A" }), openPgStores({ url: db.url, logger: silentLogger(), owner: "B" })]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it("describes the database without its password and answers ping", async () => {
    expect(a.description).toBe(`postgres faxbridge@127.0.0.1:5432/${db.name}`);
    expect(a.description).not.toContain("faxbridge:faxbridge");
    await a.ping();
  });

  it("two instances claiming at once never get the same job (FOR UPDATE SKIP LOCKED)", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 40; i++) ids.add((await a.outbound.insertReceived(job())).id);
    const claimed: string[] = [];
    await Promise.all(
      [a, b, a, b].map(async (s) => {
        for (;;) {
          const got = await s.outbound.claimDue(["received"], { limit: 3, leaseMs: 60_000 });
          if (got.length === 0) return;
          claimed.push(...got.map((j) => j.id));
        }
      }),
    );
    expect(claimed.filter((id) => ids.has(id)).sort()).toEqual([...ids].sort());
    expect(new Set(claimed).size).toBe(claimed.length);
    for (const id of ids) await a.outbound.transition(id, "received", "cancelled").catch(() => b.outbound.transition(id, "received", "cancelled"));
  });

  it("a lease taken over after it expired fences the first owner out, and renewal keeps it from expiring", async () => {
    const j = await a.outbound.insertReceived(job());
    const [mine] = await a.outbound.claimDue(["received"], { limit: 1, leaseMs: 300 });
    expect(mine?.id).toBe(j.id);
    expect(mine?.leaseOwner).toBe("A");
    // Renewed, the lease outlives its first 300 ms.
    expect(await a.outbound.renewLease(j.id, 2_000)).toBe(true);
    expect(await b.outbound.claimDue(["received"], { limit: 1, leaseMs: 300 })).toEqual([]);
    // Not renewed, it runs out (database clock) and B takes the job over.
    expect(await a.outbound.renewLease(j.id, 200)).toBe(true);
    const taken = await waitFor(async () => (await b.outbound.claimDue(["received"], { limit: 1, leaseMs: 60_000 }))[0], { what: "B to take the job over" });
    expect(taken.id).toBe(j.id);
    expect(taken.leaseOwner).toBe("B");
    const lost = await a.outbound.transition(j.id, "received", "parsed", { faxRequest: { by: "A" } }).catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(LeaseLostError);
    expect(await a.outbound.renewLease(j.id, 60_000)).toBe(false);
    const moved = await b.outbound.transition(j.id, "received", "parsed", { faxRequest: { by: "B" } });
    expect(moved.faxRequest).toEqual({ by: "B" });
    expect(moved.leaseOwner).toBeNull();
  });

  it("two copies of one mail parsed on two instances at once: exactly one passes the duplicate check", async () => {
    const now = Date.now();
    const one = await a.outbound.insertReceived(job());
    const two = await b.outbound.insertReceived(job());
    const dup = (excludeId: string) => ({ messageId: "<same@example.com>", identity: one.identity, recipients: ["+12025550143"], since: now - 60_000, excludeId });
    const results = await Promise.allSettled([
      a.outbound.transition(one.id, "received", "parsed", { messageId: "<same@example.com>" }, { unlessDuplicate: dup(one.id) }),
      b.outbound.transition(two.id, "received", "parsed", { messageId: "<same@example.com>" }, { unlessDuplicate: dup(two.id) }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const refused = results.find((r) => r.status === "rejected");
    expect(refused?.reason).toBeInstanceOf(DuplicateJobError);
  });

  it("inbound: one fax recorded by two instances at once is one row; deliveries are claimed once and fenced", async () => {
    const now = Date.now();
    const fax = { extension: "100", rcMessageId: "m-1", message: { from: "+15550001", to: ["+15550002"], creationTime: new Date(now).toISOString(), attachments: [] } };
    const [x, y] = await Promise.all([
      a.inbound.recordSync("100", { syncToken: "t-a", syncTime: null, lastFullSyncAt: null }, [fax], now),
      b.inbound.recordSync("100", { syncToken: "t-b", syncTime: null, lastFullSyncAt: null }, [fax], now),
    ]);
    expect(x.length + y.length).toBe(1);
    const [claimA, claimB] = await Promise.all([a.inbound.claimDue({ limit: 5, leaseMs: 300, now }), b.inbound.claimDue({ limit: 5, leaseMs: 300, now })]);
    expect(claimA.length + claimB.length).toBe(1);
    const holder = claimA.length === 1 ? a : b;
    const other = holder === a ? b : a;
    const id = (claimA[0] ?? claimB[0])!.id;
    const taken = await waitFor(async () => (await other.inbound.claimDue({ limit: 1, leaseMs: 60_000, now: Date.now() }))[0], { what: "the other instance to take the delivery over" });
    expect(taken.id).toBe(id);
    await expect(holder.inbound.markDelivered(id, { route: -1, mailTo: ["x@example.com"] }, Date.now())).rejects.toThrow(/lease .* was lost/);
    const done = await other.inbound.markDelivered(id, { route: -1, mailTo: ["x@example.com"] }, Date.now());
    expect(done.state).toBe("delivered");
    expect(await a.inbound.getCursor("100")).toBeDefined();
  });

  it("an Idempotency-Key claimed by two instances at once is new for exactly one", async () => {
    const claims = await Promise.all([a.web.claimIdempotency("tok", "key-1", "h", "job-a"), b.web.claimIdempotency("tok", "key-1", "h", "job-b")]);
    expect(claims.filter((c) => c.kind === "new")).toHaveLength(1);
    expect(claims.filter((c) => c.kind === "in_progress")).toHaveLength(1);
    expect(await a.web.spendLink("link")).toBe(true);
    expect(await b.web.spendLink("link")).toBe(false);
  });
});
