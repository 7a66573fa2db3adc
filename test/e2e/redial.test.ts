/**
 * Issue 12, redial on busy / no answer (fax.redial), end to end: nodemailer →
 * our SMTP listener → worker → RingCentral emulator (which fails
 * +15550000001 with LineBusy and +15550000002 with NoAnswer, or follows a
 * scripted sequence) → one sender report at the SMTP sink.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Stores } from "../../src/cli/common.js";
import { cancelJob } from "../../src/cli/queue.js";
import { waitFor } from "../helpers/wait.js";
import { makePdf, OutboundHarness, type HarnessOptions } from "./outbound-harness.js";

let h: OutboundHarness | undefined;

async function harness(opts: HarnessOptions = {}): Promise<OutboundHarness> {
  h = await new OutboundHarness(opts).start();
  return h;
}

afterEach(async () => {
  await h?.close();
  h = undefined;
});

const BUSY = { messageStatus: "SendingFailed", faxErrorCode: "LineBusy" };
const SENT = { messageStatus: "Sent" };

interface RedialData {
  redial?: { round: number; pending: string[]; attempts: Record<string, number> };
  chargedPages?: number;
}

function redialOf(job: { faxRequest: unknown }): RedialData["redial"] {
  return (job.faxRequest as RedialData | null)?.redial;
}

describe("redial on busy / no answer (fax.redial)", () => {
  it("busy, then through: one report saying sent after 2 attempts; one upload and one resend to just that number", async () => {
    const t = await harness({ fax: { redial: "100ms*2" } });
    await t.control("PUT", "/emulator/fax-outcomes", { "+15550000001": [BUSY, SENT] });
    const id = await t.send({ to: "15550000001@fax.local", subject: "Order", attachments: [{ filename: "order.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified");
    expect(job.status).toEqual([{ e164: "+15550000001", status: "Sent" }]);
    expect(redialOf(job)).toMatchObject({ round: 1, attempts: { "+15550000001": 2 } });
    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(2);
    expect(faxes[0]?.layout).not.toBe("resend");
    expect(faxes[0]?.attachments).toHaveLength(1);
    expect(faxes[1]).toMatchObject({ layout: "resend", originalMessageId: faxes[0]?.id, to: [{ phoneNumber: "+15550000001" }] });
    expect(job.rcMessageId).toBe(faxes[1]?.id);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const report = t.sink.messages[0];
    expect(report?.parsed.subject).toMatch(/^Fax to \+1 555-000-0001 sent/);
    expect(report?.parsed.text).toContain("after 2 attempts");
    expect(report?.parsed.headers.get("x-faxbridge-status")).toBe("delivered");
    expect(t.events("fax.redial_scheduled")).toHaveLength(1);
    // One report only: nothing while redialling.
    expect(t.sink.messages).toHaveLength(1);
  });

  it("with fax.notifyOnAccept the sender gets one acceptance notice and one report, not one per redial", async () => {
    const t = await harness({ fax: { redial: "100ms*2", notifyOnAccept: true } });
    const id = await t.send({ to: "15550000001@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await t.waitState(id, "notified");
    expect(await t.sentFaxes()).toHaveLength(3);
    await waitFor(() => t.sink.messages.length === 2, 5000, "the notice and the report");
    const subjects = t.sink.messages.map((m) => m.parsed.subject);
    expect(subjects).toContain("Fax to +1 555-000-0001 accepted, sending");
    expect(subjects).toContain("Fax to +1 555-000-0001 failed: line busy after 3 attempts");
    await t.stopWorker();
    expect(t.sink.messages).toHaveLength(2);
  });

  it("always busy: three attempts (the schedule's two redials), then one report saying busy after 3 attempts", async () => {
    const t = await harness({ fax: { redial: "100ms*2" } });
    const id = await t.send({ to: "15550000001@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified");
    expect(job.status).toEqual([{ e164: "+15550000001", status: "SendingFailed", faxErrorCode: "LineBusy" }]);
    const faxes = await t.sentFaxes();
    expect(faxes.map((f) => f.layout === "resend")).toEqual([false, true, true]);
    expect(faxes.slice(1).map((f) => f.originalMessageId)).toEqual([faxes[0]?.id, faxes[0]?.id]);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const report = t.sink.messages[0];
    expect(report?.parsed.subject).toBe("Fax to +1 555-000-0001 failed: line busy after 3 attempts");
    expect(report?.parsed.text).toContain("failed: line busy (LineBusy) after 3 attempts");
    expect(t.sink.messages).toHaveLength(1);
  });

  it("mixed recipients: only the no-answer one is redialled; the report names each recipient's attempts", async () => {
    const t = await harness({ fax: { redial: "100ms*2" } });
    const id = await t.send({ to: ["15551234567@fax.local", "15550000002@fax.local"], attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified");
    expect(job.status).toEqual([
      { e164: "+15551234567", status: "Sent" },
      { e164: "+15550000002", status: "SendingFailed", faxErrorCode: "NoAnswer" },
    ]);
    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(3);
    expect(faxes[0]?.to.map((r) => r.phoneNumber).sort()).toEqual(["+15550000002", "+15551234567"]);
    for (const f of faxes.slice(1)) expect(f).toMatchObject({ layout: "resend", originalMessageId: faxes[0]?.id, to: [{ phoneNumber: "+15550000002" }] });
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const text = t.sink.messages[0]?.parsed.text ?? "";
    expect(text).toMatch(/\+1 555-123-4567: sent\n/);
    expect(text).toContain("failed: no answer (NoAnswer) after 3 attempts");
    expect(t.sink.messages[0]?.parsed.headers.get("x-faxbridge-status")).toBe("partial");
  });

  it("redial off (fax.redial off): a busy number is reported at once after one attempt", async () => {
    const t = await harness({ fax: { redial: "off" } });
    const id = await t.send({ to: "15550000001@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified");
    expect(redialOf(job)).toBeUndefined();
    expect(await t.sentFaxes()).toHaveLength(1);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toBe("Fax to +1 555-000-0001 failed: line busy");
    expect(t.sink.messages[0]?.parsed.text).not.toContain("attempts");
    expect(t.events("fax.redial_scheduled")).toHaveLength(0);
  });

  it("charges the page quota for each attempt; a redial over the quota is not made and the report says why", async () => {
    const t = await harness({ fax: { redial: "100ms*2" }, policy: { quotas: { pagesPerSenderPerHour: 2 } } });
    const id = await t.send({ envelope: { from: "q@example.com", to: ["15550000001@fax.local"] }, attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified");
    expect(job.faxRequest).toMatchObject({ countedPages: 1, chargedPages: 2 });
    expect(await t.sentFaxes()).toHaveLength(2);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const text = t.sink.messages[0]?.parsed.text ?? "";
    expect(text).toContain("failed: line busy (LineBusy) after 2 attempts");
    expect(text).toMatch(/not redialled: this fax is 1 page × 1 recipient = 1 pages, over q@example\.com's hourly quota of 2 pages/);
  });

  it("the redial state lives in the job row: a worker restarted while a redial waits carries it out", async () => {
    const t = await harness({ fax: { redial: "1s" } });
    await t.control("PUT", "/emulator/fax-outcomes", { "+15550000001": [BUSY, SENT] });
    const id = await t.send({ to: "15550000001@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await waitFor(async () => redialOf(await t.job(id))?.round === 1, 10_000, "the redial to be scheduled");
    await t.stopWorker();
    const waiting = await t.job(id);
    expect(waiting.state).toBe("parsed");
    expect(redialOf(waiting)).toMatchObject({ round: 1, pending: ["+15550000001"] });
    expect(await t.sentFaxes()).toHaveLength(1);
    await t.startWorker();
    const job = await t.waitState(id, "notified");
    expect(job.status).toEqual([{ e164: "+15550000001", status: "Sent" }]);
    expect(await t.sentFaxes()).toHaveLength(2);
  });

  it("a crash after RingCentral accepted a redial but before it was recorded: the next worker adopts the resend, never resends again", async () => {
    const t = await harness({ fax: { redial: "100ms" }, startWorker: false });
    await t.control("PUT", "/emulator/fax-outcomes", { "+15550000001": [BUSY, SENT] });
    let crashed: () => void = () => undefined;
    const crash = new Promise<void>((resolve) => (crashed = resolve));
    let submits = 0;
    await t.startWorker({
      hooks: {
        beforeRecordSubmit: () => {
          submits++;
          if (submits < 2) return;
          crashed();
          throw new Error("simulated crash before the redial's RingCentral id was recorded");
        },
      },
      tuning: { submitLeaseMs: 300 },
    });
    const id = await t.send({ to: "15550000001@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await crash;
    await t.stopWorker();
    const stuck = await t.job(id);
    expect(stuck.state).toBe("submitting");
    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(2);
    await waitFor(() => Date.now() > (stuck.leaseUntil ?? 0), 5000, "the lease to expire");
    await t.startWorker();
    const done = await t.waitState(id, "notified");
    expect(done.rcMessageId).toBe(faxes[1]?.id);
    expect(done.status).toEqual([{ e164: "+15550000001", status: "Sent" }]);
    expect(await t.sentFaxes()).toHaveLength(2);
    expect(t.events("fax.reconciled").map((l) => l["outcome"])).toEqual(["adopted"]);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.text).toContain("after 2 attempts");
  });

  it("queue cancel while a redial waits stops the redialling", async () => {
    const t = await harness({ fax: { redial: "500ms*2" } });
    const id = await t.send({ to: "15550000001@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const waiting = await waitFor(async () => {
      const j = await t.job(id);
      return redialOf(j)?.round === 1 && j.state === "parsed" ? j : undefined;
    }, 10_000, "the redial to be scheduled");
    const stores: Stores = t.stores;
    const result = await cancelJob(stores, id);
    expect(result.message).toContain("cancelled while it waited to redial busy / no-answer recipients");
    expect((await t.job(id)).state).toBe("cancelled");
    // Past the redial's due time, and the worker has finished another job since: still one fax to the busy number.
    await waitFor(() => Date.now() > waiting.nextAttemptAt, 5000, "the redial's due time");
    const other = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "b.pdf", content: makePdf() }] });
    await t.waitState(other, "notified");
    expect((await t.sentFaxes()).filter((f) => f.to.some((r) => r.phoneNumber === "+15550000001"))).toHaveLength(1);
    expect((await t.job(id)).state).toBe("cancelled");
  });
});
