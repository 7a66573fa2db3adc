/**
 * Startup never waits for RingCentral's Auth group: with the login answered
 * 429 (the group held for a minute, as after a restart following `doctor`),
 * the daemon is up and taking mail at once, and a warn line says what waits
 * and until when.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { Metrics } from "../../src/metrics.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { capturingLogger } from "../helpers/log.js";

const CREDS = { clientId: "startup-app", clientSecret: "startup-secret-value", jwt: "eyJ.startup-jwt.sig" };

describe("daemon startup with the Auth group held", () => {
  let emu: Emulator | undefined;
  let daemon: Daemon | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    await emu?.close();
    emu = undefined;
    dir?.cleanup();
    dir = undefined;
  });

  it("starts listening at once and warns what waits for the Auth group and until when", async () => {
    emu = await startEmulator({ strictAuth: CREDS });
    const fault = await fetch(`${emu.url}/emulator/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ group: "Auth", kind: "429", retryAfter: 60, count: 1 }),
    });
    expect(fault.ok).toBe(true);
    dir = tempDir();
    const lines: string[] = [];
    const logger = capturingLogger("info", { raw: lines });
    const config = loadConfig({
      env: {
        FAXBRIDGE_DATA_DIR: dir.path,
        FAXBRIDGE_SMTP_PORT: "0",
        FAXBRIDGE_HTTP_PORT: "0",
        RC_SERVER_URL: emu.url,
        RC_CLIENT_ID: CREDS.clientId,
        RC_CLIENT_SECRET: CREDS.clientSecret,
        RC_JWT: CREDS.jwt,
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "websocket",
      },
    });
    const started = Date.now();
    daemon = await startDaemon(config, { logger, metrics: new Metrics({ defaultMetrics: false }) });
    expect(Date.now() - started).toBeLessThan(10_000);
    const ready = await fetch(`http://127.0.0.1:${daemon.http.port}/readyz`);
    expect(ready.status).toBe(200);
    const warnLine = await waitFor(() => lines.find((l) => l.includes('"event":"rc.rate_limited"')), { timeoutMs: 10_000, what: "the rate-limit warning" });
    expect(warnLine).toContain('"level":"warn"');
    expect(warnLine).toMatch(/"group":"Auth".*"until":"\d{4}-/);
    expect(lines.join("")).not.toContain(CREDS.jwt);
  });

  it("warns at start when mail.from (the Return-Path) or an inbound mailbox is at localhost with a real mail server", async () => {
    const sink = await new SmtpSink().start();
    try {
      dir = tempDir();
      const lines: string[] = [];
      const logger = capturingLogger("info", { raw: lines });
      const config = loadConfig({
        env: { FAXBRIDGE_DATA_DIR: dir.path, FAXBRIDGE_SMTP_PORT: "0", FAXBRIDGE_HTTP_PORT: "0", FAXBRIDGE_EMULATOR_PORT: "0", FAXBRIDGE_MAIL_URL: sink.url, FAXBRIDGE_INBOUND_NOTIFICATIONS: "none" },
      });
      daemon = await startDaemon(config, { logger, metrics: new Metrics({ defaultMetrics: false }) });
      const line = lines.find((l) => l.includes('"event":"daemon.local_addresses"')) ?? "";
      expect(line).toContain('"level":"warn"');
      expect(line).toContain("faxbridge <faxbridge@localhost>");
      expect(line).toContain("fax-inbox@localhost");
      await daemon.close();
      daemon = undefined;
    } finally {
      await sink.close();
    }
  });
});
