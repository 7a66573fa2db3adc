/**
 * Several instances on one queue (issue 11): reconciliation after a crash
 * between the fax POST and recording RingCentral's message id finds the fax
 * by the job's own tag, so two instances sending to the same number at the
 * same time never adopt each other's fax; and a submission whose failure
 * could not be written is retried as soon as the store takes writes again,
 * not after its lease.
 */
import { describe, expect, it } from "vitest";
import { tagOf } from "../../src/outbound/tag.js";
import { openTestStores } from "../helpers/stores.js";
import { waitFor } from "../helpers/wait.js";
import { harnessPerTest, makePdf } from "./outbound-harness.js";

const harness = harnessPerTest({ startWorker: false });

describe("outbound with several instances", () => {
  it("two instances send to the same number at once and both crash before recording: each adopts its own fax, by its tag", async () => {
    // Leases outlast a's slow POST, so neither crashed job is reconciled before both have crashed.
    const t = await harness({ tuning: { leaseMs: 3000, submitLeaseMs: 3000, sendConcurrency: 1 } });
    // Instance b: the same database and documents, its own lease owner.
    const other = await openTestStores(t.dir.path, { owner: "instance-b", groupCommit: "inline", logger: t.logger });
    try {
      const crashed: string[] = [];
      const crash = (jobId: string): void => {
        if (crashed.includes(jobId)) return;
        crashed.push(jobId);
        throw new Error("simulated crash before the RingCentral id was recorded");
      };
      // Instance a's POST is slow (the emulator holds it before creating the fax), so b's fax, posted later, is
      // created first: "the oldest unowned fax to these numbers" would give a's job b's fax.
      await t.fault({ path: "/fax", kind: "latency", latencyMs: 1500, count: 1 });
      await t.startWorker({ hooks: { beforeRecordSubmit: crash } });
      // Same recipient, same cover text, same kind of document: nothing but the tag tells the two faxes apart.
      const mail = { to: "15551234567@fax.local", subject: "Lab order", text: "Please see attached.", attachments: [{ filename: "order.pdf", content: makePdf("order") }] };
      const first = await t.send(mail);
      await t.waitState(first, "submitting");
      const b = t.newWorker({ stores: other, hooks: { beforeRecordSubmit: crash } });
      await b.start();
      const second = await t.send(mail);
      await waitFor(() => crashed.length === 2, 10_000, "both instances to crash after their POST");
      expect(crashed).toEqual([second, first]);
      await b.stop();
      await t.stopWorker();

      const faxes = await t.sentFaxes();
      expect(faxes).toHaveLength(2);
      expect(faxes.map((f) => tagOf(f.coverPageText ?? undefined)?.jobId)).toEqual([second, first]);
      for (const id of [first, second]) expect(await t.job(id)).toMatchObject({ state: "submitting", rcMessageId: null });

      // Both instances come back once the leases ran out, and reconcile.
      await waitFor(async () => {
        const jobs = await Promise.all([t.job(first), t.job(second)]);
        return jobs.every((j) => (j.leaseUntil ?? 0) < Date.now());
      }, 10_000, "the leases to expire");
      await t.startWorker();
      const b2 = t.newWorker({ stores: other });
      await b2.start();
      try {
        const [one, two] = await Promise.all([t.waitState(first, "notified"), t.waitState(second, "notified")]);
        expect(one.rcMessageId).toBe(faxes[1]?.id);
        expect(two.rcMessageId).toBe(faxes[0]?.id);
        expect(await t.sentFaxes()).toHaveLength(2);
        expect(t.events("fax.reconciled").every((l) => l["outcome"] === "adopted")).toBe(true);
      } finally {
        await b2.stop();
      }
    } finally {
      await other.close();
    }
  });

  it("a failed submission whose failure could not be written is reconciled as soon as the store takes writes, not after its lease", async () => {
    // A lease far longer than the test: only the prompt release can finish the job in time.
    const t = await harness({ tuning: { leaseMs: 60_000, submitLeaseMs: 60_000 } });
    let failing = 0;
    let failedAt = 0;
    // RingCentral answers 503 (the fax may or may not exist: the job must stay submitting and be reconciled) …
    await t.fault({ path: "/fax", kind: "status", status: 503, count: 1 });
    await t.startWorker({
      hooks: {
        // … and the store cannot write the failure, twice (the step's reschedule and the worker's).
        beforeReschedule: () => {
          if (failing >= 2) return;
          failing++;
          failedAt = Date.now();
          throw new Error("SQLITE_FULL: database or disk is full (simulated)");
        },
      },
    });
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "a.pdf", content: makePdf("full") }] });
    const done = await t.waitState(id, "notified", 15_000);
    expect(failing).toBe(2);
    expect(Date.now() - failedAt).toBeLessThan(15_000);
    expect(t.events("worker.reschedule_failed").length).toBeGreaterThanOrEqual(1);
    expect(t.events("worker.reschedule_recovered")).toHaveLength(1);
    expect(t.events("fax.reconciled").map((l) => l["outcome"])).toEqual(["not_found"]);
    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(1);
    expect(done.rcMessageId).toBe(faxes[0]?.id);
  });
});
