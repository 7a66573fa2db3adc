/**
 * Sending from any instance (issue 11, "Documents"): two faxbridge instances
 * with different data directories share one PostgreSQL database and one
 * emulator. Instance A accepts a mail and parses it, then stops and its data
 * directory is deleted; instance B submits the fax, reports it and cleans it
 * up, reading the documents from the database only. The emulator receives
 * the documents byte for byte. With 45 MB of documents the sending
 * instance (a real daemon process) grows its RSS by less than 64 MB.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { afterEach, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { retryJob } from "../../src/outbound/operator.js";
import { readJobData } from "../../src/outbound/job-data.js";
import { mailKey, workPrefix } from "../../src/store/ports.js";
import { DaemonProcess } from "../helpers/daemon.js";
import { EmulatorControl } from "../helpers/emulator-control.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { daemonEnv } from "../fault/harness.js";
import { makePdf, OutboundHarness, sha256, type HarnessOptions } from "./outbound-harness.js";

const MB = 1024 * 1024;

/** Every file below `dir` (recursively); none when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => !e.isDirectory()).map((e) => join(e.parentPath, e.name));
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

/** A one-page PDF carrying `size` bytes of random data in a stream object (unique bytes per call). */
function bigPdf(size: number): Buffer {
  const head = Buffer.from(
    "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
      `3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n4 0 obj << /Length ${size} >> stream\n`,
    "latin1",
  );
  const tail = Buffer.from("\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n", "latin1");
  return Buffer.concat([head, randomBytes(size), tail]);
}

describePg("a job parsed by one instance is sent by another (PostgreSQL, no shared disk)", () => {
  const db = usePgDatabase();
  let emu: Emulator | undefined;
  const harnesses: OutboundHarness[] = [];
  let daemon: DaemonProcess | undefined;
  const sinks: SmtpSink[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];

  async function instance(opts: HarnessOptions): Promise<OutboundHarness> {
    const h = new OutboundHarness({ databaseUrl: db.url, ...(emu !== undefined && { sharedEmulator: emu }), ...opts });
    harnesses.push(h);
    return h.start();
  }

  afterEach(async () => {
    for (const h of harnesses.splice(0)) await h.close();
    await daemon?.stop();
    daemon = undefined;
    for (const s of sinks.splice(0)) await s.close();
    for (const d of dirs.splice(0)) d.cleanup();
    await emu?.close();
    emu = undefined;
  });

  it("A accepts and parses, stops and loses its disk; B submits (after a 429), reports and cleans up; the fax is byte-identical", async () => {
    emu = await startEmulator({ faxTimings: { queuedMs: 60, pageMs: 60 } });
    // A parses and never sends (a store decorator limits its claims), like an instance that died right after parsing.
    const a = await instance({ hooks: { claimOnly: ["received"] } });
    const first = makePdf("first");
    const second = makePdf("second");
    const id = await a.send({
      to: "15551234567@fax.local",
      messageId: "<handover-1@example.com>",
      subject: "Contract",
      attachments: [
        { filename: "a.pdf", content: first, contentType: "application/pdf" },
        { filename: "b.pdf", content: second, contentType: "application/pdf" },
      ],
    });
    const parsed = await a.waitState(id, "parsed");
    const data = readJobData(parsed.faxRequest);
    if (!data.ok) throw new Error(data.error);
    // The job names its documents by key, never by a path on A's disk.
    expect(data.data?.documents.map((d) => d.key.startsWith(`${workPrefix(id)}/`))).toEqual([true, true]);
    expect(JSON.stringify(parsed.faxRequest)).not.toContain(a.dir.path);
    // A's extraction scratch was released once the documents were in the database.
    expect(await filesUnder(join(a.dir.path, "pg-local", "work"))).toEqual([]);
    await a.close();
    expect(existsSync(a.dir.path)).toBe(false);

    // B's first send is refused (429) after its documents were lent out: the copies must be given back then too.
    await new EmulatorControl(() => emu?.url ?? "").fault({ group: "Heavy", count: 1, kind: "429", retryAfter: 1 });
    const b = await instance({ fax: { reportAttachDocuments: true } });
    const done = await b.waitState(id, "notified", 20_000);
    expect(done.status).toEqual([{ e164: "+15551234567", status: "Sent" }]);
    const faxes = await b.sentFaxes();
    expect(faxes).toHaveLength(1);
    expect(faxes[0]?.attachments.map((x) => x.sha256)).toEqual([sha256(first), sha256(second)]);
    expect(a.events("fax.submitted")).toHaveLength(0);
    expect(b.events("fax.submitted")).toHaveLength(1);
    expect(b.events("fax.deferred")).toHaveLength(1);
    // B's report carries the documents, read from the database.
    await waitFor(() => b.sink.messages.length === 1, 15_000, "the report");
    const report = b.sink.messages[0]?.parsed;
    expect(report?.inReplyTo).toBe("<handover-1@example.com>");
    const originals = report?.attachments.filter((x) => !(x.filename ?? "").startsWith("transmitted-fax"));
    expect(originals?.map((x) => sha256(x.content))).toEqual([sha256(first), sha256(second)]);
    // B cleaned up: the mail and the documents are gone from the database, and B kept no temporary copies.
    await waitFor(
      async () => (await b.stores.documents.stat(mailKey(id))) === undefined && (await b.stores.documents.list(workPrefix(id))).length === 0,
      15_000,
      "the raw message and the documents removed",
    );
    expect(await filesUnder(join(b.dir.path, "pg-local", "tmp"))).toEqual([]);
  });

  it.skipIf(process.platform !== "linux")(
    "45 MB of documents parsed by A are sent by B, a daemon process whose RSS grows by less than 64 MB",
    async () => {
      emu = await startEmulator({ faxTimings: { queuedMs: 60, pageMs: 60 } });
      const sink = new SmtpSink();
      sinks.push(sink);
      await sink.start();
      // A parses and parks the job (due only once an operator's retry makes it so), so B's baseline is taken idle.
      // A lease long enough for parsing 45 MB on a loaded machine: A must not take its own job over.
      const a = await instance({ hooks: { claimOnly: ["received"], parkParsedUntil: Date.now() + 3_600_000 }, tuning: { leaseMs: 120_000 } });
      const pdf = bigPdf(45 * MB);
      const id = await a.send({
        to: "15551234567@fax.local",
        messageId: "<handover-big@example.com>",
        attachments: [{ filename: "big.pdf", content: pdf, contentType: "application/pdf" }],
      });
      await a.waitState(id, "parsed", 60_000).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${a.logs.slice(-15).map((l) => JSON.stringify(l)).join("\n")}`);
      });
      expect((await a.stores.documents.stat(mailKey(id)))?.size).toBeGreaterThan(45 * MB);
      // A's worker stops (its stores stay open for the test to watch the job).
      await a.stopWorker();

      const dir = tempDir("faxbridge-handover-b-");
      dirs.push(dir);
      daemon = await new DaemonProcess(
        daemonEnv({
          dataDir: dir.path,
          emulatorUrl: emu.url,
          mediaUrl: emu.mediaUrl,
          sinkUrl: sink.url,
          extra: { FAXBRIDGE_DATABASE_URL: db.url, RC_JWT: "jwt", FAXBRIDGE_INBOUND_NOTIFICATIONS: "none" },
        }),
      ).start();
      const { smtpPort } = await daemon.started().catch(() => {
        throw new Error(daemon?.tail() ?? "");
      });
      await daemon.waitForLine((l) => l.event === "worker.started", 60_000);
      // Warm up: B takes and faxes a small mail of its own first (loading what a send needs), then B is measured.
      const smtp = nodemailer.createTransport({ host: "127.0.0.1", port: smtpPort, secure: false, ignoreTLS: true });
      const warm = /Queued as (\S+)/.exec(
        ((await smtp.sendMail({ from: "alice@example.com", to: "15551234568@fax.local", subject: "warm-up", text: "warm", attachments: [{ filename: "w.pdf", content: makePdf("warm") }] })) as { response: string }).response,
      )?.[1];
      smtp.close();
      await a.waitState(warm ?? "", "notified", 60_000).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${daemon?.tail(40) ?? ""}`);
      });
      const pid = daemon.pid;
      const baseline = rssBytes(pid);
      let peak = baseline;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssBytes(pid));
      }, 25);
      try {
        expect((await retryJob(a.stores, id)).state).toBe("parsed");
        await a.waitState(id, "notified", 90_000).catch((err: unknown) => {
          throw new Error(`${String(err)}\n${daemon?.tail(25) ?? ""}`);
        });
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, rssBytes(pid));
      const faxes = (await a.sentFaxes()).filter((f) => f.to[0]?.phoneNumber === "+15551234567");
      expect(faxes.map((f) => f.attachments.map((x) => [x.size, x.sha256]))).toEqual([[[pdf.length, sha256(pdf)]]]);
      expect(daemon.lines.filter((l) => l.event === "fax.submitted" && l["queueId"] === id)).toHaveLength(1);
      process.stderr.write(`sending daemon RSS growth with 45 MB of documents: ${((peak - baseline) / MB).toFixed(1)} MB\n`);
      expect(peak - baseline).toBeLessThan(64 * MB);
      await waitFor(
        async () => (await a.stores.documents.stat(mailKey(id))) === undefined && (await a.stores.documents.list(workPrefix(id))).length === 0,
        15_000,
        "the raw message and the documents removed",
      );
      expect(await filesUnder(join(dir.path, "pg-local", "tmp"))).toEqual([]);
    },
    180_000,
  );
});
