/**
 * Everything an inbound integration test needs, all real on loopback: the
 * RingCentral emulator, the real client, an SmtpSink as the mail server, the
 * HttpServer (port 0) for webhooks, a SQLite store in a temp dir.
 */
import { createHash, randomBytes } from "node:crypto";
import type { z } from "zod";
import { configSchema, type Config } from "../../src/config/schema.js";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import { HttpServer } from "../../src/http/server.js";
import { InboundService, type InboundTuning } from "../../src/inbound/service.js";
import { type Logger } from "../../src/log.js";
import { createMailSender, type MailSender } from "../../src/mail/transport.js";
import { Metrics } from "../../src/metrics.js";
import { RingCentralClient } from "../../src/rc/client.js";
import type { InboundStore } from "../../src/store/ports.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";
import { SmtpSink, type SinkMessage } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { capturingLogger, type LogLine } from "../helpers/log.js";

type ConfigInput = z.input<typeof configSchema>;
export type InboundConfigInput = NonNullable<ConfigInput["inbound"]>;

export type { LogLine };

export interface HarnessOptions {
  inbound?: InboundConfigInput;
  emulator?: EmulatorOptions;
  /** Extra config sections, merged over the defaults. */
  config?: Partial<ConfigInput>;
  /** Start the mail server (default true). */
  sink?: boolean;
  /** Webhook notifications to our HttpServer's /webhook/ringcentral. */
  webhook?: boolean;
}

/** A minimal PDF with `pages` page objects and random content, so every fax is distinct. */
export function makePdf(pages = 1, padding = 2048): Buffer {
  const kids = Array.from({ length: pages }, (_, i) => `${i + 3} 0 R`).join(" ");
  const objs = [
    "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj",
    `2 0 obj << /Type /Pages /Kids [${kids}] /Count ${pages} >> endobj`,
    ...Array.from({ length: pages }, (_, i) => `${i + 3} 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj`),
  ];
  return Buffer.concat([
    Buffer.from(`%PDF-1.4\n${objs.join("\n")}\n% `),
    Buffer.from(randomBytes(padding).toString("base64")),
    Buffer.from("\n%%EOF\n"),
  ]);
}

export function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

export interface InjectedFax {
  id: string;
  pdf: Buffer;
  from: string;
  to: string;
  creationTime: string;
  at: number;
}

export class Harness {
  readonly dir = tempDir("faxbridge-inbound-");
  readonly logs: LogLine[] = [];
  readonly logger: Logger;
  readonly metrics = new Metrics({ defaultMetrics: false });
  emulator!: Emulator;
  sink!: SmtpSink;
  http!: HttpServer;
  /** The stores (named db: reopened as a new process would). */
  db!: TestStores;
  store!: InboundStore;
  client!: RingCentralClient;
  mail!: MailSender;
  config!: Config;
  readonly services: InboundService[] = [];
  readonly #opts: HarnessOptions;

  constructor(opts: HarnessOptions = {}) {
    this.#opts = opts;
    this.logger = capturingLogger(process.env["TEST_LOG_LEVEL"] ?? "debug", { lines: this.logs });
  }

  async start(): Promise<this> {
    const o = this.#opts;
    this.emulator = await startEmulator(o.emulator ?? {});
    this.sink = new SmtpSink();
    if (o.sink ?? true) await this.sink.start();
    this.http = new HttpServer({ host: "127.0.0.1", port: 0, logger: this.logger, metrics: this.metrics });
    const addr = await this.http.listen();
    const webhookUrl = `http://127.0.0.1:${addr.port}/webhook/ringcentral`;
    const c = o.config ?? {};
    this.config = configSchema.parse({
      ...c,
      dataDir: this.dir.path,
      ringcentral: {
        serverUrl: this.emulator.url,
        clientId: "test-id",
        clientSecret: "test-secret",
        jwt: "test-jwt",
        mediaOrigins: [this.emulator.mediaUrl],
        ...(c.ringcentral ?? {}),
      },
      mail: { url: this.sink.url, from: "faxbridge <faxbridge@example.test>", ...(c.mail ?? {}) },
      fax: { domains: ["fax.example.test"], ...(c.fax ?? {}) },
      inbound: {
        defaultTo: "fax-inbox@example.test",
        notifications: "none",
        syncIntervalSeconds: 3600,
        verificationToken: "s3cret-verification-token",
        retrySchedule: "200ms,200ms,300ms,500ms*10",
        ...(o.inbound ?? {}),
        ...(o.webhook === true ? { notifications: "webhook" as const, webhookUrl } : {}),
      },
    });
    await this.openDb();
    this.client = this.newClient();
    this.mail = createMailSender(this.config.mail.url, `${this.dir.path}/mailbox`, this.logger);
    return this;
  }

  /** RingCentral "restarts": same URL, every token, subscription and message gone. */
  async restartEmulator(): Promise<void> {
    const { port, mediaPort } = this.emulator;
    await this.emulator.close();
    this.emulator = await startEmulator({ ...(this.#opts.emulator ?? {}), port, mediaPort });
  }

  get webhookUrl(): string {
    return `http://127.0.0.1:${this.http.address.port}/webhook/ringcentral`;
  }

  async openDb(): Promise<void> {
    this.db = await openTestStores(this.dir.path, { logger: this.logger });
    this.store = this.db.inbound;
  }

  newClient(): RingCentralClient {
    const rc = this.config.ringcentral;
    return new RingCentralClient({
      serverUrl: rc.serverUrl,
      clientId: rc.clientId,
      clientSecret: rc.clientSecret,
      jwt: rc.jwt,
      logger: this.logger,
      rateLimits: rc.rateLimits,
      mediaOrigins: rc.mediaOrigins,
      onCall: (call) => this.metrics.recordRcCall(call),
    });
  }

  service(tuning: Partial<InboundTuning> = {}, config: Config = this.config, now?: () => number): InboundService {
    const s = new InboundService({
      config,
      ...(now !== undefined && { now }),
      client: this.client,
      store: this.store,
      mail: this.mail,
      http: this.http,
      metrics: this.metrics,
      logger: this.logger,
      tuning: { syncMinGapMs: 0, leaseMs: 5_000, subscriptionCheckMs: 60_000, wsHeartbeatMs: 5_000, wsBackoffMs: [100, 200, 500], ...tuning },
    });
    this.services.push(s);
    return s;
  }

  /** A received fax, PDF by default; `contentType: "image/tiff"` with a TIFF in `pdf` stores it as RingCentral's TIFF setting does. */
  async inject(opts: { from?: string; to?: string; pages?: number; pdf?: Buffer; contentType?: "application/pdf" | "image/tiff" } = {}): Promise<InjectedFax> {
    const from = opts.from ?? "+15551234567";
    const to = opts.to ?? "+16505550100";
    const pdf = opts.pdf ?? makePdf(opts.pages ?? 1);
    const at = Date.now();
    const res = await fetch(`${this.emulator.url}/emulator/inbound-faxes?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, {
      method: "POST",
      headers: { "content-type": opts.contentType ?? "application/pdf" },
      body: pdf,
    });
    if (res.status !== 200) throw new Error(`inject failed: ${res.status} ${await res.text()}`);
    const msg = (await res.json()) as { id: number | string; creationTime: string };
    return { id: String(msg.id), pdf, from, to, creationTime: msg.creationTime, at };
  }

  async control(method: string, path: string, body?: unknown): Promise<unknown> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    const res = await fetch(`${this.emulator.url}${path}`, init);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    const text = await res.text();
    return text === "" ? undefined : (JSON.parse(text) as unknown);
  }

  /** Mails in the sink for a RingCentral message id. */
  mailsFor(rcId: string): SinkMessage[] {
    return this.sink.messages.filter((m) => headerText(m, "x-faxbridge-message-id") === rcId);
  }

  events(name: string): LogLine[] {
    return this.logs.filter((l) => l.event === name);
  }

  async close(): Promise<void> {
    for (const s of this.services) await s.stop();
    await this.client.close();
    this.mail.close();
    await this.http.close();
    await this.sink.close();
    await this.emulator.close();
    await this.db.close();
    this.dir.cleanup();
  }
}

export function headerText(m: SinkMessage, name: string): string | undefined {
  const v = m.parsed.headers.get(name);
  if (v === undefined) return undefined;
  return typeof v === "string" ? v : JSON.stringify(v);
}
