import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import nodemailer from "nodemailer";

/**
 * Peak memory of the faxbridge process while it accepts and faxes ONE large
 * attachment end to end: SMTP in → spool → parse → preflight → multipart
 * upload to the RingCentral emulator → status polling → delivered → report.
 *
 * Three processes, so only faxbridge is measured: the emulator runs as
 * `faxbridge emulator`, the daemon as `faxbridge run` (real credentials-mode
 * config pointing RC_SERVER_URL at the emulator), and this process is the mail
 * client. Baseline: the daemon's VmRSS once idle after start-up; then its peak
 * counter is reset (/proc/<pid>/clear_refs = 5) and peak = VmHWM after the job
 * is notified. Without clear_refs (old kernels) the peak is the highest VmRSS
 * sampled every 20 ms. Linux only. Needs a build (`npm run build`).
 */

export interface BenchMemoryOptions {
  /** Size of the PDF attachment (default 45 MiB). */
  readonly attachmentBytes?: number;
  /** Give up after this long (default 180 s). */
  readonly timeoutMs?: number;
}

export interface BenchMemoryResult {
  attachmentBytes: number;
  baselineRssBytes: number;
  peakRssBytes: number;
  growthBytes: number;
}

interface LogLine {
  event?: string;
  [key: string]: unknown;
}

function cliPath(): string {
  const candidates = [new URL("../src/cli.js", import.meta.url), new URL("../dist/src/cli.js", import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new Error(`faxbridge is not built (looked for ${candidates.join(", ")}); run npm run build`);
  return found;
}

class Child {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  #waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(args: string[], env: Record<string, string>) {
    this.proc = spawn(process.execPath, [cliPath(), ...args], { env: { PATH: process.env["PATH"] ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => this.proc.once("exit", () => resolve()));
    if (this.proc.stdout) {
      createInterface({ input: this.proc.stdout }).on("line", (text) => {
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { raw: text };
        }
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.match(line)) return true;
          w.resolve(line);
          return false;
        });
      });
    }
    if (this.proc.stderr) createInterface({ input: this.proc.stderr }).on("line", (text) => this.stderr.push(text));
  }

  waitFor(match: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; stderr: ${this.stderr.slice(-5).join(" | ")}`)), timeoutMs);
      this.#waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`process exited while waiting for ${what}; stderr: ${this.stderr.slice(-5).join(" | ")}`));
      });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 15_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM). */
function procStatus(pid: number, field: "VmRSS" | "VmHWM"): number {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  if (!m?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** A PDF-looking stream of `size` bytes (a header, then 1 MiB of random bytes repeated). */
function pdfStream(size: number): Readable {
  const block = randomBytes(1024 * 1024);
  const head = Buffer.from("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "latin1");
  let sent = 0;
  return new Readable({
    read() {
      if (sent === 0) {
        this.push(head);
        sent = head.length;
        return;
      }
      const n = Math.min(block.length, size - sent);
      if (n <= 0) {
        this.push(null);
        return;
      }
      sent += n;
      this.push(n === block.length ? block : block.subarray(0, n));
    },
  });
}

export async function benchMemory(opts: BenchMemoryOptions = {}): Promise<BenchMemoryResult> {
  const attachmentBytes = opts.attachmentBytes ?? 45 * 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const dir = await mkdtemp(join(tmpdir(), "faxbridge-bench-memory-"));
  const children: Child[] = [];
  try {
    const emulator = new Child(["emulator", "--port", "0", "--queued-ms", "200", "--page-ms", "200"], { FAXBRIDGE_LOG_LEVEL: "info" });
    children.push(emulator);
    const ready = await emulator.waitFor((l) => l.event === "emulator.ready", 30_000, "the emulator");
    const url = String(ready["url"]);
    const mediaUrl = String(ready["mediaUrl"]);

    const daemon = new Child(["run"], {
      FAXBRIDGE_DATA_DIR: join(dir, "data"),
      FAXBRIDGE_SMTP_PORT: "0",
      FAXBRIDGE_HTTP_PORT: "0",
      FAXBRIDGE_EMULATOR_PORT: "0",
      FAXBRIDGE_LOG_LEVEL: "info",
      FAXBRIDGE_FAX_NUMBER_CHECK: "possible",
      FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "500ms",
      FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
      RC_SERVER_URL: url,
      RC_MEDIA_ORIGINS: mediaUrl,
      RC_CLIENT_ID: "bench-client",
      RC_CLIENT_SECRET: "bench-secret",
      RC_JWT: "bench-jwt",
    });
    children.push(daemon);
    const started = await daemon.waitFor((l) => l.event === "daemon.started", 30_000, "the daemon");
    const smtpPort = Number((started["smtp"] as { port?: unknown } | undefined)?.port);
    const pid = daemon.proc.pid;
    if (pid === undefined || !Number.isInteger(smtpPort)) throw new Error("daemon pid or SMTP port unknown");

    // Idle after start-up: let start-up garbage settle, then take the baseline.
    await sleep(2000);
    const baselineRssBytes = procStatus(pid, "VmRSS");
    let peakResettable = true;
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, "5");
    } catch {
      // Kernels before 4.0 (or restricted /proc): fall back to sampling VmRSS.
      peakResettable = false;
    }
    let sampled = baselineRssBytes;
    const sampler = setInterval(() => {
      try {
        sampled = Math.max(sampled, procStatus(pid, "VmRSS"));
      } catch {
        // the daemon is exiting; the last sample stands
        clearInterval(sampler);
      }
    }, 20);

    try {
      const transport = nodemailer.createTransport({ host: "127.0.0.1", port: smtpPort, secure: false, ignoreTLS: true });
      const info = (await transport.sendMail({
        from: "bench@example.com",
        to: "15551234567@fax.local",
        subject: "memory bench",
        text: "one large document",
        attachments: [{ filename: "large.pdf", content: pdfStream(attachmentBytes), contentType: "application/pdf" }],
      })) as { response: string };
      transport.close();
      const queueId = /Queued as (\S+)/.exec(info.response)?.[1];
      if (queueId === undefined) throw new Error(`no queue id in ${info.response}`);
      const done = await daemon.waitFor(
        (l) => l["queueId"] === queueId && (l.event === "job.notified" || l.event === "job.failed"),
        timeoutMs,
        "the fax to be notified",
      );
      if (done.event === "job.failed") throw new Error(`the fax failed: ${JSON.stringify(done)}`);
    } finally {
      clearInterval(sampler);
    }
    const peakRssBytes = peakResettable ? Math.max(procStatus(pid, "VmHWM"), sampled) : sampled;
    return { attachmentBytes, baselineRssBytes, peakRssBytes, growthBytes: peakRssBytes - baselineRssBytes };
  } finally {
    for (const c of children.reverse()) await c.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
