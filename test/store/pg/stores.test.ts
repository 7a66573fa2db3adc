/**
 * The PostgreSQL stores with a test clock, against the behaviours the SQLite
 * stores have (until the contract suite in test/store/contract/ runs both).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { openPgStores, type PgStores } from "../../../src/store/pg/open.js";
import { InvalidTransitionError, StateConflictError } from "../../../src/store/ports.js";
import { describePg, usePgDatabase } from "../../helpers/pg.js";
import { testJob as job } from "../../helpers/stores.js";


describePg("PostgreSQL stores (test clock)", () => {
  const db = usePgDatabase();
  let s: PgStores;
  let clock = 1_700_000_000_000;
  beforeAll(async () => {
    s = await openPgStores({ url: db.url, logger: silentLogger(), now: () => clock });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("reads back what it inserted, walks the state machine, and refuses wrong moves", async () => {
    const inserted = await s.outbound.insertReceived(job({ mailFrom: "", client: { ip: "10.0.0.5", user: "scanner" } }));
    expect(await s.outbound.get(inserted.id)).toEqual(inserted);
    expect(inserted).toMatchObject({ state: "received", mailFrom: "", attempts: 0, nextAttemptAt: clock, size: 1234, client: { ip: "10.0.0.5", user: "scanner" } });
    const { id } = inserted;
    await s.outbound.transition(id, "received", "parsed", { messageId: "<m1@example.com>", faxRequest: { documents: ["a.pdf"] } });
    clock += 1000;
    await s.outbound.transition(id, "parsed", "submitting", { submitStartedAt: clock });
    await expect(s.outbound.transition(id, "parsed", "submitting")).rejects.toMatchObject({ name: "StateConflictError", expected: "parsed", actual: "submitting" });
    await s.outbound.transition(id, "submitting", "submitted", { rcMessageId: "rc-42" });
    expect((await s.outbound.findByRcMessageId("rc-42"))?.id).toBe(id);
    expect((await s.outbound.findSentBy("rc-42", inserted.identity))?.id).toBe(id);
    expect(await s.outbound.findSentBy("rc-42", "someone-else")).toBeUndefined();
    await s.outbound.transition(id, "submitted", "final", { status: [{ e164: "+12025550143", status: "Delivered" }] });
    const done = await s.outbound.transition(id, "final", "notified", { notifiedAt: clock });
    expect(done).toMatchObject({ state: "notified", messageId: "<m1@example.com>", rcMessageId: "rc-42", notifiedAt: clock, status: [{ e164: "+12025550143", status: "Delivered" }] });
    await expect(s.outbound.transition(id, "notified", "failed")).rejects.toBeInstanceOf(InvalidTransitionError);
    await expect(s.outbound.transition("0000000000000-00000000", "received", "parsed")).rejects.toBeInstanceOf(StateConflictError);
  });

  it("claims due jobs by the store's clock, reschedules, finds interrupted submissions, pages and purges", async () => {
    const a = await s.outbound.insertReceived(job());
    clock += 10;
    const claimed = await s.outbound.claimDue(["received"], { limit: 10, leaseMs: 60_000 });
    expect(claimed.map((j) => j.id)).toContain(a.id);
    expect(claimed.find((j) => j.id === a.id)?.leaseUntil).toBe(clock + 60_000);
    expect(await s.outbound.claimDue(["received"], { limit: 10, leaseMs: 60_000 })).toEqual([]);
    await s.outbound.transition(a.id, "received", "parsed");
    await s.outbound.transition(a.id, "parsed", "submitting", { submitStartedAt: clock, leaseMs: 1000 });
    expect(await s.outbound.findInterruptedSubmissions(clock + 1)).toEqual([]);
    clock += 1001;
    expect((await s.outbound.findInterruptedSubmissions(clock)).map((j) => j.id)).toEqual([a.id]);
    const deferred = await s.outbound.reschedule(a.id, { from: "submitting", to: "parsed", nextAttemptAt: clock + 30_000, error: "HTTP 503" });
    expect(deferred).toMatchObject({ state: "parsed", attempts: 1, nextAttemptAt: clock + 30_000, lastError: "HTTP 503", leaseUntil: null });
    expect(await s.outbound.claimDue(["parsed"], { limit: 5, leaseMs: 1000 })).toEqual([]);
    expect(await s.outbound.claimDue(["parsed"], { limit: 5, leaseMs: 1000, now: clock + 30_000 })).toHaveLength(1);
    const counts = await s.outbound.countByState();
    expect(counts.parsed).toBe(1);
    expect(counts.notified).toBe(1);
    expect(await s.outbound.oldestUnfinishedAt()).toBe(a.receivedAt);
    const all = await s.outbound.list({ limit: 1 });
    const next = await s.outbound.list({ limit: 1, after: all[0]!.id });
    expect(next[0]?.id).not.toBe(all[0]?.id);
    const since: string[] = [];
    for await (const j of s.outbound.receivedSince(0)) since.push(j.id);
    expect(since).toHaveLength(2);
    expect(await s.outbound.purgeFinished(clock + 1, 10)).toHaveLength(1);
  });

  it("inbound: cursor with faxes in one transaction, claims, defer, dead, redeliver, values", async () => {
    const now = clock;
    const msg = { from: "+15550001", to: ["+15550002"], creationTime: new Date(now).toISOString(), attachments: [] };
    const first = await s.inbound.recordSync("100", { syncToken: "t1", syncTime: "2026-01-01T00:00:00Z", lastFullSyncAt: now }, [{ extension: "100", rcMessageId: "1", message: msg }], now);
    const again = await s.inbound.recordSync("100", { syncToken: "t2", syncTime: null, lastFullSyncAt: now }, [{ extension: "100", rcMessageId: "1", message: msg }], now);
    expect(first).toHaveLength(1);
    expect(again).toHaveLength(0);
    expect(await s.inbound.getCursor("100")).toEqual({ syncToken: "t2", syncTime: null, lastFullSyncAt: now });
    const [fax] = await s.inbound.claimDue({ limit: 5, leaseMs: 1000, now });
    expect(fax?.leaseUntil).toBe(clock + 1000);
    expect(await s.inbound.nextWakeAt()).toBe(clock + 1000);
    const deferred = await s.inbound.defer(fax!.id, now + 5000, "mail server said 451", now);
    expect(deferred).toMatchObject({ attempts: 1, nextAttemptAt: now + 5000, leaseUntil: null, lastError: "mail server said 451" });
    const [again2] = await s.inbound.claimDue({ limit: 5, leaseMs: 1000, now: now + 5000 });
    const dead = await s.inbound.markDead(again2!.id, "no route", now);
    expect(dead.state).toBe("dead");
    await expect(s.inbound.markDelivered(dead.id, { route: -1, mailTo: ["a@b.c"] }, now)).rejects.toThrow(/is dead, expected discovered/);
    const back = await s.inbound.redeliver(dead.id, now);
    expect(back).toMatchObject({ state: "discovered", attempts: 0 });
    expect(await s.inbound.countByState()).toEqual({ discovered: 1, delivered: 0, dead: 0 });
    expect((await s.inbound.listInbound({ state: "discovered" })).map((f) => f.id)).toEqual([dead.id]);
    await s.inbound.setValue("k", "v1", now);
    await s.inbound.setValue("k", "v2", now);
    expect(await s.inbound.getValue("k")).toBe("v2");
    await s.inbound.deleteValue("k");
    expect(await s.inbound.getValue("k")).toBeUndefined();
    await s.inbound.clearCursor("100");
    expect(await s.inbound.getCursor("100")).toBeUndefined();
  });
});
