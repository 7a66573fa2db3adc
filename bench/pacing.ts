import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import nodemailer from "nodemailer";
import { Agent, request } from "undici";
import { configSchema } from "../src/config/schema.js";
import { startEmulator } from "../src/emulator/index.js";
import { silentLogger, type Logger } from "../src/log.js";
import { createMailSender } from "../src/mail/transport.js";
import { Metrics } from "../src/metrics.js";
import { OutboundWorker } from "../src/outbound/worker.js";
import { RingCentralClient } from "../src/rc/client.js";
import { createSmtpServer } from "../src/smtp/server.js";
import { Spool } from "../src/spool/spool.js";
import { openStores } from "../src/store/open.js";

/**
 * Send pacing under the Heavy rate limit: N mails are enqueued at once
 * through SMTP, the outbound worker drains them through the real
 * RingCentralClient into the emulator (configured with a short window so the
 * bench takes seconds, not minutes), and we read from the emulator when each
 * fax was accepted and how many 429s it answered.
 *
 * achievedPerWindow: a sliding-window limit lets `heavyLimit` faxes through
 * at once and then `heavyLimit` per window, so the rate is measured after the
 * first burst: (faxes − heavyLimit) ÷ (windows between the first and the last
 * accepted fax). ratio = achievedPerWindow ÷ heavyLimit (1.0 = the limit).
 */

export interface BenchPacingOptions {
  /** Mails enqueued at once (default 40). */
  readonly faxes?: number;
  /** Heavy requests per window, on both sides (default 10). */
  readonly heavyLimit?: number;
  /** The rate-limit window, seconds (default 6). */
  readonly windowSeconds?: number;
  readonly logger?: Logger;
  /** OutboundWorker sendConcurrency (default: the worker's default). */
  readonly sendConcurrency?: number;
}

export interface BenchPacingResult {
  heavyLimit: number;
  windowSeconds: number;
  faxes: number;
  elapsedSeconds: number;
  achievedPerWindow: number;
  ratio: number;
  http429: number;
}

interface SentFax {
  receivedAt: string;
}

interface Calls {
  byStatus: Record<string, number>;
}

function tinyPdf(i: number): Buffer {
  return Buffer.from(
    `%PDF-1.4\n% ${i} ${randomBytes(8).toString("hex")}\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n`,
    "latin1",
  );
}

export async function benchPacing(opts: BenchPacingOptions = {}): Promise<BenchPacingResult> {
  const faxes = opts.faxes ?? 40;
  const heavyLimit = opts.heavyLimit ?? 10;
  const windowSeconds = opts.windowSeconds ?? 6;
  const logger = opts.logger ?? silentLogger();
  const dir = await mkdtemp(join(tmpdir(), "faxbridge-bench-pacing-"));
  const agent = new Agent({ keepAliveTimeout: 10 });
  const emu = await startEmulator({
    limits: { Heavy: heavyLimit },
    windowSeconds,
    penaltySeconds: windowSeconds,
    faxTimings: { queuedMs: 200, pageMs: 200 },
  });
  const config = configSchema.parse({
    dataDir: dir,
    smtp: { host: "127.0.0.1", port: 0 },
    ringcentral: { serverUrl: emu.url, clientId: "bench", jwt: "bench", rateLimits: { heavy: heavyLimit, windowSeconds } },
    fax: { numberCheck: "possible", retrySchedule: "1s,2s,5s*10", statusPollSchedule: "3s" },
    mail: { url: "" },
  });
  const stores = await openStores({ dataDir: dir }, logger, { role: "daemon" });
  const store = stores.outbound;
  const spool = new Spool({ documents: stores.documents, logger });
  const client = new RingCentralClient({
    serverUrl: emu.url,
    clientId: "bench",
    clientSecret: "",
    jwt: "bench",
    logger,
    rateLimits: config.ringcentral.rateLimits,
    dispatcher: agent,
  });
  const mail = createMailSender("", join(dir, "mailbox"), logger);
  const worker = new OutboundWorker({ config, store, quota: stores.quota, spool, client, mail, metrics: new Metrics({ defaultMetrics: false }), logger, tuning: { idlePollMs: 50, ...(opts.sendConcurrency !== undefined && { sendConcurrency: opts.sendConcurrency }) } });
  const smtp = createSmtpServer({ config, spool, store, logger, numberCheck: "possible", onAccepted: () => worker.wake() });
  let transport: ReturnType<typeof nodemailer.createTransport> | undefined;
  try {
    const { port } = await smtp.listen();
    transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true, pool: true, maxConnections: 8 });
    const smtpClient = transport;
    await worker.start();
    await Promise.all(
      Array.from({ length: faxes }, (_, i) =>
        smtpClient.sendMail({
          from: "bench@example.com",
          to: `1555200${String(i).padStart(4, "0")}@fax.local`,
          subject: `pacing ${i}`,
          text: "bench",
          attachments: [{ filename: `doc-${i}.pdf`, content: tinyPdf(i), contentType: "application/pdf" }],
        }),
      ),
    );

    const control = async <T>(path: string): Promise<T> => {
      const res = await request(emu.url + path, { dispatcher: agent });
      return (await res.body.json()) as T;
    };
    const deadline = Date.now() + (Math.ceil(faxes / heavyLimit) + 2) * windowSeconds * 1500 + 30_000;
    let sent: SentFax[] = [];
    for (;;) {
      sent = await control<SentFax[]>("/emulator/sent-faxes");
      if (sent.length >= faxes) break;
      if (Date.now() > deadline) throw new Error(`only ${sent.length} of ${faxes} faxes were sent before the deadline`);
      await sleep(100);
    }
    const calls = await control<Calls>("/emulator/calls");
    const times = sent.map((f) => Date.parse(f.receivedAt)).sort((a, b) => a - b);
    const elapsedSeconds = ((times.at(-1) ?? 0) - (times[0] ?? 0)) / 1000;
    const windows = elapsedSeconds / windowSeconds;
    const achievedPerWindow = faxes <= heavyLimit || windows === 0 ? faxes : (faxes - heavyLimit) / windows;
    return {
      heavyLimit,
      windowSeconds,
      faxes,
      elapsedSeconds: Math.round(elapsedSeconds * 1000) / 1000,
      achievedPerWindow: Math.round(achievedPerWindow * 100) / 100,
      ratio: Math.round((achievedPerWindow / heavyLimit) * 1000) / 1000,
      http429: calls.byStatus["429"] ?? 0,
    };
  } finally {
    transport?.close();
    await smtp.close(1000);
    await worker.stop();
    mail.close();
    await client.close();
    await emu.close();
    await stores.close();
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  }
}
