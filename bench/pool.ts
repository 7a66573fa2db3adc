import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import nodemailer from "nodemailer";
import { startEmulator, type Emulator } from "../src/emulator/index.js";

/**
 * Send throughput of an extension pool: for k = 1, 2, 4 the real daemon
 * (`faxbridge run`, a child process) is started with `RC_JWT` holding k JWTs
 * against one emulator whose Heavy limit is `heavyLimit` per window for each
 * extension (each JWT logs in as its own extension with its own buckets), N
 * mails are handed to its SMTP listener at once, and we read from the
 * emulator when each fax was accepted, by which extension, and how many
 * 429s it answered.
 *
 * The ideal is k × heavyLimit faxes per window. As in the pacing bench, a
 * sliding window lets the first k × heavyLimit through at once, so the rate
 * is measured after that burst: achievedPerWindow = (faxes − k × heavyLimit)
 * ÷ (windows between the first and the last accepted fax), ratio =
 * achievedPerWindow ÷ (k × heavyLimit).
 *
 * k > 1 uses the extension pool (src/rc/pool.ts: `RC_JWT` with several JWTs
 * separated by commas). A daemon without it would log in with the whole list
 * as one JWT, i.e. as one extension; `extensionsUsed` then says so and `note`
 * says why the ratio is about 1/k.
 */

export interface BenchPoolOptions {
  /** Pool sizes to measure (default 1, 2, 4). */
  readonly sizes?: readonly number[];
  /** Heavy requests per window per extension (default 10). */
  readonly heavyLimit?: number;
  /** Rate-limit window, seconds (default 6). */
  readonly windowSeconds?: number;
  /** Windows' worth of faxes per run after the first burst (default 3): faxes = k × heavyLimit × (1 + windows). */
  readonly windows?: number;
  /** The compiled CLI (default dist/src/cli.js beside this file's dist/bench). */
  readonly cli?: string;
}

export interface BenchPoolRun {
  extensions: number;
  heavyLimit: number;
  windowSeconds: number;
  faxes: number;
  elapsedSeconds: number;
  achievedPerWindow: number;
  idealPerWindow: number;
  ratio: number;
  /** Every 429 the emulator answered (all groups), and those of fax sends. */
  http429: number;
  heavy429: number;
  /** Extensions that sent at least one fax, and how many each sent. */
  extensionsUsed: number;
  perExtension: Record<string, number>;
  note?: string;
}

interface SentFax {
  receivedAt: string;
  extensionId: string;
}

interface Calls {
  byStatus: Record<string, number>;
  byRouteStatus: Record<string, Record<string, number>>;
}

const FAX_ROUTE = "POST /restapi/v1.0/account/{accountId}/extension/{extensionId}/fax";

function tinyPdf(i: number): Buffer {
  return Buffer.from(
    `%PDF-1.4\n% ${i} ${randomBytes(8).toString("hex")}\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n`,
    "latin1",
  );
}

/** The daemon as a child process; resolves with its SMTP port once it logged `daemon.started`. */
export async function startDaemon(cli: string, env: Record<string, string>, cwd: string): Promise<{ child: ChildProcess; smtpPort: number; tail: string[] }> {
  const child = spawn(process.execPath, [cli, "run"], { env: { PATH: process.env["PATH"] ?? "", ...env }, cwd, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  createInterface({ input: child.stderr! }).on("line", keep);
  const smtpPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start within 60 s:\n${tail.join("\n")}`)), 60_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code ?? signal}) before starting:\n${tail.join("\n")}`));
    });
    createInterface({ input: child.stdout! }).on("line", (text) => {
      keep(text);
      try {
        const line = JSON.parse(text) as { event?: string; smtp?: { port?: number } };
        if (line.event === "daemon.started" && typeof line.smtp?.port === "number") {
          clearTimeout(timer);
          resolve(line.smtp.port);
        }
      } catch {
        // not a log line
      }
    });
  });
  return { child, smtpPort, tail };
}

export async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

async function control<T>(emu: Emulator, path: string): Promise<T> {
  const res = await fetch(emu.url + path);
  return (await res.json()) as T;
}

async function runOnce(k: number, heavyLimit: number, windowSeconds: number, windows: number, cli: string): Promise<BenchPoolRun> {
  const faxes = k * heavyLimit * (1 + windows);
  const dir = await mkdtemp(join(tmpdir(), "faxbridge-bench-pool-"));
  // Light and Medium are generous: the status polls of k × limit faxes must not be what is measured.
  const emu = await startEmulator({ limits: { Heavy: heavyLimit, Light: 1000, Medium: 1000 }, windowSeconds, penaltySeconds: windowSeconds, faxTimings: { queuedMs: 200, pageMs: 200 } });
  let daemon: ChildProcess | undefined;
  let transport: ReturnType<typeof nodemailer.createTransport> | undefined;
  try {
    const jwts = Array.from({ length: k }, (_, i) => `bench-pool-jwt-${i + 1}`);
    const started = await startDaemon(cli, {
      RC_SERVER_URL: emu.url,
      RC_MEDIA_ORIGINS: emu.mediaUrl,
      RC_CLIENT_ID: "bench-pool",
      RC_CLIENT_SECRET: "bench-pool-secret",
      RC_JWT: jwts.join(","),
      RC_RATE_LIMITS_HEAVY: String(heavyLimit),
      RC_RATE_LIMITS_LIGHT: "1000",
      RC_RATE_LIMITS_MEDIUM: "1000",
      RC_RATE_LIMITS_WINDOW_SECONDS: String(windowSeconds),
      FAXBRIDGE_DATA_DIR: join(dir, "data"),
      FAXBRIDGE_SMTP_PORT: "0",
      FAXBRIDGE_HTTP_PORT: "0",
      FAXBRIDGE_FAX_NUMBER_CHECK: "possible",
      // A k = 4 run sends 160 faxes from one sender: the hourly quotas (100 per sender by default) are not what is measured.
      FAXBRIDGE_POLICY_QUOTAS_PER_SENDER_PER_HOUR: "0",
      FAXBRIDGE_POLICY_QUOTAS_GLOBAL_PER_HOUR: "0",
      FAXBRIDGE_POLICY_QUOTAS_PER_CLIENT_IP_PER_HOUR: "0",
      FAXBRIDGE_POLICY_QUOTAS_PAGES_PER_SENDER_PER_HOUR: "0",
      FAXBRIDGE_POLICY_QUOTAS_PAGES_GLOBAL_PER_HOUR: "0",
      FAXBRIDGE_FAX_RETRY_SCHEDULE: "1s,2s,5s*10",
      FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "3s",
      FAXBRIDGE_MAIL_URL: "",
      FAXBRIDGE_LOG_LEVEL: "info",
    }, dir);
    daemon = started.child;
    transport = nodemailer.createTransport({ host: "127.0.0.1", port: started.smtpPort, secure: false, ignoreTLS: true, pool: true, maxConnections: 8 });
    const smtp = transport;
    await Promise.all(
      Array.from({ length: faxes }, (_, i) =>
        smtp.sendMail({
          from: "bench@example.com",
          to: `1555300${String(i).padStart(4, "0")}@fax.local`,
          subject: `pool ${k} #${i}`,
          text: "bench",
          attachments: [{ filename: `doc-${i}.pdf`, content: tinyPdf(i), contentType: "application/pdf" }],
        }),
      ),
    );
    // With one extension doing the work of k, the run takes about k times longer: allow for it.
    const deadline = Date.now() + (windows + 2) * k * windowSeconds * 1500 + 60_000;
    let sent: SentFax[] = [];
    for (;;) {
      sent = await control<SentFax[]>(emu, "/emulator/sent-faxes");
      if (sent.length >= faxes) break;
      if (Date.now() > deadline) throw new Error(`k=${k}: only ${sent.length} of ${faxes} faxes were sent before the deadline; daemon:\n${started.tail.join("\n")}`);
      await sleep(100);
    }
    const calls = await control<Calls>(emu, "/emulator/calls");
    const times = sent.map((f) => Date.parse(f.receivedAt)).sort((a, b) => a - b);
    const elapsedSeconds = ((times.at(-1) ?? 0) - (times[0] ?? 0)) / 1000;
    const ideal = k * heavyLimit;
    const spans = elapsedSeconds / windowSeconds;
    const achievedPerWindow = faxes <= ideal || spans === 0 ? faxes : (faxes - ideal) / spans;
    const perExtension: Record<string, number> = {};
    for (const f of sent) perExtension[f.extensionId] = (perExtension[f.extensionId] ?? 0) + 1;
    const extensionsUsed = Object.keys(perExtension).length;
    const run: BenchPoolRun = {
      extensions: k,
      heavyLimit,
      windowSeconds,
      faxes,
      elapsedSeconds: Math.round(elapsedSeconds * 1000) / 1000,
      achievedPerWindow: Math.round(achievedPerWindow * 100) / 100,
      idealPerWindow: ideal,
      ratio: Math.round((achievedPerWindow / ideal) * 1000) / 1000,
      http429: calls.byStatus["429"] ?? 0,
      heavy429: calls.byRouteStatus[FAX_ROUTE]?.["429"] ?? 0,
      extensionsUsed,
      perExtension,
    };
    if (extensionsUsed < k) {
      run.note = `the daemon sent through ${extensionsUsed} of ${k} extensions: RC_JWT with several comma-separated JWTs needs the extension pool (issue #11)`;
    }
    return run;
  } finally {
    transport?.close();
    if (daemon !== undefined) await stopDaemon(daemon);
    await emu.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchPool(opts: BenchPoolOptions = {}): Promise<{ runs: BenchPoolRun[] }> {
  const sizes = opts.sizes ?? [1, 2, 4];
  const heavyLimit = opts.heavyLimit ?? 10;
  const windowSeconds = opts.windowSeconds ?? 6;
  const windows = opts.windows ?? 3;
  const cli = opts.cli ?? join(import.meta.dirname, "..", "src", "cli.js");
  const runs: BenchPoolRun[] = [];
  for (const k of sizes) runs.push(await runOnce(k, heavyLimit, windowSeconds, windows, cli));
  return { runs };
}
