/**
 * Inbound with an extension pool (issue 11): every pool member's received
 * faxes are watched with that member's own session: its own WebSocket
 * subscription (RingCentral shows an extension only its own message store),
 * its own message-sync cursor; `inbound.routes` by extension id work per
 * member. The periodic sync is set to an hour, so the notification is what
 * finds the fax.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { silentLogger } from "../../src/log.js";
import { EmulatorControl } from "../helpers/emulator-control.js";
import { renderablePdf } from "../helpers/pdf.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

const JWTS = ["eyJ.pool-inbound-first.sig", "eyJ.pool-inbound-second.sig"];

describe("inbound with an extension pool", () => {
  let dir: ReturnType<typeof tempDir>;
  let sink: SmtpSink;
  let emu: Emulator;
  let control: EmulatorControl;
  let daemon: Daemon | undefined;
  let ids: string[];

  beforeEach(async () => {
    dir = tempDir("faxbridge-pool-inbound-");
    sink = await new SmtpSink().start();
    emu = await startEmulator({ faxTimings: { queuedMs: 50, pageMs: 50 } });
    control = new EmulatorControl(emu.url);
    ids = [];
    for (const jwt of JWTS) ids.push((await control.request<{ extensionId: string }>("POST", "/emulator/extensions", { jwt })).extensionId);
    const file = join(dir.path, "faxbridge.yaml");
    writeFileSync(file, `inbound:\n  routes:\n    - extension: "${ids[1] ?? ""}"\n      mailTo: ["second@example.com"]\n`);
    const config = loadConfig({
      file,
      env: {
        FAXBRIDGE_DATA_DIR: dir.path,
        FAXBRIDGE_SMTP_PORT: "0",
        FAXBRIDGE_HTTP_PORT: "0",
        FAXBRIDGE_MAIL_URL: sink.url,
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "websocket",
        FAXBRIDGE_INBOUND_SYNC_INTERVAL_SECONDS: "3600",
        FAXBRIDGE_INBOUND_TO: "faxes@example.com",
        FAXBRIDGE_LOG_LEVEL: "silent",
        RC_SERVER_URL: emu.url,
        RC_MEDIA_ORIGINS: emu.mediaUrl,
        RC_CLIENT_ID: "pool-client",
        RC_CLIENT_SECRET: "pool-secret",
        RC_JWT: JWTS.join(","),
      },
    });
    daemon = await startDaemon(config, { logger: silentLogger() });
  });

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    await emu.close();
    await sink.close();
    dir.cleanup();
  });

  interface Sub {
    extensionId: string;
    transportType: string;
    status: string;
  }

  it("each member subscribes with its own session; a fax on member 2 is mailed to its extension's route, once", async () => {
    await waitFor(
      async () => {
        const subs = await control.request<Sub[]>("GET", "/emulator/subscriptions");
        return ids.every((id) => subs.some((s) => s.extensionId === id && s.transportType === "WebSocket" && s.status === "Active"));
      },
      { timeoutMs: 20_000, what: "a WebSocket subscription per pool member" },
    );
    await control.request("POST", `/emulator/inbound-faxes?extensionId=${ids[1] ?? ""}&from=%2B12125550123`, renderablePdf("to member 2"), "application/pdf");
    await control.request("POST", `/emulator/inbound-faxes?extensionId=${ids[0] ?? ""}&from=%2B12125550124`, renderablePdf("to member 1"), "application/pdf");
    await waitFor(() => sink.messages.length >= 2, { timeoutMs: 20_000, what: "both received faxes mailed" });
    const second = sink.messages.filter((m) => m.to.includes("second@example.com"));
    const first = sink.messages.filter((m) => m.to.includes("faxes@example.com"));
    expect(second).toHaveLength(1);
    expect(first).toHaveLength(1);
    const calls = await control.calls();
    expect(calls.byStatus["403"] ?? 0).toBe(0);
  });
});
