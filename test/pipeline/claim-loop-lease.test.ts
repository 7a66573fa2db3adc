/**
 * The claim loop keeps leases short and alive (issue 11): a step that runs
 * longer than its lease keeps its job, because the loop renews the lease every
 * third of it; a step whose lease another instance took over (this one
 * stalled past it) is aborted, and the store refuses its transitions. Run on
 * every store backend (test/store/backends.ts), with two instances on the
 * same data and the stores' real clocks.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ClaimLoop } from "../../src/pipeline/claim-loop.js";
import { storeLease } from "../../src/pipeline/leases.js";
import { LeaseLostError, mailKey, type NewJob, type OutboundJob, type OutboundStore } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";
import { BACKENDS, backendTitle, type BackendData } from "../store/backends.js";
import { waitFor } from "../helpers/wait.js";

const LEASE_MS = 600;

function job(): NewJob {
  const id = newId();
  return { id, mailFrom: "alice@example.com", rcptTo: [{ address: "12025550143@fax.local", e164: "+12025550143", options: {} }], mailKey: mailKey(id), size: 1, client: { ip: "127.0.0.1" }, receivedAt: Date.now() };
}

/** One instance's claim loop over the `received` state, running `step` for each claimed job. */
function loopOn(store: OutboundStore, step: (job: OutboundJob, signal: AbortSignal) => Promise<void>, renew?: (id: string, ms: number) => Promise<boolean>): ClaimLoop<OutboundJob, "work"> {
  const leased = renew === undefined ? store : Object.assign(Object.create(store) as OutboundStore, { owner: store.owner, renewLease: renew, get: (id: string) => store.get(id) });
  return new ClaimLoop<OutboundJob, "work">({
    lanes: ["work"],
    reclaimed: "skip",
    id: (j) => j.id,
    plan: (busy) => [["work", 1 - busy.work]],
    claim: (_lane, limit) => store.claimDue(["received"], { limit, leaseMs: LEASE_MS }),
    run: (j, _lane, signal) => step(j, signal),
    onError: () => undefined,
    nextDelay: () => 50,
    onRoundError: () => undefined,
    lease: storeLease<OutboundJob>(leased, { ms: LEASE_MS, lostError: (j, holder) => new LeaseLostError(j.id, j.state, store.owner, holder) }),
  });
}

for (const backend of BACKENDS) {
  const { title, skip } = await backendTitle(backend, "claim loop leases");
  describe.skipIf(skip)(`${title}`, () => {
    let data: BackendData;
    let a: OutboundStore;
    let b: OutboundStore;
    const loops: ClaimLoop<OutboundJob, "work">[] = [];

    beforeEach(async () => {
      data = await backend.create();
      a = (await data.instance({ owner: "instance-a" })).outbound;
      b = (await data.instance({ owner: "instance-b" })).outbound;
    });
    afterEach(async () => {
      for (const l of loops.splice(0)) await l.stop();
      await data.cleanup();
    });

    it("a step running four leases long keeps its job: the heartbeat renews the lease, no other instance can claim it", async () => {
      const j = await a.insertReceived(job());
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => (release = r));
      let aborted = false;
      let moved: OutboundJob | undefined;
      const loop = loopOn(a, async (claimed, signal) => {
        await gate;
        aborted = signal.aborted;
        moved = await a.transition(claimed.id, "received", "parsed");
      });
      loops.push(loop);
      loop.start();
      loop.wake();
      await waitFor(async () => (await a.get(j.id))?.leaseOwner === "instance-a", 5000, "instance a to claim the job");
      const until = Date.now() + 4 * LEASE_MS;
      while (Date.now() < until) {
        expect(await b.claimDue(["received"], { limit: 1, leaseMs: 60_000 })).toEqual([]);
        await new Promise((r) => setTimeout(r, LEASE_MS / 4));
      }
      expect((await b.get(j.id))?.leaseOwner).toBe("instance-a");
      release();
      await waitFor(() => moved, 5000, "the step to finish");
      expect(aborted).toBe(false);
      expect(moved).toMatchObject({ state: "parsed", leaseUntil: null });
    });

    it("a step whose lease another instance took over is aborted, and the store refuses its transition", async () => {
      const j = await a.insertReceived(job());
      // Instance a stalls (say, a long GC pause or a frozen VM): its renewals wait until the test lets them through.
      let stalled = false;
      let unstall: () => void = () => undefined;
      const stall = new Promise<void>((r) => (unstall = r));
      let reason: unknown;
      let refused: unknown;
      let started = false;
      const loop = loopOn(
        a,
        async (claimed, signal) => {
          started = true;
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          reason = signal.reason;
          refused = await a.transition(claimed.id, "received", "parsed").catch((err: unknown) => err);
        },
        async (id, ms) => {
          if (stalled) await stall;
          return a.renewLease(id, ms);
        },
      );
      loops.push(loop);
      loop.start();
      loop.wake();
      await waitFor(() => started, 5000, "instance a to start the step");
      stalled = true;
      const [taken] = await waitFor(async () => {
        const got = await b.claimDue(["received"], { limit: 1, leaseMs: 60_000 });
        return got.length > 0 ? got : undefined;
      }, 10_000, "instance b to take the job over once a's lease ran out");
      expect(taken).toMatchObject({ id: j.id, leaseOwner: "instance-b" });
      unstall();
      await waitFor(() => refused !== undefined, 5000, "the step to be aborted");
      expect(reason).toBeInstanceOf(LeaseLostError);
      expect(reason).toMatchObject({ owner: "instance-a", holder: "instance-b" });
      expect(refused).toBeInstanceOf(LeaseLostError);
      expect(await b.get(j.id)).toMatchObject({ state: "received", leaseOwner: "instance-b" });
    });
  });
}
