import { describe, expect, it } from "vitest";
import { ClaimLoop, type ClaimLoopOptions } from "../../src/pipeline/claim-loop.js";
import { waitFor } from "../helpers/wait.js";

interface Item {
  id: string;
  lane: "a" | "b";
}

/** A queue of due items and a gate per item that the test opens to let its run finish. */
class Queue {
  due: Item[] = [];
  readonly started: string[] = [];
  readonly gates = new Map<string, () => void>();
  readonly finished: string[] = [];
  claims = 0;

  claim(lane: "a" | "b", limit: number): Item[] {
    this.claims++;
    const mine = this.due.filter((i) => i.lane === lane).slice(0, limit);
    this.due = this.due.filter((i) => !mine.includes(i));
    return mine;
  }

  run(item: Item): Promise<void> {
    this.started.push(item.id);
    return new Promise<void>((resolve) => this.gates.set(item.id, resolve)).then(() => {
      this.finished.push(item.id);
    });
  }

  open(id: string): void {
    const g = this.gates.get(id);
    if (g === undefined) throw new Error(`${id} is not running`);
    this.gates.delete(id);
    g();
  }
}

function loopFor(q: Queue, over: Partial<ClaimLoopOptions<Item, "a" | "b">> = {}): ClaimLoop<Item, "a" | "b"> {
  return new ClaimLoop<Item, "a" | "b">({
    lanes: ["a", "b"],
    reclaimed: "skip",
    id: (i) => i.id,
    plan: (busy) => [
      ["a", 2 - busy.a],
      ["b", 1 - busy.b],
    ],
    claim: async (lane, limit) => q.claim(lane, limit),
    run: (i) => q.run(i),
    onError: () => undefined,
    nextDelay: () => 10,
    onRoundError: () => undefined,
    ...over,
  });
}

describe("claim loop", () => {
  it("claims per lane up to each lane's free concurrency, and more as items finish", async () => {
    const q = new Queue();
    q.due = [...[1, 2, 3, 4].map((n): Item => ({ id: `a${n}`, lane: "a" })), { id: "b1", lane: "b" }, { id: "b2", lane: "b" }];
    const loop = loopFor(q);
    loop.start();
    loop.wake();
    await waitFor(() => q.started.length === 3, 2000, "three items started");
    expect(q.started.sort()).toEqual(["a1", "a2", "b1"]);
    q.open("a1");
    q.open("b1");
    await waitFor(() => q.started.length === 5, 2000, "the next two started");
    expect(q.started).toContain("a3");
    expect(q.started).toContain("b2");
    for (const id of ["a2", "a3", "b2"]) q.open(id);
    await waitFor(() => q.started.includes("a4"), 2000, "the last started");
    q.open("a4");
    await loop.stop();
    expect(q.finished.sort()).toEqual(["a1", "a2", "a3", "a4", "b1", "b2"]);
  });

  it.each(["skip", "follow-up"] as const)("never runs an item twice at once: a re-claim (%s) is dropped, or runs after the current run on a fresh copy", async (mode) => {
    {
      const q = new Queue();
      const reloaded: string[] = [];
      const loop = loopFor(q, {
        reclaimed: mode,
        reload: async (id) => {
          reloaded.push(id);
          return { id, lane: "a" };
        },
      });
      q.due = [{ id: "x", lane: "a" }];
      loop.start();
      loop.wake();
      await waitFor(() => q.started.length === 1, 2000, "x started");
      // The store hands out x again (its lease ran out, or its step made it due) while it still runs here.
      q.due = [{ id: "x", lane: "a" }];
      const claims = q.claims;
      loop.wake();
      await waitFor(() => q.claims > claims && q.due.length === 0, 2000, "x claimed again");
      expect(q.started).toEqual(["x"]);
      q.open("x");
      const runs = mode === "follow-up" ? 2 : 1;
      await waitFor(() => q.started.length === runs, 2000, "the follow-up run, if any");
      if (runs === 2) q.open("x");
      await loop.stop();
      expect(reloaded).toEqual(mode === "follow-up" ? ["x"] : []);
      expect(q.finished).toEqual(mode === "skip" ? ["x"] : ["x", "x"]);
    }
  });

  it("stop() stops claiming and resolves only when running items and tracked side tasks have settled", async () => {
    const q = new Queue();
    q.due = [{ id: "a1", lane: "a" }];
    const loop = loopFor(q);
    loop.start();
    loop.wake();
    await waitFor(() => q.started.length === 1, 2000, "a1 started");
    let sideDone = false;
    let endSide: () => void = () => undefined;
    loop.track(new Promise<void>((r) => (endSide = r)).then(() => void (sideDone = true)));
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    q.due = [{ id: "a2", lane: "a" }];
    loop.wake();
    await Promise.resolve();
    expect(stopped).toBe(false);
    q.open("a1");
    await waitFor(() => q.finished.length === 1, 2000, "a1 finished");
    expect(stopped).toBe(false);
    endSide();
    await stopping;
    expect(sideDone).toBe(true);
    expect(q.started).toEqual(["a1"]);
  });

  it("hands a failed run to onError and a failed round to onRoundError, and keeps going", async () => {
    const q = new Queue();
    const errors: string[] = [];
    let failClaim = true;
    const loop = loopFor(q, {
      claim: async (lane, limit) => {
        if (failClaim) {
          failClaim = false;
          throw new Error("database locked");
        }
        return q.claim(lane, limit);
      },
      run: async (i) => {
        throw new Error(`boom ${i.id}`);
      },
      onError: (i, err) => void errors.push(`${i.id}: ${(err as Error).message}`),
      onRoundError: (err) => {
        errors.push(`round: ${(err as Error).message}`);
        return 5;
      },
    });
    q.due = [{ id: "a1", lane: "a" }];
    loop.start();
    loop.wake();
    await waitFor(() => errors.length === 2, 2000, "both errors");
    expect(errors).toEqual(["round: database locked", "a1: boom a1"]);
    await loop.stop();
  });
});
