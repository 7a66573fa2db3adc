import { afterEach } from "vitest";
/**
 * Email → fax end to end, every piece real on loopback: a nodemailer client
 * talks SMTP to createSmtpServer, which spools into a SQLite store in a temp
 * dir; the OutboundWorker sends through the real RingCentralClient to the
 * RingCentral emulator, and reports arrive at an SmtpSink.
 */
import { createHash, randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import nodemailer from "nodemailer";
import type Mail from "nodemailer/lib/mailer/index.js";
import { Agent } from "undici";
import type { z } from "zod";
import { configSchema, type Config } from "../../src/config/schema.js";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import { type Logger } from "../../src/log.js";
import { createMailSender, type MailSender } from "../../src/mail/transport.js";
import { Metrics } from "../../src/metrics.js";
import { OutboundWorker, type WorkerTuning } from "../../src/outbound/worker.js";
import { createSmtpPolicy } from "../../src/policy/index.js";
import { RingCentralClient } from "../../src/rc/client.js";
import { createSmtpServer, type FaxSmtpServer } from "../../src/smtp/server.js";
import { type JobState, type OutboundJob, type OutboundStore } from "../../src/store/ports.js";
import { openTestStores, type TestSpool, type TestStores } from "../helpers/stores.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { withStoreHooks, type WorkerHooks } from "../helpers/store-hooks.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { capturingLogger, type LogLine } from "../helpers/log.js";
import { EmulatorControl, type CallsSnapshot, type FaultSpec } from "../helpers/emulator-control.js";

type ConfigInput = z.input<typeof configSchema>;

export type { LogLine };

export interface SentFax {
  id: string;
  layout: string;
  to: { phoneNumber: string; name?: string }[];
  sendTime: string | null;
  originalMessageId: string | null;
  coverPageText: string | null;
  isoCode?: string | null;
  cancelledAt?: string | null;
  attachments: { filename: string; contentType: string; size: number; sha256: string }[];
  receivedAt: string;
}

export type CallSnapshot = CallsSnapshot;

export interface HarnessOptions {
  emulator?: EmulatorOptions;
  fax?: NonNullable<ConfigInput["fax"]>;
  /** Policy settings; when given, the SMTP server runs with the security policy (src/policy) too. */
  policy?: NonNullable<ConfigInput["policy"]>;
  /** Client-side limits (default: the emulator's Heavy limit and window, when given). */
  rateLimits?: Partial<Config["ringcentral"]["rateLimits"]>;
  tuning?: Partial<WorkerTuning>;
  hooks?: WorkerHooks;
  /** Start the worker right away (default true). */
  startWorker?: boolean;
  /** ringcentral.faxLayout (default form-data). */
  faxLayout?: Config["ringcentral"]["faxLayout"];
  /** mail.* values besides the transport (e.g. timeZone). */
  mail?: { timeZone?: string };
  /** A postgres:// URL: run on the PostgreSQL backend (database.url) instead of SQLite. */
  databaseUrl?: string;
  /** Run on this existing data directory (e.g. one an older version wrote) instead of a fresh one; removed at close all the same. */
  dataDir?: string;
  /** An emulator the test started and shares between harnesses (instances); left running at close. */
  sharedEmulator?: Emulator;
}

export interface WorkerOverrides {
  hooks?: WorkerHooks;
  /** Config fax.* values for this worker only (e.g. a long poll schedule to park jobs). */
  fax?: Partial<Config["fax"]>;
  tuning?: Partial<WorkerTuning>;
  /** The worker's clock (e.g. shifted forward to make parked jobs due after a "restart"). */
  now?: () => number;
  /** Another instance's stores on the same data (its own lease owner); default the harness's. */
  stores?: TestStores;
}

export const FAST_TUNING: Partial<WorkerTuning> = {
  idlePollMs: 25,
  leaseMs: 5_000,
  submitLeaseMs: 5_000,
  reconcileSkewMs: 5_000,
  gaugeIntervalMs: 100,
};

/** A small PDF whose bytes differ per call (random padding in a comment). */
export function makePdf(label = "doc"): Buffer {
  const body = `%PDF-1.4\n% ${label} ${randomBytes(16).toString("hex")}\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n`;
  return Buffer.from(body, "latin1");
}

export function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/**
 * For a test file: `harness(opts)` starts a harness (over `defaults`), and
 * every harness started in a test is closed after it.
 */
export function harnessPerTest(defaults: HarnessOptions = {}): (opts?: HarnessOptions) => Promise<OutboundHarness> {
  const started: OutboundHarness[] = [];
  afterEach(async () => {
    for (const h of started.splice(0)) await h.close();
  });
  return (opts = {}) => {
    const h = new OutboundHarness({ ...defaults, ...opts });
    started.push(h);
    return h.start();
  };
}

export class OutboundHarness {
  readonly logs: LogLine[] = [];
  readonly dir: { readonly path: string; cleanup(): void };
  readonly sink = new SmtpSink();
  readonly metrics = new Metrics({ defaultMetrics: false });
  readonly opts: HarnessOptions;
  emu!: Emulator;
  client!: RingCentralClient;
  stores!: TestStores;
  store!: OutboundStore;
  spool!: TestSpool;
  smtp!: FaxSmtpServer;
  smtpPort = 0;
  mail!: MailSender;
  worker: OutboundWorker | undefined;
  config!: Config;
  logger!: Logger;
  readonly #agent = new Agent({ keepAliveTimeout: 10 });
  readonly #control = new EmulatorControl(() => this.emu.url, { dispatcher: this.#agent });
  readonly #transports: ReturnType<typeof nodemailer.createTransport>[] = [];

  constructor(opts: HarnessOptions = {}) {
    this.opts = opts;
    const given = opts.dataDir;
    this.dir = given === undefined ? tempDir("faxbridge-e2e-") : { path: given, cleanup: () => rmSync(given, { recursive: true, force: true }) };
  }

  async start(): Promise<this> {
    this.logger = capturingLogger("debug", { lines: this.logs });
    await this.sink.start();
    this.emu = this.opts.sharedEmulator ?? (await startEmulator({ faxTimings: { queuedMs: 60, pageMs: 60 }, ...this.opts.emulator }));
    const heavy = this.opts.emulator?.limits?.Heavy;
    const windowSeconds = this.opts.emulator?.windowSeconds;
    this.config = configSchema.parse({
      dataDir: this.dir.path,
      ...(this.opts.databaseUrl !== undefined && { database: { url: this.opts.databaseUrl } }),
      smtp: { host: "127.0.0.1", port: 0 },
      ringcentral: {
        serverUrl: this.emu.url,
        clientId: "id",
        jwt: "jwt",
        ...(this.opts.faxLayout !== undefined && { faxLayout: this.opts.faxLayout }),
        rateLimits: {
          ...(heavy !== undefined && { heavy }),
          ...(windowSeconds !== undefined && { windowSeconds }),
          ...this.opts.rateLimits,
        },
      },
      fax: { retrySchedule: "50ms,100ms,150ms,200ms", statusPollSchedule: "50ms,100ms", statusTimeoutHours: 1, numberCheck: "possible", redial: "", ...this.opts.fax },
      mail: { url: this.sink.url, from: "Fax Gateway <faxbridge@gw.test>", ...this.opts.mail },
      ...(this.opts.policy !== undefined && { policy: this.opts.policy }),
    });
    this.stores = await openTestStores(this.dir.path, { logger: this.logger, groupCommit: "inline", ...(this.opts.databaseUrl !== undefined && { databaseUrl: this.opts.databaseUrl }) });
    this.store = this.stores.outbound;
    this.spool = this.stores.spool;
    this.client = new RingCentralClient({
      serverUrl: this.emu.url,
      clientId: "id",
      clientSecret: "",
      jwt: "jwt",
      logger: this.logger.child({ component: "ringcentral" }),
      rateLimits: this.config.ringcentral.rateLimits,
      dispatcher: this.#agent,
      requestTimeoutMs: 10_000,
      retry: { baseDelayMs: 20, maxDelayMs: 100 },
      onCall: (c) => this.metrics.recordRcCall(c),
      faxLayout: this.config.ringcentral.faxLayout,
      mediaOrigins: [this.emu.mediaUrl],
    });
    this.mail = createMailSender(this.config.mail.url, `${this.dir.path}/mailbox`, this.logger);
    const policy = this.opts.policy === undefined ? undefined : await createSmtpPolicy({ config: this.config, logger: this.logger, metrics: this.metrics, store: this.store, quota: this.stores.quota });
    this.smtp = createSmtpServer({
      ...(policy !== undefined && { policy }),
      config: this.config,
      spool: this.spool,
      store: this.store,
      logger: this.logger,
      numberCheck: "possible",
      onAccepted: () => this.worker?.wake(),
    });
    this.smtpPort = (await this.smtp.listen()).port;
    if (this.opts.startWorker ?? true) await this.startWorker();
    return this;
  }

  newWorker(opts: WorkerOverrides = {}): OutboundWorker {
    return new OutboundWorker({
      config: opts.fax === undefined ? this.config : { ...this.config, fax: { ...this.config.fax, ...opts.fax } },
      // Test hooks run in a store decorator (test/helpers/store-hooks.ts), not in the worker.
      store: opts.hooks !== undefined ? withStoreHooks(opts.stores?.outbound ?? this.store, opts.hooks) : (opts.stores?.outbound ?? this.store),
      quota: opts.stores?.quota ?? this.stores.quota,
      spool: opts.stores?.spool ?? this.spool,
      client: this.client,
      mail: this.mail,
      metrics: this.metrics,
      logger: this.logger,
      tuning: { ...FAST_TUNING, ...this.opts.tuning, ...opts.tuning },
      ...(opts.now !== undefined && { now: opts.now }),
    });
  }

  async startWorker(opts: WorkerOverrides = this.opts.hooks === undefined ? {} : { hooks: this.opts.hooks }): Promise<OutboundWorker> {
    const w = this.newWorker(opts);
    this.worker = w;
    await w.start();
    return w;
  }

  async stopWorker(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.stop();
  }

  /** Send a mail through our SMTP server; resolves with the queue id from the 250 reply. */
  async send(mail: Mail.Options & { envelope?: { from: string; to: string[] } }): Promise<string> {
    const t = nodemailer.createTransport({ host: "127.0.0.1", port: this.smtpPort, secure: false, ignoreTLS: true });
    this.#transports.push(t);
    const info = (await t.sendMail({ from: "alice@example.com", subject: "fax", text: "hello", ...mail })) as { response: string };
    const m = /Queued as (\S+)/.exec(info.response);
    if (!m?.[1]) throw new Error(`no queue id in ${info.response}`);
    return m[1];
  }

  async job(id: string): Promise<OutboundJob> {
    const j = await this.store.get(id);
    if (j === undefined) throw new Error(`no job ${id}`);
    return j;
  }

  async waitState(id: string, state: JobState, timeoutMs = 10_000): Promise<OutboundJob> {
    return waitFor(
      async () => {
        const j = await this.store.get(id);
        return j?.state === state ? j : undefined;
      },
      timeoutMs,
      `job ${id} to be ${state}`,
    );
  }

  control<T>(method: "GET" | "POST" | "DELETE" | "PUT", path: string, body?: unknown): Promise<T> {
    return this.#control.request<T>(method, path, body);
  }

  sentFaxes(): Promise<SentFax[]> {
    return this.#control.sentFaxes<SentFax>();
  }

  calls(): Promise<CallSnapshot> {
    return this.#control.calls();
  }

  fault(f: FaultSpec): Promise<void> {
    return this.#control.fault(f);
  }

  events(name: string): LogLine[] {
    return this.logs.filter((l) => l.event === name);
  }

  async close(): Promise<void> {
    const steps: [string, () => Promise<unknown> | unknown][] = [
      ["smtp", () => this.smtp?.close(500)],
      ["worker", () => this.stopWorker()],
      ["transports", () => this.#transports.forEach((t) => t.close())],
      ["mail", () => this.mail?.close()],
      ["client", () => this.client?.close()],
      ["emulator", () => (this.opts.sharedEmulator === undefined ? this.emu?.close() : undefined)],
      ["sink", () => this.sink.close()],
      ["stores", () => this.stores?.close()],
      ["agent", () => this.#agent.close()],
    ];
    for (const [name, fn] of steps) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`harness close ${name}: ${String(err)}\n`);
      }
    }
    this.dir.cleanup();
  }
}
