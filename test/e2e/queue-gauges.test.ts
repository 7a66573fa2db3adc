/**
 * The queue gauges are reported by one instance (issue 11): on PostgreSQL
 * every instance sees the same shared queue, so only the inbound leader
 * reports faxbridge_queue_jobs; the others show no value instead of a
 * duplicate that a sum over instances would double.
 */
import { describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { harnessPerTest, makePdf } from "./outbound-harness.js";

const harness = harnessPerTest({ tuning: { sendConcurrency: 0 } });

async function queueGauge(metrics: { registry: { getSingleMetricAsString(name: string): Promise<string> } }): Promise<string[]> {
  const text = await metrics.registry.getSingleMetricAsString("faxbridge_queue_jobs");
  return text.split("\n").filter((l) => l.startsWith("faxbridge_queue_jobs{"));
}

describe("queue gauges", () => {
  it("are reported by the instance that leads, and by no other", async () => {
    const t = await harness({ startWorker: false });
    await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    let leading = false;
    await t.startWorker({ reportsQueue: () => leading });
    // Not the leader: no value at all, not a copy of the leader's.
    await waitFor(async () => (await t.job((await t.store.list())[0]?.id ?? "")).state === "parsed", { timeoutMs: 10_000, what: "the job parsed" });
    expect(await queueGauge(t.metrics)).toEqual([]);
    leading = true;
    await waitFor(async () => (await queueGauge(t.metrics)).some((l) => l.includes('state="parsed"') && l.endsWith(" 1")), { timeoutMs: 10_000, what: "the gauge of the leader" });
    leading = false;
    await waitFor(async () => (await queueGauge(t.metrics)).length === 0, { timeoutMs: 10_000, what: "the gauge cleared after stepping down" });
  });
});
