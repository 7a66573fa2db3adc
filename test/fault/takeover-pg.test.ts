/**
 * A dead instance's work is taken over within 60 s (issue 11): two daemons
 * on one PostgreSQL database (each with its own data directory, no shared
 * disk) and one emulator. Instance A claims a job and is killed with
 * SIGKILL in the middle of a slow upload (the emulator holds the POST without
 * reading it, so A is stuck writing a 16 MB body); A's short lease, no longer
 * renewed, runs out and instance B finishes the job: reconciled by the job's
 * tag (RingCentral got no complete fax), sent once, reported once.
 */
import { afterEach, beforeAll, expect, it } from "vitest";
import { tagOf } from "../../src/outbound/tag.js";
import { LEASE_MS } from "../../src/tunables.js";
import { ensureBuilt } from "../helpers/build.js";
import { DaemonProcess } from "../helpers/daemon.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { daemonEnv, EmulatorProcess, faxMail } from "./harness.js";
import { sendRaw } from "./smtp-client.js";

/** A PDF big enough that the upload cannot sit whole in the loopback socket buffers while the emulator holds the request. */
function bigPdf(marker: string): Buffer {
  const head = `%PDF-1.4\n% ${marker}\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n`;
  const padding = `% ${"0123456789abcdef".repeat(64)}\n`.repeat(16 * 1024);
  return Buffer.from(`${head}${padding}trailer << /Root 1 0 R >>\n%%EOF\n`, "latin1");
}

describePg("takeover of a dead instance's job (PostgreSQL, two daemons, kill -9)", () => {
  const db = usePgDatabase();
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  }, 180_000);

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("instance B finishes within 60 s a job whose instance A was killed mid-upload, and the fax is sent exactly once", { timeout: 180_000 }, async () => {
    const emu = await new EmulatorProcess().start();
    cleanups.push(() => emu.stop());
    const sink = await new SmtpSink().start();
    cleanups.push(() => sink.close());
    const dirA = tempDir("faxbridge-takeover-a-");
    const dirB = tempDir("faxbridge-takeover-b-");
    cleanups.push(() => dirA.cleanup(), () => dirB.cleanup());
    const env = (dataDir: string): Record<string, string> => ({
      ...daemonEnv({ dataDir, emulatorUrl: emu.url, mediaUrl: emu.mediaUrl, sinkUrl: sink.url }),
      FAXBRIDGE_DATABASE_URL: db.url,
      RC_REQUEST_TIMEOUT_MS: "120000",
    });
    const a = await new DaemonProcess(env(dirA.path)).start();
    cleanups.push(() => a.stop());
    const { smtpPort } = await a.started();

    // The emulator holds the next fax POST for 20 s without reading it: A's upload stalls part-way.
    await emu.fault({ path: "/fax", kind: "latency", latencyMs: 20_000, count: 1 });
    const pdf = bigPdf("takeover");
    const raw = faxMail({ from: "alice@example.test", to: "15551234999@fax.local", marker: "takeover", pdf, messageId: "takeover@example.test" });
    const r = await sendRaw({ port: smtpPort, from: "alice@example.test", to: ["15551234999@fax.local"], raw, timeoutMs: 60_000 });
    expect(r).toMatchObject({ kind: "reply", stage: "end", code: 250 });
    const jobId = /Queued as (\S+)/.exec(r.kind === "reply" ? r.text : "")?.[1] ?? "";
    expect(jobId).not.toBe("");
    await a.waitForLine((l) => l.event === "fax.submitting" && l.queueId === jobId, 60_000);

    // B joins while A holds the job: A's lease is live, so B leaves the job alone.
    const b = await new DaemonProcess(env(dirB.path)).start();
    cleanups.push(() => b.stop());
    await b.started();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    a.kill("SIGKILL");
    await a.exited();
    const killedAt = Date.now();

    const done = await b.waitForLine((l) => l.event === "fax.submitted" && l.queueId === jobId, 60_000);
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThan(60_000);
    expect(tookMs).toBeLessThan(LEASE_MS + 15_000);
    expect(b.lines.filter((l) => l.event === "fax.reconciled" && l.queueId === jobId).map((l) => l["outcome"])).toEqual(["not_found"]);

    const report = await waitFor(() => sink.messages.find((m) => m.to.includes("alice@example.test")), 30_000, "the report to the sender");
    expect(report.parsed.subject).toMatch(/ sent /);
    // Past the emulator's hold of A's request (it then reads a cut-off body): that upload must not have become a fax.
    await waitFor(() => Date.now() - killedAt > 22_000, 30_000, "the emulator's hold of A's request to end");
    const faxes = (await emu.sentFaxes()).filter((f) => f.to.some((t) => t.phoneNumber === "+15551234999"));
    expect(faxes).toHaveLength(1);
    expect(faxes[0]?.id).toBe(String(done["rcMessageId"]));
    expect(tagOf(faxes[0]?.coverPageText ?? undefined)?.jobId).toBe(jobId);
    expect(sink.messages.filter((m) => m.to.includes("alice@example.test"))).toHaveLength(1);
  });
});
