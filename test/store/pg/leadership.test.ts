import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { AlwaysLeader } from "../../../src/store/leadership.js";
import { connectPool, type Pool } from "../../../src/store/pg/connect.js";
import { PgLeadership } from "../../../src/store/pg/leadership.js";
import { migrate } from "../../../src/store/pg/migrate.js";
import { PG_MIGRATIONS } from "../../../src/store/pg/schema.js";
import { describePg, usePgDatabase } from "../../helpers/pg.js";
import { waitFor } from "../../helpers/wait.js";

it("AlwaysLeader leads from start to stop and wakes in-process listeners", async () => {
  const l = new AlwaysLeader();
  const seen: boolean[] = [];
  l.onChange((v) => seen.push(v));
  const woken: string[] = [];
  l.onWake((topic, payload) => woken.push(`${topic}:${payload}`));
  expect(l.isLeader()).toBe(false);
  await l.start();
  expect(l.isLeader()).toBe(true);
  await l.wake("inbound.sync", "x");
  await l.stop();
  expect(seen).toEqual([true, false]);
  expect(woken).toEqual(["inbound.sync:x"]);
});

describePg("PgLeadership", () => {
  const db = usePgDatabase();
  let pool: Pool;
  beforeAll(async () => {
    pool = await connectPool(db.url, { logger: silentLogger() });
    await migrate(pool, PG_MIGRATIONS, silentLogger());
  });
  afterAll(async () => {
    await pool?.end();
  });

  const make = (owner: string, role: string, leaseMs = 900): PgLeadership => new PgLeadership({ pool, url: db.url, logger: silentLogger(), owner, role, leaseMs });

  it("elects exactly one of three; a dead leader is replaced within one lease period; its term moves on", async () => {
    const all = ["a", "b", "c"].map((o) => make(o, "crash"));
    try {
      await Promise.all(all.map((l) => l.start()));
      const leaders = all.filter((l) => l.isLeader());
      expect(leaders).toHaveLength(1);
      const first = leaders[0]!;
      const term = first.term;
      const died = performance.now();
      await first.abandon();
      const next = await waitFor(() => all.find((l) => l !== first && l.isLeader()), { timeoutMs: 5000, what: "a new leader" });
      // The lease (900 ms) runs out, then the next renewal round (every 300 ms) takes it.
      expect(performance.now() - died).toBeLessThan(900 + 300 + 500);
      expect(next.term).toBe(term + 1);
      expect(all.filter((l) => l.isLeader())).toHaveLength(1);
    } finally {
      await Promise.all(all.map((l) => l.stop()));
    }
  });

  it("a resigning leader is replaced at once, and a wake-up from any instance reaches every instance", async () => {
    const a = make("a", "resign", 60_000);
    const b = make("b", "resign", 60_000);
    try {
      await a.start();
      await b.start();
      expect(a.isLeader()).toBe(true);
      expect(b.isLeader()).toBe(false);
      const heard: string[] = [];
      a.onWake((topic, payload) => heard.push(`a ${topic} ${payload}`));
      b.onWake((topic, payload) => heard.push(`b ${topic} ${payload}`));
      await b.wake("inbound.webhook", "ext-1");
      await waitFor(() => heard.length === 2, { what: "both instances woken" });
      expect(heard.sort()).toEqual(["a inbound.webhook ext-1", "b inbound.webhook ext-1"]);
      const changes: boolean[] = [];
      b.onChange((v) => changes.push(v));
      const t0 = performance.now();
      await a.stop();
      await waitFor(() => b.isLeader(), { timeoutMs: 5000, what: "b to lead after a resigned" });
      // Far sooner than the 60 s lease: the resignation was announced.
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(changes).toEqual([true]);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a leader that cannot reach the database steps down before its lease can have run out", async () => {
    const lonely = await connectPool(db.url, { logger: silentLogger(), max: 1 });
    const a = new PgLeadership({ pool: lonely, url: db.url, logger: silentLogger(), owner: "a", role: "cut", leaseMs: 600 });
    const b = make("b", "cut", 600);
    try {
      await a.start();
      expect(a.isLeader()).toBe(true);
      const lost: number[] = [];
      a.onChange((v) => {
        if (!v) lost.push(performance.now());
      });
      // Cut a off from the database: every renewal fails from now on.
      await lonely.end();
      const cut = performance.now();
      await waitFor(() => lost.length === 1, { timeoutMs: 3000, what: "a to step down" });
      // Its lease (600 ms) was renewed before the cut, so it steps down at most 600 ms later (plus timer lateness on a busy machine).
      expect(lost[0]! - cut).toBeLessThan(600 + 400);
      await b.start();
      await waitFor(() => b.isLeader(), { timeoutMs: 3000, what: "b to lead" });
    } finally {
      await a.abandon();
      await b.stop();
    }
  });
});
