/**
 * Fault-test topology, every piece a real process or server on loopback:
 * - the RingCentral emulator as its OWN child process (`faxbridge emulator`),
 *   so what it saw survives the daemon's death;
 * - an SmtpSink in the test process as the MTA our mail goes to;
 * - the daemon (`faxbridge run`) as a child process, non-sandbox, pointed at
 *   both, with millisecond schedules; it can be SIGKILLed and restarted on
 *   the same data directory.
 */
import { createHash, randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import { DaemonProcess } from "../helpers/daemon.js";
import type { SmtpSink } from "../helpers/smtp-sink.js";
import { waitFor } from "../helpers/wait.js";
import { EmulatorControl, type CallsSnapshot, type FaultSpec } from "../helpers/emulator-control.js";

export interface SentFax {
  id: string;
  to: { phoneNumber: string }[];
  coverPageText: string | null;
  attachments: { filename: string; contentType: string; size: number; sha256: string }[];
}

/** The emulator as a child process; its control API is plain HTTP. */
export class EmulatorProcess {
  readonly proc = new DaemonProcess({});
  url = "";
  /** The media host's origin (attachment content): the daemon must list it in RC_MEDIA_ORIGINS. */
  mediaUrl = "";

  async start(extra: string[] = []): Promise<this> {
    await this.proc.start([
      "emulator",
      "--port",
      "0",
      "--queued-ms",
      "40",
      "--page-ms",
      "40",
      // Crash safety, not pacing, is under test: limits nobody reaches.
      "--light-limit",
      "100000",
      "--medium-limit",
      "100000",
      "--heavy-limit",
      "100000",
      "--auth-limit",
      "100000",
      ...extra,
    ]);
    const line = await this.proc.waitForLine((l) => l.event === "emulator.ready");
    this.url = String(line.url);
    this.mediaUrl = String(line.mediaUrl);
    return this;
  }

  readonly #control = new EmulatorControl(() => this.url);

  sentFaxes(): Promise<SentFax[]> {
    return this.#control.sentFaxes<SentFax>();
  }

  async injectInbound(pdf: Buffer, from = "+15557654321", to = "+15551230000"): Promise<string> {
    return String((await this.#control.injectInbound({ body: pdf, from, to })).id);
  }

  fault(f: FaultSpec): Promise<void> {
    return this.#control.fault(f);
  }

  clearFaults(): Promise<void> {
    return this.#control.clearFaults();
  }

  calls(): Promise<CallsSnapshot> {
    return this.#control.calls();
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}

/** Environment for a daemon talking to an external emulator and a sink, with fast schedules. */
export function daemonEnv(opts: { dataDir: string; emulatorUrl: string; mediaUrl: string; sinkUrl: string; extra?: Record<string, string> }): Record<string, string> {
  return {
    RC_SERVER_URL: opts.emulatorUrl,
    RC_MEDIA_ORIGINS: opts.mediaUrl,
    RC_CLIENT_ID: "x",
    RC_CLIENT_SECRET: "y",
    RC_JWT: "z",
    RC_RATE_LIMITS_LIGHT: "100000",
    RC_RATE_LIMITS_MEDIUM: "100000",
    RC_RATE_LIMITS_HEAVY: "100000",
    RC_RATE_LIMITS_AUTH: "100000",
    RC_REQUEST_TIMEOUT_MS: "10000",
    FAXBRIDGE_DATA_DIR: opts.dataDir,
    FAXBRIDGE_MAIL_URL: opts.sinkUrl,
    FAXBRIDGE_MAIL_FROM: "faxbridge <faxbridge@gw.test>",
    FAXBRIDGE_FAX_NUMBER_CHECK: "possible",
    FAXBRIDGE_FAX_RETRY_SCHEDULE: "200ms,500ms,1s*20",
    FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "200ms,500ms",
    FAXBRIDGE_INBOUND_SYNC_INTERVAL_SECONDS: "1",
    FAXBRIDGE_INBOUND_RETRY_SCHEDULE: "200ms,500ms,1s*20",
    FAXBRIDGE_INBOUND_TO: "fax-inbox@gw.test",
    ...opts.extra,
  };
}

/** A daemon that can be killed and brought back on the same data directory. */
export class RestartableDaemon {
  current: DaemonProcess | undefined;
  smtpPort = 0;
  httpPort = 0;
  readonly generations: DaemonProcess[] = [];
  readonly env: Record<string, string>;

  constructor(env: Record<string, string>) {
    this.env = env;
  }

  /** `startTimeoutMs`: how long to wait for `daemon.started` (default 20 s). */
  async start(startTimeoutMs?: number): Promise<void> {
    const d = await new DaemonProcess(this.env).start();
    this.current = d;
    this.generations.push(d);
    const s = await d.started(startTimeoutMs);
    this.smtpPort = s.smtpPort;
    this.httpPort = s.httpPort;
  }

  async kill9(): Promise<void> {
    const d = this.current;
    if (!d) return;
    this.smtpPort = 0;
    d.kill("SIGKILL");
    await d.exited();
  }

  async restart(): Promise<void> {
    await this.kill9();
    await this.start();
  }

  /** Every log line of every generation with this event. */
  events(event: string): Record<string, unknown>[] {
    return this.generations.flatMap((g) => g.lines.filter((l) => l.event === event));
  }

  async stop(): Promise<void> {
    for (const g of this.generations) await g.stop();
  }
}

/** A small valid-looking PDF whose bytes carry the marker (and so a unique sha256). */
export function markerPdf(marker: string): Buffer {
  const body =
    `%PDF-1.4\n% marker ${marker} ${randomBytes(8).toString("hex")}\n` +
    "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
    "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
  return Buffer.from(body, "latin1");
}

export function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A MIME mail with one PDF attachment and a fixed Message-ID (resends reuse the same bytes). */
export function faxMail(opts: { from: string; to: string; marker: string; pdf: Buffer; messageId: string; subject?: string }): Buffer {
  const boundary = `b-${opts.marker}`;
  const b64 = opts.pdf.toString("base64").replace(/.{1,76}/g, "$&\r\n");
  const text = [
    `From: <${opts.from}>`,
    `To: <${opts.to}>`,
    `Subject: ${opts.subject ?? `fault test ${opts.marker}`}`,
    `Message-ID: <${opts.messageId}>`,
    "Date: Thu, 01 May 2025 10:00:00 +0000",
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "",
    `marker ${opts.marker}`,
    `--${boundary}`,
    `Content-Type: application/pdf; name="${opts.marker}.pdf"`,
    `Content-Disposition: attachment; filename="${opts.marker}.pdf"`,
    "Content-Transfer-Encoding: base64",
    "",
    b64.trimEnd(),
    `--${boundary}--`,
    "",
  ].join("\r\n");
  return Buffer.from(text, "utf8");
}

/** Seeded PRNG (mulberry32): the same seed gives the same kill points. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Job and fax states straight from the daemon's database (read-only; WAL lets us read while it runs). */
export function queueStates(dbFile: string): { outbound: Record<string, number>; inbound: Record<string, number> } {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    db.pragma("busy_timeout = 2000");
    const count = (table: string): Record<string, number> => {
      const rows = db.prepare(`SELECT state, COUNT(*) AS n FROM ${table} GROUP BY state`).all() as { state: string; n: number }[];
      return Object.fromEntries(rows.map((r) => [r.state, r.n]));
    };
    return { outbound: count("outbound_jobs"), inbound: count("inbound_faxes") };
  } finally {
    db.close();
  }
}

/** Jobs and faxes not yet done, with why (for failure messages). */
export function stuckWork(dbFile: string): unknown[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const now = Date.now();
    const out = db
      .prepare("SELECT id, state, attempts, next_attempt_at, lease_until, last_error FROM outbound_jobs WHERE state NOT IN ('notified','cancelled')")
      .all() as { id: string; state: string; attempts: number; next_attempt_at: number; lease_until: number | null; last_error: string | null }[];
    const inb = db
      .prepare("SELECT id, state, attempts, next_attempt_at, lease_until, last_error FROM inbound_faxes WHERE state NOT IN ('delivered','dead')")
      .all() as { id: string; state: string; attempts: number; next_attempt_at: number; lease_until: number | null; last_error: string | null }[];
    return [...out, ...inb].map((r) => ({ ...r, dueInMs: r.next_attempt_at - now, leaseInMs: r.lease_until === null ? null : r.lease_until - now }));
  } finally {
    db.close();
  }
}

/** Outbound jobs all notified or cancelled, inbound faxes all delivered (or dead). */
export function quiescent(dbFile: string): boolean {
  const s = queueStates(dbFile);
  const pendingOut = Object.entries(s.outbound).filter(([state]) => state !== "notified" && state !== "cancelled");
  const pendingIn = Object.entries(s.inbound).filter(([state]) => state !== "delivered" && state !== "dead");
  return pendingOut.every(([, n]) => n === 0) && pendingIn.every(([, n]) => n === 0);
}

/** Distinct inbound faxes in the sink (by the attached PDF's sha256) and mails per Message-ID. */
export function inboundDeliveries(sink: SmtpSink, inbox: string): { byPdf: Map<string, Set<string>>; mails: number; byMessageId: Map<string, number> } {
  const byPdf = new Map<string, Set<string>>();
  const byMessageId = new Map<string, number>();
  let mails = 0;
  for (const m of sink.messages) {
    if (!m.to.includes(inbox)) continue;
    mails++;
    const mid = m.parsed.messageId ?? "(none)";
    byMessageId.set(mid, (byMessageId.get(mid) ?? 0) + 1);
    for (const a of m.parsed.attachments) {
      const h = sha256(a.content);
      const set = byPdf.get(h) ?? new Set<string>();
      set.add(mid);
      byPdf.set(h, set);
    }
  }
  return { byPdf, mails, byMessageId };
}

export async function waitQuiescent(dbFile: string, timeoutMs: number, extra: () => boolean | Promise<boolean> = () => true): Promise<void> {
  try {
    await waitFor(async () => quiescent(dbFile) && (await extra()), timeoutMs, "quiescence");
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; queue now ${JSON.stringify(queueStates(dbFile))}; pending ${JSON.stringify(stuckWork(dbFile).slice(0, 10))}`, {
      cause: err,
    });
  }
}
