import { describe, it, expect } from "vitest";
import { GroupLimiter, windowMarginMs, type LimiterClock } from "../../src/rc/limiter.js";

/** A manual clock: timers fire only when the test advances time. */
class FakeClock implements LimiterClock {
  t = 1_000_000;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Advance time, firing due timers in order and letting promise callbacks run after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

function track(clock: FakeClock, limiter: GroupLimiter, n: number, signal?: AbortSignal): { granted: number[]; errors: unknown[] } {
  const out = { granted: [] as number[], errors: [] as unknown[] };
  for (let i = 0; i < n; i++) {
    limiter.acquire(signal).then(
      () => out.granted.push(clock.now()),
      (err: unknown) => out.errors.push(err),
    );
  }
  return out;
}

describe("GroupLimiter", () => {
  it("grants at most `limit` per window (+margin) and serves the rest FIFO", async () => {
    const clock = new FakeClock();
    const start = clock.t;
    const l = new GroupLimiter("Heavy", 10, 60, clock);
    const t = track(clock, l, 25);
    await flush();
    expect(t.granted).toHaveLength(10);
    expect(l.state().remaining).toBe(0);
    await clock.advance(60_000);
    expect(t.granted).toHaveLength(10); // the margin is not over yet
    await clock.advance(windowMarginMs(60_000));
    expect(t.granted).toHaveLength(20);
    await clock.advance(60_000 + windowMarginMs(60_000));
    expect(t.granted).toHaveLength(25);
    // never more than 10 grants in any 60 s span
    for (let i = 10; i < t.granted.length; i++) {
      expect((t.granted[i] ?? 0) - (t.granted[i - 10] ?? 0)).toBeGreaterThan(60_000);
    }
    expect(t.granted[0]).toBe(start);
  });

  it("keeps a 10/60 s group at >= 95 % of the limit under a steady backlog", async () => {
    const clock = new FakeClock();
    const l = new GroupLimiter("Heavy", 10, 60, clock);
    const t = track(clock, l, 1000);
    await flush();
    await clock.advance(60 * 60_000); // one hour
    // 600 is the theoretical maximum in an hour
    expect(t.granted.length).toBeGreaterThanOrEqual(0.95 * 600);
    expect(t.granted.length).toBeLessThanOrEqual(600);
  });

  it("spreads grants when requests trickle in (sliding, not fixed, window)", async () => {
    const clock = new FakeClock();
    const l = new GroupLimiter("Light", 2, 10, clock);
    const a = track(clock, l, 1);
    await clock.advance(4_000);
    const b = track(clock, l, 1);
    await clock.advance(1_000);
    const c = track(clock, l, 1); // third within 10 s: must wait until the first leaves the window
    await flush();
    expect(a.granted).toHaveLength(1);
    expect(b.granted).toHaveLength(1);
    expect(c.granted).toHaveLength(0);
    await clock.advance(10_000 + windowMarginMs(10_000) - 5_000 - 1);
    expect(c.granted).toHaveLength(0);
    await clock.advance(1);
    expect(c.granted).toHaveLength(1);
  });

  it("a hold blocks the whole group until it ends, then resumes FIFO", async () => {
    const clock = new FakeClock();
    const l = new GroupLimiter("Light", 50, 60, clock);
    l.hold(clock.t + 30_000);
    const order: string[] = [];
    void l.acquire().then(() => order.push("first"));
    void l.acquire().then(() => order.push("second"));
    await clock.advance(29_999);
    expect(order).toEqual([]);
    expect(l.state().heldUntil).toBe(clock.t + 1);
    await clock.advance(1);
    expect(order).toEqual(["first", "second"]);
  });

  it("a hold only extends, never shortens", async () => {
    const clock = new FakeClock();
    const l = new GroupLimiter("Light", 50, 60, clock);
    l.hold(clock.t + 10_000);
    l.hold(clock.t + 5_000);
    const t = track(clock, l, 1);
    await clock.advance(9_999);
    expect(t.granted).toHaveLength(0);
    await clock.advance(1);
    expect(t.granted).toHaveLength(1);
  });

  it("learns limits from headers", async () => {
    const clock = new FakeClock();
    const l = new GroupLimiter("Heavy", 10, 60, clock);
    l.learn(2, 5);
    expect(l.state()).toMatchObject({ limit: 2, windowSeconds: 5 });
    const t = track(clock, l, 3);
    await flush();
    expect(t.granted).toHaveLength(2);
    await clock.advance(5_000 + windowMarginMs(5_000));
    expect(t.granted).toHaveLength(3);
  });

  it("an aborted waiter leaves the line without blocking the ones behind it", async () => {
    const clock = new FakeClock();
    const l = new GroupLimiter("Heavy", 1, 10, clock);
    const first = track(clock, l, 1);
    const ac = new AbortController();
    const aborted = track(clock, l, 1, ac.signal);
    const last = track(clock, l, 1);
    await flush();
    expect(first.granted).toHaveLength(1);
    ac.abort(new Error("caller gave up"));
    await flush();
    expect(aborted.errors).toHaveLength(1);
    expect(String(aborted.errors[0])).toContain("caller gave up");
    await clock.advance(10_000 + windowMarginMs(10_000));
    expect(last.granted).toHaveLength(1);
    expect(aborted.granted).toHaveLength(0);
  });

  it("rejects at once when the signal is already aborted, and on close", async () => {
    const clock = new FakeClock();
    const l = new GroupLimiter("Heavy", 1, 10, clock);
    await expect(l.acquire(AbortSignal.abort(new Error("nope")))).rejects.toThrow("nope");
    await l.acquire();
    const waiting = l.acquire();
    l.close();
    await expect(waiting).rejects.toThrow(/closed/);
  });
});
