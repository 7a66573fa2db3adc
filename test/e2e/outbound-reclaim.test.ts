/**
 * A step's own transition can make its job due again before the step has
 * returned; a tick in that gap re-claims the job (taking a lease). The worker
 * must then run the next step itself, not leave the job parked until that
 * lease expires (the fault suite hit this after a kill -9). The gap is made
 * wide here by holding the parse step, after its transition, until a tick
 * has re-claimed the job.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { JobState } from "../../src/store/outbound.js";
import { FAST_TUNING, makePdf, OutboundHarness } from "./outbound-harness.js";

let h: OutboundHarness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("a job re-claimed while its previous step finishes", () => {
  it("goes on at once instead of waiting out the lease", async () => {
    h = await new OutboundHarness({ tuning: { ...FAST_TUNING, idlePollMs: 1, leaseMs: 600_000, submitLeaseMs: 600_000 }, startWorker: false }).start();
    const t = h;
    const store = t.store;
    const claim = store.claimDue.bind(store);
    const transition = store.transition.bind(store);
    const reclaimed = new Map<string, () => void>();
    let reclaims = 0;
    store.claimDue = async (states, opts) => {
      const jobs = await claim(states, opts);
      for (const j of jobs) {
        const release = reclaimed.get(j.id);
        if (release) {
          reclaims++;
          release();
        }
      }
      return jobs;
    };
    store.transition = async (id: string, from: JobState, to: JobState, patch?: Parameters<typeof transition>[3]) => {
      const job = await transition(id, from, to, patch);
      if (from === "received" && to === "parsed") {
        await new Promise<void>((resolve) => {
          reclaimed.set(id, resolve);
          setTimeout(resolve, 3_000);
        });
        reclaimed.delete(id);
      }
      return job;
    };
    await t.startWorker();
    const id = await t.send({
      to: "15551234567@fax.local",
      subject: "reclaim",
      text: "x",
      attachments: [{ filename: "a.pdf", content: makePdf("reclaim"), contentType: "application/pdf" }],
    });
    expect((await t.waitState(id, "submitted", 15_000)).rcMessageId).not.toBeNull();
    expect(reclaims).toBe(1);
    expect(await t.sentFaxes()).toHaveLength(1);
  });
});
