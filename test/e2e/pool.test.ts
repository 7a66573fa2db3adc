/**
 * The extension pool end to end (issue 11): the composed daemon with two JWTs
 * in RC_JWT against the emulator, where each JWT is its own extension with its
 * own message store and rate-limit buckets. Faxes spread over both; a 429 on
 * one extension does not stall the other; a fax received by the second
 * extension is synced through its own session and mailed.
 */
import nodemailer from "nodemailer";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import { renderablePdf } from "../helpers/pdf.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

const JWTS = ["eyJ.pool-e2e-first.sig", "eyJ.pool-e2e-second.sig"];

interface SentFax {
  id: string;
  extensionId: string;
  messageStatus: string | null;
  receivedAt: string;
}

describe("extension pool, end to end", () => {
  let dir: ReturnType<typeof tempDir>;
  let sink: SmtpSink;
  let emu: Emulator;
  let daemon: Daemon | undefined;
  let ids: string[];
  let metrics: Metrics;

  async function control<T>(method: "GET" | "POST", path: string, body?: unknown, contentType = "application/json"): Promise<T> {
    const res = await fetch(emu.url + path, {
      method,
      ...(body !== undefined && { headers: { "content-type": contentType }, body: Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  beforeEach(async () => {
    dir = tempDir("faxbridge-pool-");
    sink = await new SmtpSink().start();
    // Two sends a minute per extension: a pool of two sends four without waiting for a window.
    emu = await startEmulator({ faxTimings: { queuedMs: 50, pageMs: 50 }, limits: { Heavy: 2 } });
    ids = [];
    for (const jwt of JWTS) ids.push((await control<{ extensionId: string }>("POST", "/emulator/extensions", { jwt })).extensionId);
    metrics = new Metrics({ defaultMetrics: false });
    const config = loadConfig({
      env: {
        FAXBRIDGE_DATA_DIR: dir.path,
        FAXBRIDGE_SMTP_PORT: "0",
        FAXBRIDGE_HTTP_PORT: "0",
        FAXBRIDGE_MAIL_URL: sink.url,
        FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "200ms",
        FAXBRIDGE_FAX_RETRY_SCHEDULE: "200ms,200ms,200ms,200ms,200ms",
        FAXBRIDGE_FAX_NUMBER_CHECK: "possible",
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
        FAXBRIDGE_INBOUND_SYNC_INTERVAL_SECONDS: "1",
        FAXBRIDGE_INBOUND_TO: "faxes@example.com",
        FAXBRIDGE_LOG_LEVEL: "silent",
        RC_SERVER_URL: emu.url,
        RC_MEDIA_ORIGINS: emu.mediaUrl,
        RC_CLIENT_ID: "pool-client",
        RC_CLIENT_SECRET: "pool-secret",
        RC_JWT: JWTS.join(","),
        RC_RATE_LIMITS_HEAVY: "2",
      },
    });
    daemon = await startDaemon(config, { logger: silentLogger(), metrics });
  });

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    await emu.close();
    await sink.close();
    dir.cleanup();
  });

  async function mail(n: number): Promise<void> {
    const transport = nodemailer.createTransport({ host: "127.0.0.1", port: daemon?.smtp.port ?? 0, secure: false, ignoreTLS: true });
    try {
      await transport.sendMail({
        from: "alice@example.com",
        to: `1555123${String(n).padStart(4, "0")}@fax.local`,
        subject: `fax ${n}`,
        text: "hello",
        attachments: [{ filename: "a.pdf", content: renderablePdf(`fax ${n}`), contentType: "application/pdf" }],
      });
    } finally {
      transport.close();
    }
  }

  const reports = (): number => sink.messages.filter((m) => m.to.includes("alice@example.com")).length;

  it("spreads faxes over both extensions, each polled through its sender", async () => {
    for (const n of [1, 2, 3, 4]) await mail(n);
    await waitFor(() => reports() === 4, { timeoutMs: 30_000, what: "four reports" });
    const sent = await control<SentFax[]>("GET", "/emulator/sent-faxes");
    expect(sent).toHaveLength(4);
    expect(sent.filter((f) => f.extensionId === ids[0])).toHaveLength(2);
    expect(sent.filter((f) => f.extensionId === ids[1])).toHaveLength(2);
    expect(sent.every((f) => f.messageStatus === "Sent")).toBe(true);
    const calls = await control<{ byStatus: Record<string, number> }>("GET", "/emulator/calls");
    expect(calls.byStatus["429"] ?? 0).toBe(0);
    expect(calls.byStatus["403"] ?? 0).toBe(0);
    const exposition = await metrics.registry.metrics();
    for (const id of ids) expect(exposition).toContain(`extension="${id}"`);
  });

  it("runs sendConcurrency sends per extension at once: with two extensions, four uploads overlap", async () => {
    // Every upload takes 2 s at the emulator; the daemon's default is 2 sends per extension.
    for (const id of ids) await control("POST", "/emulator/faults", { kind: "latency", latencyMs: 2000, group: "Heavy", path: "/fax", count: 2, extensionId: id });
    await Promise.all([11, 12, 13, 14].map((n) => mail(n)));
    await waitFor(() => reports() === 4, { timeoutMs: 30_000, what: "four reports" });
    const sent = await control<SentFax[]>("GET", "/emulator/sent-faxes");
    expect(sent.filter((f) => f.extensionId === ids[0])).toHaveLength(2);
    expect(sent.filter((f) => f.extensionId === ids[1])).toHaveLength(2);
    // Sends one after another (2 in flight for the whole pool) would take a second round: the last accepted ≥ 2 s after the first.
    const times = sent.map((f) => Date.parse(f.receivedAt));
    expect(Math.max(...times) - Math.min(...times)).toBeLessThan(2000);
  });

  it("a 429 on one extension does not stall the other", async () => {
    await control("POST", "/emulator/faults", { kind: "429", group: "Heavy", count: 1, retryAfter: 60, extensionId: ids[0] });
    const started = Date.now();
    for (const n of [5, 6]) await mail(n);
    // well inside the held extension's 60 s: the other extension sent both (its two Heavy slots)
    await waitFor(() => reports() === 2, { timeoutMs: 20_000, what: "two reports" });
    expect(Date.now() - started).toBeLessThan(20_000);
    const sent = await control<SentFax[]>("GET", "/emulator/sent-faxes");
    expect(sent.map((f) => f.extensionId)).toEqual([ids[1], ids[1]]);
    const calls = await control<{ byStatus: Record<string, number> }>("GET", "/emulator/calls");
    expect(calls.byStatus["429"]).toBe(1);
  });

  it("mails a fax the second extension received, synced through its own session", async () => {
    await control("POST", `/emulator/inbound-faxes?extensionId=${ids[1] ?? ""}&from=%2B12125550123`, renderablePdf("received"), "application/pdf");
    const got = await waitFor(() => sink.messages.find((m) => m.to.includes("faxes@example.com")), { timeoutMs: 30_000, what: "the received fax mail" });
    expect(got.parsed.attachments.length).toBeGreaterThan(0);
    const calls = await control<{ byStatus: Record<string, number> }>("GET", "/emulator/calls");
    expect(calls.byStatus["403"] ?? 0).toBe(0);
  });
});
