/**
 * Restarts and crashes: a new OutboundWorker on the same database and spool
 * finishes whatever the previous one left, and a crash between RingCentral
 * accepting a fax and us recording it never sends the fax twice.
 */
import { describe, expect, it } from "vitest";
import type { JobState } from "../../src/store/outbound.js";
import { waitFor } from "../helpers/wait.js";
import type { OutboundHarness } from "./outbound-harness.js";
import { harnessPerTest, makePdf } from "./outbound-harness.js";

const harness = harnessPerTest({ startWorker: false });

function pdfMail(number: string, extra: Record<string, unknown> = {}): Parameters<OutboundHarness["send"]>[0] {
  return { to: `${number}@fax.local`, attachments: [{ filename: `${number}.pdf`, content: makePdf(number) }], ...extra };
}

describe("outbound recovery", () => {
  it("crash after RingCentral accepted the fax but before it was recorded: the next worker adopts it, never resends", async () => {
    const t = await harness();
    let crashed: () => void = () => undefined;
    const crash = new Promise<void>((resolve) => (crashed = resolve));
    await t.startWorker({
      hooks: {
        beforeRecordSubmit: () => {
          crashed();
          throw new Error("simulated crash before the RingCentral id was recorded");
        },
      },
      tuning: { submitLeaseMs: 300 },
    });
    const id = await t.send(pdfMail("15551234567"));
    await crash;
    await t.stopWorker();

    const stuck = await t.job(id);
    expect(stuck.state).toBe("submitting");
    expect(stuck.submitStartedAt).not.toBeNull();
    expect(stuck.rcMessageId).toBeNull();
    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(1);
    expect(t.events("fax.record_failed")).toHaveLength(1);

    // The lease of the dead process runs out; a new worker reconciles before sending anything.
    await waitFor(() => Date.now() > (stuck.leaseUntil ?? 0), 5000, "the lease to expire");
    await t.startWorker();
    const done = await t.waitState(id, "notified");
    expect(done.rcMessageId).toBe(faxes[0]?.id);
    expect(await t.sentFaxes()).toHaveLength(1);
    expect(t.events("worker.interrupted_submissions")).toHaveLength(1);
    expect(t.events("fax.reconciled").map((l) => l["outcome"])).toEqual(["adopted"]);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toMatch(/ sent /);
  });

  it("a job left submitting without a fax at RingCentral is sent once after the restart", async () => {
    const t = await harness();
    await t.startWorker({ tuning: { sendConcurrency: 0 } });
    const id = await t.send(pdfMail("15551234567"));
    await t.waitState(id, "parsed");
    await t.stopWorker();
    // The process died right after persisting submitStartedAt, before the POST.
    await t.store.transition(id, "parsed", "submitting", { submitStartedAt: Date.now() });
    await t.startWorker();
    await t.waitState(id, "notified");
    expect(await t.sentFaxes()).toHaveLength(1);
    expect(t.events("fax.reconciled").map((l) => l["outcome"])).toEqual(["not_found"]);
  });

  it("a new worker on the same database and spool finishes jobs left in every state", async () => {
    const t = await harness({ fax: { statusTimeoutHours: 24 } });
    const parkedReports = { retrySchedule: "1h", statusPollSchedule: "50ms" };
    await t.sink.down();

    // failed (refused) and final, each with its report parked for an hour because the mail server is down
    await t.startWorker({ fax: parkedReports });
    const failed = await t.send({ to: "15551234501@fax.local", attachments: [{ filename: "scan.heic", content: Buffer.from("heic") }] });
    const final = await t.send(pdfMail("15551234502"));
    await waitFor(async () => (await t.job(failed)).state === "failed" && (await t.job(failed)).lastError !== null, 10_000, "failed job parked");
    await waitFor(async () => (await t.job(final)).state === "final" && (await t.job(final)).lastError !== null, 10_000, "final job parked");
    await t.stopWorker();

    // submitted, next poll in an hour
    await t.startWorker({ fax: { retrySchedule: "1h", statusPollSchedule: "1h" } });
    const submitted = await t.send(pdfMail("15551234503"));
    await t.waitState(submitted, "submitted");
    await t.stopWorker();

    // parsed (no sending), and one of them interrupted in submitting
    await t.startWorker({ tuning: { sendConcurrency: 0 } });
    const submitting = await t.send(pdfMail("15551234504"));
    const parsed = await t.send(pdfMail("15551234505"));
    await t.waitState(submitting, "parsed");
    await t.waitState(parsed, "parsed");
    await t.stopWorker();
    await t.store.transition(submitting, "parsed", "submitting", { submitStartedAt: Date.now() });

    // received, no worker running
    const received = await t.send(pdfMail("15551234506"));

    const expected: Record<string, JobState> = { [failed]: "failed", [final]: "final", [submitted]: "submitted", [submitting]: "submitting", [parsed]: "parsed", [received]: "received" };
    const actual: Record<string, JobState> = {};
    for (const id of Object.keys(expected)) actual[id] = (await t.job(id)).state;
    expect(actual).toEqual(expected);
    expect(await t.sentFaxes()).toHaveLength(2);

    // Restart two hours later (parked retries and polls are due), mail server back.
    await t.sink.up();
    const shift = 2 * 3_600_000;
    await t.startWorker({ now: () => Date.now() + shift });
    for (const id of Object.keys(expected)) await t.waitState(id, "notified", 15_000);

    const faxes = await t.sentFaxes();
    const numbers = faxes.map((f) => f.to.map((x) => x.phoneNumber).join(",")).sort();
    expect(numbers).toEqual(["+15551234502", "+15551234503", "+15551234504", "+15551234505", "+15551234506"]);
    await waitFor(() => t.sink.messages.length === 6, 5000, "six reports");
    const subjects = t.sink.messages.map((m) => m.parsed.subject ?? "").sort();
    expect(subjects[0]).toBe("Fax not sent: an attachment is not a supported file type");
    expect(subjects.filter((s) => / sent /.test(s))).toHaveLength(5);
  });
});
