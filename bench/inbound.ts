/**
 * Inbound latency: time from `POST /emulator/inbound-faxes` (a fax arrives at
 * RingCentral) to the mail server's 250 for its mail, over N faxes sent one
 * after another, for the webhook path and for the periodic-sync-only path;
 * plus RingCentral calls per delivered fax on the webhook path (from the
 * emulator's /emulator/calls).
 *
 * Everything runs for real on loopback: emulator, RingCentral client,
 * HttpServer for the webhook, SQLite store, nodemailer to a small SMTP server
 * here. Rate limits are raised in both the emulator and the client so the
 * figure is latency, not RingCentral's per-minute budget (the client paces
 * under real limits; see test/inbound for behaviour).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { SMTPServer } from "smtp-server";
import { configSchema } from "../src/config/schema.js";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import { HttpServer } from "../src/http/server.js";
import { InboundService } from "../src/inbound/service.js";
import { silentLogger } from "../src/log.js";
import { createMailSender } from "../src/mail/transport.js";
import { Metrics } from "../src/metrics.js";
import { RingCentralClient } from "../src/rc/client.js";
import { openStores } from "../src/store/open.js";

export interface LatencyFigures {
  p50Ms: number;
  p95Ms: number;
}

export interface InboundBenchResult {
  webhook: LatencyFigures & { maxMs: number };
  syncOnly: LatencyFigures & { maxMs: number; syncIntervalMs: number };
  rcCallsPerFax: number;
  rcCallsByRoute: Record<string, number>;
  faxes: number;
  pdfBytes: number;
}

const RAISED = { light: 1_000_000, medium: 1_000_000, heavy: 1_000_000, auth: 1_000_000, windowSeconds: 60 };

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round((sorted[i] as number) * 10) / 10;
}

function figures(samples: readonly number[]): LatencyFigures & { maxMs: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50Ms: percentile(s, 50), p95Ms: percentile(s, 95), maxMs: percentile(s, 100) };
}

function pdf(bytes: number): Buffer {
  return Buffer.concat([
    Buffer.from("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R >> endobj\n% "),
    Buffer.from(randomBytes(Math.ceil(bytes * 0.75)).toString("base64").slice(0, bytes)),
    Buffer.from("\n%%EOF\n"),
  ]);
}

/** An SMTP server that notes when it answered 250 for each fax (by X-Faxbridge-Message-Id). */
class TimingSink {
  readonly acceptedAt = new Map<string, number>();
  readonly waiters = new Map<string, () => void>();
  #server: SMTPServer | undefined;
  port = 0;

  async start(): Promise<void> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      disableReverseLookup: true,
      logger: false,
      size: 100 * 1024 * 1024,
      onData: (stream, _session, callback) => {
        let head = "";
        stream.on("data", (c: Buffer) => {
          if (head.length < 64 * 1024) head += c.toString("latin1");
        });
        stream.on("end", () => {
          const m = /^x-faxbridge-message-id:\s*(\S+)/im.exec(head);
          callback(null, "Ok: queued");
          const id = m?.[1];
          if (id === undefined) return;
          this.acceptedAt.set(id, performance.now());
          this.waiters.get(id)?.();
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    server.removeAllListeners("error");
    // Client connection errors are re-emitted on the server; they must not end the bench.
    server.on("error", () => undefined);
    this.port = (server.server.address() as AddressInfo).port;
    this.#server = server;
  }

  wait(id: string, timeoutMs: number): Promise<number> {
    const at = this.acceptedAt.get(id);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`fax ${id} not mailed within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, () => {
        clearTimeout(timer);
        this.waiters.delete(id);
        resolve(this.acceptedAt.get(id) ?? performance.now());
      });
    });
  }

  async close(): Promise<void> {
    const s = this.#server;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

async function inject(emulator: Emulator, body: Buffer): Promise<{ id: string; startedAt: number }> {
  const startedAt = performance.now();
  const res = await fetch(`${emulator.url}/emulator/inbound-faxes?from=%2B15551234567&to=%2B16505550100`, {
    method: "POST",
    headers: { "content-type": "application/pdf" },
    body,
  });
  if (res.status !== 200) throw new Error(`inject: HTTP ${res.status}`);
  const msg = (await res.json()) as { id: number | string };
  return { id: String(msg.id), startedAt };
}

async function runPath(opts: {
  faxes: number;
  pdfBytes: number;
  mode: "webhook" | "none";
  syncIntervalMs: number;
}): Promise<{ samples: number[]; calls: { total: number; byRoute: Record<string, number> } }> {
  const dir = await mkdtemp(join(tmpdir(), "faxbridge-bench-inbound-"));
  const log = silentLogger();
  const metrics = new Metrics({ defaultMetrics: false });
  const emulator = await startEmulator({ limits: { Light: RAISED.light, Medium: RAISED.medium, Heavy: RAISED.heavy, Auth: RAISED.auth } });
  const sink = new TimingSink();
  await sink.start();
  const http = new HttpServer({ host: "127.0.0.1", port: 0, logger: log, metrics });
  const addr = await http.listen();
  const config = configSchema.parse({
    dataDir: dir,
    ringcentral: { serverUrl: emulator.url, clientId: "bench", clientSecret: "bench", jwt: "bench", rateLimits: RAISED },
    mail: { url: `smtp://127.0.0.1:${sink.port}`, from: "faxbridge <faxbridge@example.test>" },
    inbound: {
      notifications: opts.mode,
      webhookUrl: opts.mode === "webhook" ? `http://127.0.0.1:${addr.port}/webhook/ringcentral` : "",
      verificationToken: "bench-token",
      syncIntervalSeconds: 3600,
    },
  });
  const stores = await openStores({ dataDir: dir }, log, { role: "daemon" });
  const store = stores.inbound;
  const client = new RingCentralClient({ serverUrl: emulator.url, clientId: "bench", clientSecret: "bench", jwt: "bench", logger: log, rateLimits: RAISED, mediaOrigins: [emulator.mediaUrl] });
  const mail = createMailSender(config.mail.url, join(dir, "mailbox"), log);
  const service = new InboundService({
    config,
    client,
    store,
    mail,
    http,
    metrics,
    logger: log,
    tuning: { syncIntervalMs: opts.mode === "none" ? opts.syncIntervalMs : 3_600_000, syncMinGapMs: 0 },
  });
  try {
    await service.start();
    await service.syncNow();
    // warm-up: connections, first download, first mail
    const warm = await inject(emulator, pdf(opts.pdfBytes));
    if (opts.mode === "webhook") await sink.wait(warm.id, 10_000);
    else await sink.wait(warm.id, 10_000 + opts.syncIntervalMs);
    await fetch(`${emulator.url}/emulator/calls/reset`, { method: "POST" });
    const samples: number[] = [];
    for (let i = 0; i < opts.faxes; i++) {
      const body = pdf(opts.pdfBytes);
      const { id, startedAt } = await inject(emulator, body);
      const at = await sink.wait(id, 10_000 + opts.syncIntervalMs);
      samples.push(at - startedAt);
    }
    const calls = (await (await fetch(`${emulator.url}/emulator/calls`)).json()) as { total: number; byRoute: Record<string, number> };
    return { samples, calls };
  } finally {
    await service.stop();
    await client.close();
    mail.close();
    await http.close();
    await sink.close();
    await emulator.close();
    await stores.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchInbound(opts: { faxes: number; pdfBytes?: number; syncIntervalMs?: number }): Promise<InboundBenchResult> {
  const faxes = opts.faxes > 0 ? opts.faxes : 200;
  const pdfBytes = opts.pdfBytes ?? 60_000;
  const syncIntervalMs = opts.syncIntervalMs ?? 250;
  const webhook = await runPath({ faxes, pdfBytes, mode: "webhook", syncIntervalMs });
  const syncOnly = await runPath({ faxes, pdfBytes, mode: "none", syncIntervalMs });
  return {
    webhook: figures(webhook.samples),
    syncOnly: { ...figures(syncOnly.samples), syncIntervalMs },
    rcCallsPerFax: Math.round((webhook.calls.total / faxes) * 100) / 100,
    rcCallsByRoute: webhook.calls.byRoute,
    faxes,
    pdfBytes,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? "200");
  benchInbound({ faxes: Number.isInteger(n) && n > 0 ? n : 200 }).then(
    (r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`),
    (err: unknown) => {
      process.stderr.write(`bench inbound: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
