import { type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import { startDaemon, stopDaemon } from "./pool.js";
import { buildWireMessage, ID_DIGITS, ReplyReader, type WireMessage } from "./smtp-load-client.js";
import { runSmtpLoad } from "./smtp-load.js";

/**
 * Issue 15: the whole daemon (`faxbridge run`, intake and pipeline process)
 * against the emulator, with the pipeline sending while mail arrives:
 *
 * - idle: one mail at a time on an idle daemon: end of DATA → 250, and 250 →
 *   the fax POST reaching the emulator (its receivedAt), medians;
 * - burst: `rounds` × `messages` mails of `messageBytes` over `connections`
 *   reused connections (the load generator of ./smtp-load-client.ts, in the
 *   role of Postfix's smtp-source), with the peak RSS of both processes;
 * - sustained: `sustainedSeconds` of mail at half the burst rate, paced over
 *   the same connections: 250 latency p50/p99, and faxes sent per Heavy
 *   window against the emulator's Heavy limit (the pipeline is not starved).
 *
 * Postfix is not used: where `smtp-source` and a local Postfix exist they
 * could be alternated with the burst; this run says which generator it used.
 */

export interface BenchDaemonOptions {
  readonly rounds?: number;
  readonly messages?: number;
  readonly connections?: number;
  readonly messageBytes?: number;
  readonly sustainedSeconds?: number;
  readonly idleMails?: number;
  readonly heavyLimit?: number;
  readonly windowSeconds?: number;
  readonly cli?: string;
}

interface SentFax {
  receivedAt: string;
}

const FROM = "bench@example.com";
const TO = "+12025550143@fax.local";

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return round2(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Peak RSS (VmHWM) of a process, bytes; 0 where /proc is not there. */
function peakRss(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** One SMTP connection that sends a mail at a time and times end of DATA → 250. */
class TimedSession {
  readonly #socket: ReturnType<typeof connect>;
  readonly #replies: ReplyReader;
  readonly #msg: WireMessage;
  #seq: number;

  private constructor(socket: ReturnType<typeof connect>, msg: WireMessage, seq: number) {
    this.#socket = socket;
    socket.setNoDelay(true);
    this.#replies = new ReplyReader(socket);
    this.#msg = msg;
    this.#seq = seq;
  }

  static async open(port: number, msg: WireMessage, seq: number): Promise<TimedSession> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const s = new TimedSession(socket, msg, seq);
    await s.#replies.expect(220, "greeting");
    socket.write("EHLO bench.faxbridge.invalid\r\n");
    await s.#replies.expect(250, "EHLO");
    return s;
  }

  /** Milliseconds from the last byte of DATA written to the 250. */
  async send(): Promise<number> {
    const s = this.#socket;
    const r = this.#replies;
    s.write(`MAIL FROM:<${FROM}>\r\nRCPT TO:<${TO}>\r\nDATA\r\n`);
    await r.expect(250, "MAIL FROM");
    await r.expect(250, "RCPT TO");
    await r.expect(354, "DATA");
    const id = String(this.#seq++).padStart(ID_DIGITS, "0");
    s.write(this.#msg.head);
    s.write(id);
    const written = new Promise<number>((resolve) => s.write(this.#msg.tail, () => resolve(performance.now())));
    const reply = r.expect(250, "end of DATA");
    const t0 = await written;
    await reply;
    return performance.now() - t0;
  }

  close(): void {
    this.#socket.end("QUIT\r\n");
  }
}

async function sentFaxes(emu: Emulator): Promise<SentFax[]> {
  return (await (await fetch(`${emu.url}/emulator/sent-faxes`)).json()) as SentFax[];
}

export async function benchDaemon(opts: BenchDaemonOptions = {}): Promise<Record<string, unknown>> {
  const rounds = opts.rounds ?? 5;
  const messages = opts.messages ?? 600;
  const connections = opts.connections ?? 8;
  const messageBytes = opts.messageBytes ?? 100_000;
  const sustainedSeconds = opts.sustainedSeconds ?? 300;
  const idleMails = opts.idleMails ?? 20;
  const heavyLimit = opts.heavyLimit ?? 10;
  const windowSeconds = opts.windowSeconds ?? 60;
  const cli = opts.cli ?? join(import.meta.dirname, "..", "src", "cli.js");
  const dir = await mkdtemp(join(tmpdir(), "faxbridge-bench-daemon-"));
  const emu = await startEmulator({ limits: { Heavy: heavyLimit, Light: 100_000, Medium: 100_000 }, windowSeconds, penaltySeconds: windowSeconds, faxTimings: { queuedMs: 50, pageMs: 50 } });
  let daemon: ChildProcess | undefined;
  try {
    const started = await startDaemon(
      cli,
      {
        RC_SERVER_URL: emu.url,
        RC_MEDIA_ORIGINS: emu.mediaUrl,
        RC_CLIENT_ID: "bench",
        RC_CLIENT_SECRET: "bench-secret",
        RC_JWT: "bench-jwt",
        RC_RATE_LIMITS_HEAVY: String(heavyLimit),
        RC_RATE_LIMITS_LIGHT: "100000",
        RC_RATE_LIMITS_MEDIUM: "100000",
        RC_RATE_LIMITS_WINDOW_SECONDS: String(windowSeconds),
        FAXBRIDGE_DATA_DIR: join(dir, "data"),
        FAXBRIDGE_SMTP_PORT: "0",
        FAXBRIDGE_HTTP_PORT: "0",
        FAXBRIDGE_SMTP_MAX_CONNECTIONS: String(connections * 4),
        FAXBRIDGE_FAX_NUMBER_CHECK: "possible",
        FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "5s",
        FAXBRIDGE_FAX_DUPLICATE_WINDOW_SECONDS: "0",
        FAXBRIDGE_POLICY_QUOTAS_PER_SENDER_PER_HOUR: "0",
        FAXBRIDGE_POLICY_QUOTAS_GLOBAL_PER_HOUR: "0",
        FAXBRIDGE_POLICY_QUOTAS_PER_CLIENT_IP_PER_HOUR: "0",
        FAXBRIDGE_POLICY_QUOTAS_PAGES_PER_SENDER_PER_HOUR: "0",
        FAXBRIDGE_POLICY_QUOTAS_PAGES_GLOBAL_PER_HOUR: "0",
        FAXBRIDGE_MAIL_URL: "",
        FAXBRIDGE_LOG_LEVEL: "info",
      },
      dir,
    );
    daemon = started.child;
    const port = started.smtpPort;
    const msg = buildWireMessage(messageBytes, FROM, TO);
    let seq = 1_000_000;

    // Idle: one mail at a time; wait for its fax POST before the next.
    const dataTo250: number[] = [];
    const toPost: number[] = [];
    const idle = await TimedSession.open(port, msg, (seq += 100_000));
    for (let i = 0; i < idleMails; i++) {
      // Idle means the Heavy pacer too: let one send interval pass between mails.
      await new Promise((r) => setTimeout(r, (windowSeconds * 1000) / heavyLimit + 50));
      const before = (await sentFaxes(emu)).length;
      const ms = await idle.send();
      const acceptedAt = Date.now();
      dataTo250.push(ms);
      const deadline = Date.now() + 30_000;
      for (;;) {
        const sent = await sentFaxes(emu);
        if (sent.length > before) {
          toPost.push(Date.parse(sent[sent.length - 1]!.receivedAt) - acceptedAt);
          break;
        }
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    idle.close();
    dataTo250.sort((a, b) => a - b);
    toPost.sort((a, b) => a - b);

    // Burst: the load generator, `rounds` times.
    const burst: number[] = [];
    for (let i = 0; i < rounds; i++) burst.push((await runSmtpLoad({ port, connections, messages, messageBytes, mailFrom: FROM, rcptTo: TO })).messagesPerSecond);
    const pids = [daemon.pid, ...childrenOf(daemon.pid)];
    const rss = pids.map(peakRss);
    const burstRate = [...burst].sort((a, b) => a - b)[Math.floor(burst.length / 2)] ?? 0;

    // Sustained: half the burst rate, paced over the connections, while the pipeline sends.
    const rate = Math.max(1, burstRate / 2);
    const sentBefore = (await sentFaxes(emu)).length;
    const latencies: number[] = [];
    const sessions = await Promise.all(Array.from({ length: connections }, (_, i) => TimedSession.open(port, msg, (seq += 1_000_000) + i)));
    const startedAt = performance.now();
    const endAt = startedAt + sustainedSeconds * 1000;
    let next = 0;
    await Promise.all(
      sessions.map(async (s) => {
        for (;;) {
          const slot = startedAt + (next++ * 1000) / rate;
          if (slot >= endAt) break;
          const wait = slot - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          latencies.push(await s.send());
        }
        s.close();
      }),
    );
    const elapsed = (performance.now() - startedAt) / 1000;
    const sentDuring = (await sentFaxes(emu)).length - sentBefore;
    latencies.sort((a, b) => a - b);
    return {
      generator: "own raw-socket load generator (bench/smtp-load-client.ts; Postfix smtp-source not used)",
      idle: { mails: idleMails, dataTo250MedianMs: percentile(dataTo250, 50), acceptedToFaxPostMedianMs: percentile(toPost, 50), targets: "dataTo250MedianMs < 5, acceptedToFaxPostMedianMs < 25" },
      burst: { rounds, messages, connections, messageBytes, messagesPerSecond: burst, medianMessagesPerSecond: burstRate },
      peakRss: { intakeBytes: rss[0] ?? 0, pipelineBytes: rss.slice(1).reduce((a, b) => a + b, 0), totalBytes: rss.reduce((a, b) => a + b, 0) },
      sustained: {
        seconds: round2(elapsed),
        offeredPerSecond: round2(rate),
        accepted: latencies.length,
        latencyP50Ms: percentile(latencies, 50),
        latencyP99Ms: percentile(latencies, 99),
        faxesSent: sentDuring,
        heavyLimitFaxes: Math.floor((elapsed / windowSeconds) * heavyLimit),
        targets: "latencyP99Ms < 50; faxesSent ≈ heavyLimitFaxes (the pipeline keeps up with the Heavy limit)",
      },
    };
  } finally {
    if (daemon !== undefined) await stopDaemon(daemon);
    await emu.close();
    await rm(dir, { recursive: true, force: true });
  }
}
