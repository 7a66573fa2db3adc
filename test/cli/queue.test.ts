import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { JobData } from "../../src/outbound/job-data.js";
import { mailKey, type OutboundJob, type OutboundStore } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";
import { ensureBuilt } from "../helpers/build.js";
import { tempDir } from "../helpers/tmp.js";
import { cli, cliJson, openTestStores } from "./helpers.js";

const NUMBER = "+15551234567";

function jobData(withRequest: boolean): JobData {
  return {
    v: 1,
    meta: { references: [], isReport: false, subject: "Contract" },
    ...(withRequest && { request: { to: [{ phoneNumber: NUMBER }], faxResolution: "High" as const } }),
    documents: withRequest ? [{ key: "work/missing/doc.pdf", filename: "doc.pdf", contentType: "application/pdf", size: 1234, sha256: "00" }] : [],
    skipped: [],
    polls: 0,
  };
}

describe("faxbridge queue", () => {
  let dir: ReturnType<typeof tempDir>;
  let stores: Awaited<ReturnType<typeof openTestStores>>;
  let env: Record<string, string>;
  let store: OutboundStore;

  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);

  beforeEach(async () => {
    dir = tempDir();
    const dataDir = join(dir.path, "data");
    mkdirSync(join(dataDir, "spool", "msg"), { recursive: true, mode: 0o700 });
    stores = await openTestStores(dataDir);
    store = stores.outbound;
    env = { FAXBRIDGE_DATA_DIR: dataDir };
  });

  afterEach(async () => {
    await stores.close();
    dir.cleanup();
  });

  async function received(from = "alice@example.com"): Promise<OutboundJob> {
    const id = newId();
    const spoolPath = join(env.FAXBRIDGE_DATA_DIR ?? "", "spool", "msg", `${id}.eml`);
    writeFileSync(spoolPath, "Subject: Contract\r\n\r\nhello\r\n");
    return store.insertReceived({
      id,
      mailFrom: from,
      rcptTo: [{ address: `${NUMBER.slice(1)}@fax.local`, e164: NUMBER, options: {} }],
      mailKey: mailKey(id),
      size: 30,
      client: { ip: "127.0.0.1" },
    });
  }

  async function parsed(): Promise<OutboundJob> {
    const job = await received();
    return store.transition(job.id, "received", "parsed", { faxRequest: jobData(true) });
  }

  async function submitted(): Promise<OutboundJob> {
    const job = await parsed();
    await store.transition(job.id, "parsed", "submitting", { submitStartedAt: Date.now() });
    return store.transition(job.id, "submitting", "submitted", { rcMessageId: "4001", status: [{ e164: NUMBER, status: "Queued" }] });
  }

  /** Failed after the retry schedule ran out during an outage: it has a fax request. */
  async function gaveUp(): Promise<OutboundJob> {
    const job = await parsed();
    await store.transition(job.id, "parsed", "submitting", { submitStartedAt: Date.now() });
    await store.reschedule(job.id, { from: "submitting", to: "parsed", nextAttemptAt: Date.now(), error: "rc_unavailable: RingCentral unavailable" });
    await store.transition(job.id, "parsed", "submitting", { submitStartedAt: Date.now() });
    return store.transition(job.id, "submitting", "failed", { errorCode: "rc_unavailable", errorText: "RingCentral is unavailable (gave up after 2 attempts)" });
  }

  it("lists jobs as a table and as JSON, filtered by state", async () => {
    const a = await received();
    const b = await submitted();
    const table = await cli(["queue", "list"], env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+STATE\s+FROM\s+TO\s+RECEIVED\s+ATT\s+NEXT\s+RC ID\s+ERROR/);
    expect(table.stdout).toContain(a.id);
    expect(table.stdout).toContain("4001");

    const all = await cliJson<{ id: string; state: string; to: string[]; rcMessageId: string | null }[]>(["queue", "list"], env);
    expect(all.map((j) => [j.id, j.state])).toEqual([
      [a.id, "received"],
      [b.id, "submitted"],
    ]);
    expect(all[1]).toMatchObject({ to: [NUMBER], rcMessageId: "4001", attempts: 1 }); // sent once: one attempt, not 0

    const onlySubmitted = await cliJson<{ id: string }[]>(["queue", "list", "--state", "submitted"], env);
    expect(onlySubmitted.map((j) => j.id)).toEqual([b.id]);
    const limited = await cliJson<{ id: string }[]>(["queue", "list", "--limit", "1"], env);
    expect(limited.map((j) => j.id)).toEqual([a.id]);
    const next = await cliJson<{ id: string }[]>(["queue", "list", "--after", a.id], env);
    expect(next.map((j) => j.id)).toEqual([b.id]);

    const bad = await cli(["queue", "list", "--state", "lost"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--state must be one of received, parsed");
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });

  it("shows one job with its recipients, status and error in words", async () => {
    const job = await gaveUp();
    const text = await cli(["queue", "show", job.id], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`job:            ${job.id}`);
    expect(text.stdout).toContain("failed (could not be faxed");
    expect(text.stdout).toContain("error:          RingCentral is unavailable (gave up after 2 attempts) [rc_unavailable]");
    expect(text.stdout).toContain("attempts:       2\n");
    expect(text.stdout).toContain("subject:        Contract");
    expect(text.stdout).toContain("doc.pdf (application/pdf, 1234 bytes)");

    const sub = await submitted();
    await store.transition(sub.id, "submitted", "final", { status: [{ e164: NUMBER, status: "SendingFailed", faxErrorCode: "LineBusy" }] });
    const shown = await cliJson<{ state: string; recipients: { e164: string; status: string; faxErrorCode: string; faxError: string }[] }>(["queue", "show", sub.id], env);
    expect(shown.state).toBe("final");
    expect(shown.recipients).toEqual([expect.objectContaining({ e164: NUMBER, status: "SendingFailed", faxErrorCode: "LineBusy" })]);
    expect(shown.recipients[0]?.faxError).toMatch(/busy/i);
    const finalText = await cli(["queue", "show", sub.id], env);
    expect(finalText.stdout).toMatch(/\+15551234567\s+SendingFailed - line busy \(LineBusy\)/);

    const missing = await cli(["queue", "show", "0nosuchjob000-00000000"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no outbound job with id 0nosuchjob000-00000000");
    const usage = await cli(["queue", "show"], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("takes exactly one job id");
  });

  it("retry makes a deferred job due now", async () => {
    const job = await parsed();
    const later = Date.now() + 3_600_000;
    await store.reschedule(job.id, { from: "parsed", nextAttemptAt: later, error: "rate_limited: 429" });
    const r = await cliJson<{ state: string; message: string }>(["queue", "retry", job.id], env);
    expect(r.state).toBe("parsed");
    expect(r.message).toContain("due now");
    const after = await store.get(job.id);
    expect(after?.nextAttemptAt).toBeLessThanOrEqual(Date.now());
    expect(after?.attempts).toBe(1);
  });

  it("retry puts a job that gave up during an outage back to parsed", async () => {
    const job = await gaveUp();
    const r = await cli(["queue", "retry", job.id], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("back in the queue (parsed)");
    const after = await store.get(job.id);
    expect(r.stdout).toContain("with a fresh retry schedule");
    expect(after).toMatchObject({ state: "parsed", errorCode: null, errorText: null, submitStartedAt: null, attempts: 0 });
    expect(after?.nextAttemptAt).toBeLessThanOrEqual(Date.now());
    expect((after?.faxRequest as JobData).request?.to).toEqual([{ phoneNumber: NUMBER }]);
  });

  it("retry refuses, with the reason, where a retry makes no sense", async () => {
    const refusedJob = await received();
    await store.transition(refusedJob.id, "received", "failed", {
      errorCode: "unsupported-type",
      errorText: "song.mp3 cannot be faxed",
      faxRequest: { ...jobData(false), refusal: { rule: "unsupported-type", message: "song.mp3 cannot be faxed" } },
    });
    const refused = await cli(["queue", "retry", refusedJob.id], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("refused before it became a fax request (song.mp3 cannot be faxed)");

    const sub = await submitted();
    const onItsWay = await cli(["queue", "retry", sub.id], env);
    expect(onItsWay.code).toBe(1);
    expect(onItsWay.stderr).toContain("RingCentral accepted it (message id 4001)");

    await store.transition(sub.id, "submitted", "final", { status: [{ e164: NUMBER, status: "Delivered" }] });
    await store.transition(sub.id, "final", "notified", { notifiedAt: Date.now() });
    const done = await cli(["queue", "retry", sub.id], env);
    expect(done.code).toBe(1);
    expect(done.stderr).toContain("it is finished and the sender was told");

    const c = await received();
    await store.transition(c.id, "received", "cancelled", { errorText: "cancelled by the operator" });
    const cancelled = await cli(["queue", "retry", c.id], env);
    expect(cancelled.code).toBe(1);
    expect(cancelled.stderr).toContain("it was cancelled");
    for (const r of [refused, onItsWay, done, cancelled]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("cancel withdraws received, parsed and submitted jobs and removes their spool file", async () => {
    const a = await received();
    const r1 = await cli(["queue", "cancel", a.id], env);
    expect(r1.code).toBe(0);
    expect(r1.stdout).toContain("cancelled before it was sent");
    expect((await store.get(a.id))?.state).toBe("cancelled");
    const { existsSync } = await import("node:fs");
    expect(existsSync(join(env.FAXBRIDGE_DATA_DIR ?? "", "spool", a.mailKey))).toBe(false);

    const b = await parsed();
    const r2 = await cliJson<{ state: string; previousState: string }>(["queue", "cancel", b.id], env);
    expect(r2).toMatchObject({ state: "cancelled", previousState: "parsed" });

    const c = await submitted();
    const r3 = await cli(["queue", "cancel", c.id], env);
    expect(r3.code).toBe(0);
    expect(r3.stdout).toContain("may already be on its way");
    expect(r3.stdout).toContain("4001");

    const d = await parsed();
    await store.transition(d.id, "parsed", "submitting", { submitStartedAt: Date.now() });
    const r4 = await cli(["queue", "cancel", d.id], env);
    expect(r4.code).toBe(1);
    expect(r4.stderr).toContain("being handed to RingCentral");

    const again = await cli(["queue", "cancel", a.id], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("cannot be cancelled: it is cancelled");
  });

  it("prints help for queue and each subcommand, and refuses unknown subcommands", async () => {
    const help = await cli(["queue", "--help"], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("queue retry ID");
    const subHelp = await cli(["queue", "cancel", "--help"], env);
    expect(subHelp.code).toBe(0);
    expect(subHelp.stdout).toContain("queue cancel ID");
    const unknown = await cli(["queue", "purge"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown subcommand "purge"');
  });
});
