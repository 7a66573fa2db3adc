/**
 * Admin alerts (mail.adminTo): a mail per event, a digest when events come
 * faster than one per window; end to end, a received fax the mail server
 * refuses (dead letter) reaches the administrator.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { createMailSender } from "../../src/mail/transport.js";
import { Metrics } from "../../src/metrics.js";
import { AdminAlerts } from "../../src/ops/alerts.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { sandboxEnv } from "../helpers/config.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("admin alerts", () => {
  it("mails the first event at once and batches the rest of the window into one digest", async () => {
    const sink = await new SmtpSink().start();
    cleanups.push(() => sink.close());
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const mail = createMailSender(sink.url, dir.path, silentLogger());
    cleanups.push(() => mail.close());
    const metrics = new Metrics({ defaultMetrics: false });
    const alerts = new AdminAlerts({ adminTo: ["it@example.com"], from: "fax@example.com", mail, logger: silentLogger(), metrics, hostname: "gw1", windowMs: 400 });
    cleanups.push(() => alerts.close());
    for (let i = 1; i <= 4; i++) alerts.notify({ kind: "job_failed", summary: `fax job J${i} failed for good`, details: { job: `J${i}`, reason: "invalid number" } });
    alerts.notify({ kind: "rc_auth_refused", summary: "RingCentral refused faxbridge's credentials", details: { status: 400 } });

    await waitFor(() => sink.messages.length >= 3, { timeoutMs: 5_000, what: "two immediate mails and one digest" });
    const subjects = sink.messages.map((m) => m.parsed.subject ?? "");
    expect(subjects).toContain("[faxbridge gw1] fax job J1 failed for good");
    expect(subjects).toContain("[faxbridge gw1] RingCentral refused faxbridge's credentials");
    const digest = sink.messages.find((m) => /3 events/.test(m.parsed.subject ?? ""));
    expect(digest?.parsed.text).toContain("J2");
    expect(digest?.parsed.text).toContain("J4");
    expect(digest?.to).toEqual(["it@example.com"]);
    expect(digest?.parsed.headers.get("auto-submitted")).toBe("auto-generated");
    expect(sink.messages).toHaveLength(3);
    expect(await metrics.registry.getSingleMetricAsString("faxbridge_admin_alerts_total")).toMatch(/kind="job_failed"} 4/);
  });

  it("tells the administrator when a received fax is dead-lettered because the mail server refuses the mailbox", async () => {
    const sink = await new SmtpSink().start();
    cleanups.push(() => sink.close());
    sink.refuseRecipients.add("fax-inbox@example.com");
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const config = loadConfig({
      env: sandboxEnv(dir.path, {
        FAXBRIDGE_MAIL_URL: sink.url,
        FAXBRIDGE_MAIL_FROM: "faxbridge <fax@example.com>",
        FAXBRIDGE_MAIL_ADMIN_TO: "it@example.com",
        FAXBRIDGE_INBOUND_TO: "fax-inbox@example.com",
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
        FAXBRIDGE_INBOUND_SYNC_INTERVAL_SECONDS: "1",
        FAXBRIDGE_LOG_LEVEL: "silent",
      }),
    });
    const daemon: Daemon = await startDaemon(config, { logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
    cleanups.push(() => daemon.close());
    const res = await fetch(`${daemon.emulatorUrl ?? ""}/emulator/inbound-faxes?from=%2B12125550123&to=%2B16505550100`, {
      method: "POST",
      headers: { "content-type": "application/pdf" },
      body: Buffer.from("%PDF-1.4\n1 0 obj<</Type /Page>>endobj\ntrailer<<>>\n%%EOF\n"),
    });
    expect(res.ok).toBe(true);
    const alert = await waitFor(() => sink.messages.find((m) => m.to.includes("it@example.com")), { timeoutMs: 20_000, what: "the dead-letter alert" });
    expect(alert.parsed.subject).toContain("received fax from +12125550123 could not be mailed");
    expect(alert.parsed.text).toMatch(/550/);
    expect(alert.parsed.text).toContain("faxbridge inbound redeliver");
    expect(alert.parsed.attachments).toEqual([]);
  });
});
