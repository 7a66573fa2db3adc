/**
 * Outages of what the daemon depends on: RingCentral answering 5xx, 429 and
 * resetting connections; the mail server down; the disk full; and a SIGTERM
 * in the middle of a large DATA. In each case nothing accepted is lost and
 * nothing is sent twice.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../helpers/build.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { daemonEnv, EmulatorProcess, faxMail, inboundDeliveries, markerPdf, RestartableDaemon, sha256, waitQuiescent } from "./harness.js";
import { sendRaw } from "./smtp-client.js";

const INBOX = "fax-inbox@gw.test";

let emu: EmulatorProcess | undefined;
let sink: SmtpSink | undefined;
let daemon: RestartableDaemon | undefined;
let dir: ReturnType<typeof tempDir> | undefined;
let mounted: string | undefined;
let mountBase: ReturnType<typeof tempDir> | undefined;

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  await daemon?.stop();
  await emu?.stop();
  await sink?.close();
  if (mounted !== undefined) {
    try {
      execFileSync("umount", ["-l", mounted]);
    } catch (err) {
      console.warn(`[fault] umount ${mounted} failed: ${String(err)}`);
    }
  }
  dir?.cleanup();
  mountBase?.cleanup();
  mountBase = undefined;
  daemon = undefined;
  emu = undefined;
  sink = undefined;
  dir = undefined;
  mounted = undefined;
});

interface Env {
  e: EmulatorProcess;
  s: SmtpSink;
  d: RestartableDaemon;
  dataDir: string;
  dbFile: string;
}

async function setup(opts: { dataDir?: string; extra?: Record<string, string> } = {}): Promise<Env> {
  const e = await new EmulatorProcess().start();
  emu = e;
  const s = await new SmtpSink().start();
  sink = s;
  dir = tempDir("faxbridge-fault-");
  const dataDir = opts.dataDir ?? dir.path;
  const d = new RestartableDaemon(daemonEnv({ dataDir, emulatorUrl: e.url, mediaUrl: e.mediaUrl, sinkUrl: s.url, ...(opts.extra !== undefined && { extra: opts.extra }) }));
  daemon = d;
  await d.start();
  return { e, s, d, dataDir, dbFile: join(dataDir, "faxbridge.db") };
}

interface Mail {
  marker: string;
  hash: string;
  raw: Buffer;
  from: string;
  to: string;
}

function mail(tag: string, i: number): Mail {
  const marker = `${tag}-${i}`;
  const pdf = markerPdf(marker);
  const to = `1555123${String(5000 + (i % 7)).padStart(4, "0")}@fax.local`;
  const from = `${marker}@example.test`;
  return { marker, hash: sha256(pdf), raw: faxMail({ from, to, marker, pdf, messageId: `${marker}@example.test` }), from, to };
}

async function send(port: number, m: Mail): Promise<void> {
  const r = await sendRaw({ port, from: m.from, to: [m.to], raw: m.raw });
  expect({ marker: m.marker, ...r }).toMatchObject({ marker: m.marker, kind: "reply", stage: "end", code: 250 });
}

async function faxCounts(e: EmulatorProcess): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const f of await e.sentFaxes()) for (const a of f.attachments) counts.set(a.sha256, (counts.get(a.sha256) ?? 0) + 1);
  return counts;
}

async function expectFaxedOnce(env: Env, mails: Mail[], timeoutMs: number, inbound: Set<string> = new Set()): Promise<void> {
  await waitQuiescent(env.dbFile, timeoutMs, async () => {
    const c = await faxCounts(env.e);
    return mails.every((m) => c.has(m.hash)) && inboundDeliveries(env.s, INBOX).byPdf.size >= inbound.size;
  });
  const c = await faxCounts(env.e);
  expect(mails.map((m) => `${m.marker}×${c.get(m.hash) ?? 0}`)).toEqual(mails.map((m) => `${m.marker}×1`));
  const got = inboundDeliveries(env.s, INBOX);
  expect(got.byPdf.size).toBe(inbound.size);
  expect([...got.byPdf.keys()].every((h) => inbound.has(h))).toBe(true);
  expect(got.mails).toBe(inbound.size);
}

async function injectInbound(e: EmulatorProcess, tag: string, n: number): Promise<Set<string>> {
  const hashes = new Set<string>();
  for (let i = 0; i < n; i++) {
    const pdf = markerPdf(`${tag}-in${i}`);
    hashes.add(sha256(pdf));
    await e.injectInbound(pdf, `+1555765${String(2000 + i).padStart(4, "0")}`);
  }
  return hashes;
}

/** Reports mailed to each sender (the sink keeps them next to the inbound faxes). */
function reportsBySender(s: SmtpSink): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of s.messages) for (const to of m.to) if (to !== INBOX) out.set(to, (out.get(to) ?? 0) + 1);
  return out;
}

describe("RingCentral failing for a while", () => {
  it("5xx, 429 and connection resets: every mail faxed once, every received fax mailed once", async () => {
    const env = await setup();
    // Every kind of failure on any API call, in bursts, for the first ~hundred calls.
    await env.e.fault({ count: 25, kind: "status", status: 503 });
    await env.e.fault({ count: 20, kind: "429", retryAfter: 1 });
    await env.e.fault({ count: 20, kind: "reset" });
    await env.e.fault({ count: 15, kind: "status", status: 500 });
    await env.e.fault({ path: "/fax", count: 10, kind: "status", status: 502 });
    const mails = Array.from({ length: 20 }, (_, i) => mail("rc", i));
    const inbound = injectInbound(env.e, "rc", 10);
    for (const m of mails) await send(env.d.smtpPort, m);
    const hashes = await inbound;
    await expectFaxedOnce(env, mails, 90_000, hashes);
    const calls = await env.e.calls();
    // The faults really were hit.
    expect(calls.byStatus["503"] ?? 0).toBeGreaterThan(0);
    expect(calls.byStatus["429"] ?? 0).toBeGreaterThan(0);
    expect(calls.byStatus["reset"] ?? 0).toBeGreaterThan(0);
    const reports = reportsBySender(env.s);
    expect(mails.filter((m) => reports.get(m.from) !== 1).map((m) => m.marker)).toEqual([]);
  }, 150_000);
});

describe("mail server down for a while", () => {
  it("reports and received faxes are delivered once after it returns", async () => {
    const env = await setup();
    await env.s.down();
    const mails = Array.from({ length: 8 }, (_, i) => mail("mx", i));
    for (const m of mails) await send(env.d.smtpPort, m);
    const hashes = await injectInbound(env.e, "mx", 5);
    // Both directions have tried the mail server and deferred.
    const daemonProc = env.d.current;
    if (!daemonProc) throw new Error("no daemon");
    await daemonProc.waitForLine((l) => l.event === "report.deferred", 20_000);
    await waitFor(() => env.d.events("inbound.deferred").length > 0, 20_000, "an inbound deferral");
    expect(env.s.messages).toHaveLength(0);
    await env.s.up();
    await expectFaxedOnce(env, mails, 60_000, hashes);
    const reports = reportsBySender(env.s);
    expect(mails.filter((m) => reports.get(m.from) !== 1).map((m) => m.marker)).toEqual([]);
  }, 120_000);
});

describe("SIGTERM while a large mail is in DATA", () => {
  it("the mail completes with 250, the daemon exits 0 in time, and the restart loses nothing", async () => {
    const env = await setup();
    // 12 MB of PDF (a comment line of padding), about 16 MB once base64-encoded.
    const pdf = Buffer.concat([markerPdf("big"), Buffer.from(`% ${"x".repeat(12 * 1024 * 1024)}\n%%EOF\n`, "latin1")]);
    const m: Mail = {
      marker: "big",
      hash: sha256(pdf),
      from: "big@example.test",
      to: "15551236000@fax.local",
      raw: faxMail({ from: "big@example.test", to: "15551236000@fax.local", marker: "big", pdf, messageId: "big@example.test" }),
    };
    const proc = env.d.current;
    if (!proc) throw new Error("no daemon");
    let signalledAt = 0;
    const outcome = await sendRaw({
      port: env.d.smtpPort,
      from: m.from,
      to: [m.to],
      raw: m.raw,
      chunkBytes: 256 * 1024,
      chunkDelayMs: 20,
      onDataStarted: () => {
        signalledAt = Date.now();
        proc.kill("SIGTERM");
      },
    });
    expect(outcome).toMatchObject({ kind: "reply", stage: "end", code: 250 });
    const exit = await proc.exited();
    const tookMs = Date.now() - signalledAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(tookMs).toBeLessThan(25_000);
    await env.d.start();
    await expectFaxedOnce(env, [m], 60_000);
    console.log(`[fault] SIGTERM during DATA: exit 0 after ${tookMs} ms`);
  }, 120_000);
});

function canMountTmpfs(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "not root";
  const probe = tempDir("faxbridge-mount-probe-");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe.path], { stdio: "pipe" });
    execFileSync("umount", [probe.path], { stdio: "pipe" });
    return undefined;
  } catch (err) {
    return `mount -t tmpfs not permitted here: ${String(err).split("\n")[0] ?? ""}`;
  } finally {
    probe.cleanup();
  }
}

const noMount = canMountTmpfs();

describe("disk full", () => {
  it.skipIf(noMount !== undefined)(`SMTP answers 452 4.2.2, nothing accepted is lost, and intake resumes once space is freed${noMount !== undefined ? ` (skipped: ${noMount})` : ""}`, async () => {
    const base = tempDir("faxbridge-tmpfs-");
    mountBase = base;
    const dataDir = join(base.path, "data");
    mkdirSync(dataDir);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dataDir]);
    mounted = dataDir;
    {
      // No disk floor here: this test is about the spool write itself hitting ENOSPC.
      const env = await setup({ dataDir, extra: { FAXBRIDGE_SMTP_MIN_FREE_BYTES: "0" } });
      // Hold the faxes at RingCentral so the accepted mails are still queued while the disk fills.
      await env.e.fault({ path: "/fax", count: 1000, kind: "429", retryAfter: 1 });
      const before = Array.from({ length: 3 }, (_, i) => mail("disk", i));
      for (const m of before) await send(env.d.smtpPort, m);

      // Fill the filesystem.
      const filler = join(dataDir, "filler");
      const fd = openSync(filler, "w");
      const block = Buffer.alloc(64 * 1024, 1);
      let fillError: string | undefined;
      try {
        for (;;) writeSync(fd, block);
      } catch (err) {
        fillError = String((err as NodeJS.ErrnoException).code);
      } finally {
        closeSync(fd);
      }
      expect(fillError).toBe("ENOSPC");
      const refusedMail = mail("disk", 99);
      const r = await sendRaw({ port: env.d.smtpPort, from: refusedMail.from, to: [refusedMail.to], raw: refusedMail.raw });
      // 452 4.2.2 when the spool write hits ENOSPC; 451 when the spool file fit but the database could not commit.
      const reply = r.kind === "reply" ? `${r.stage}: ${r.code} ${r.text}` : `broken at ${r.stage}: ${r.error}`;
      console.log(`[fault] disk full: SMTP answered ${reply}`);
      expect(["end: 452 4.2.2 insufficient system storage", "end: 451 4.3.0 Local error in processing, try again later"]).toContain(reply);
      // Still alive and answering.
      const health = await fetch(`http://127.0.0.1:${env.d.httpPort}/healthz`);
      expect(health.status).toBe(200);

      rmSync(filler);
      await env.e.clearFaults();
      const after = mail("disk", 100);
      await send(env.d.smtpPort, after);
      await send(env.d.smtpPort, refusedMail); // the client retries the refused mail, as an MTA would
      await expectFaxedOnce(env, [...before, after, refusedMail], 60_000);
    }
  }, 120_000);
});

describe("disk floor", () => {
  it.skipIf(noMount !== undefined)(`below smtp.minFreeBytes new mail gets 452 4.3.1 at MAIL FROM, and is taken again once space is freed${noMount !== undefined ? ` (skipped: ${noMount})` : ""}`, async () => {
    const base = tempDir("faxbridge-tmpfs-");
    mountBase = base;
    const dataDir = join(base.path, "data");
    mkdirSync(dataDir);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", dataDir]);
    mounted = dataDir;
    const env = await setup({ dataDir, extra: { FAXBRIDGE_SMTP_MIN_FREE_BYTES: String(4 * 1024 * 1024) } });
    const first = mail("floor", 0);
    await send(env.d.smtpPort, first);
    // Leave about 2 MiB free: under the 4 MiB floor, yet room enough that nothing else fails.
    const filler = join(dataDir, "filler");
    const fd = openSync(filler, "w");
    try {
      const block = Buffer.alloc(64 * 1024, 1);
      for (let i = 0; i < 64; i++) writeSync(fd, block);
    } finally {
      closeSync(fd);
    }
    const refused = mail("floor", 1);
    const r = await sendRaw({ port: env.d.smtpPort, from: refused.from, to: [refused.to], raw: refused.raw });
    expect(r.kind === "reply" ? `${r.stage}: ${r.code} ${r.text}` : `broken at ${r.stage}: ${r.error}`).toBe("mail: 452 4.3.1 insufficient system storage, try again later");
    rmSync(filler);
    await send(env.d.smtpPort, refused);
    await expectFaxedOnce(env, [first, refused], 60_000);
  }, 120_000);
});

describe("the same mail twice (a client resending after a lost 250)", () => {
  it("two jobs with one Message-ID parsed at the same time still give one fax", async () => {
    const env = await setup();
    // Hold sends so both copies sit in the queue, then arrive together (as after a restart).
    const m = mail("dup", 0);
    const copies = await Promise.all(Array.from({ length: 4 }, () => sendRaw({ port: env.d.smtpPort, from: m.from, to: [m.to], raw: m.raw })));
    expect(copies.map((c) => (c.kind === "reply" ? c.code : c.error))).toEqual([250, 250, 250, 250]);
    await waitQuiescent(env.dbFile, 30_000);
    const c = await faxCounts(env.e);
    expect(c.get(m.hash) ?? 0).toBe(1);
  }, 60_000);
});
