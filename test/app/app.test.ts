import { readFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

const PDF = Buffer.from("%PDF-1.4\n1 0 obj<</Type /Page>>endobj\ntrailer<<>>\n%%EOF\n");

function auditLines(dataDir: string): Record<string, unknown>[] {
  try {
    return readFileSync(join(dataDir, "audit.jsonl"), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
}

describe("the composed daemon (sandbox mode, in process)", () => {
  let dir: ReturnType<typeof tempDir>;
  let sink: SmtpSink;
  let daemon: Daemon | undefined;
  let metrics: Metrics;

  beforeEach(async () => {
    dir = tempDir();
    sink = await new SmtpSink().start();
    metrics = new Metrics({ defaultMetrics: false });
    const config = loadConfig({
      env: {
        FAXBRIDGE_DATA_DIR: dir.path,
        FAXBRIDGE_SMTP_PORT: "0",
        FAXBRIDGE_HTTP_PORT: "0",
        FAXBRIDGE_EMULATOR_PORT: "0",
        FAXBRIDGE_MAIL_URL: sink.url,
        FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "200ms",
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
        FAXBRIDGE_INBOUND_SYNC_INTERVAL_SECONDS: "1",
        FAXBRIDGE_INBOUND_TO: "faxes@example.com",
        FAXBRIDGE_LOG_LEVEL: "silent",
      },
    });
    daemon = await startDaemon(config, { logger: silentLogger(), metrics });
  });

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    await sink.close();
    dir.cleanup();
  });

  it("faxes a mail, reports to the sender, mails a received fax, and audits both without contents", async () => {
    const d = daemon!;
    const transport = nodemailer.createTransport({ host: "127.0.0.1", port: d.smtp.port, secure: false, ignoreTLS: true });
    const info = await transport.sendMail({
      from: "alice@example.com",
      to: "15551234567@fax.local",
      subject: "Confidential lab results",
      text: "Patient details on page 2.",
      attachments: [{ filename: "results.pdf", content: PDF, contentType: "application/pdf" }],
    });
    expect(info.response).toMatch(/^250 2\.6\.0 Queued as [0-9a-z]{13}-[0-9a-f]{8}$/);

    const report = await waitFor(() => sink.messages.find((m) => m.to.includes("alice@example.com")), 20_000, "the sender report");
    // Sandbox mode with a real mail server: the subject says nothing was faxed (issue 8).
    expect(report.parsed.subject).toBe("[SANDBOX, not faxed] Fax to +1 555-123-4567 sent (1 page)");
    expect(report.parsed.inReplyTo).toBe(info.messageId);

    const res = await fetch(`${d.emulatorUrl ?? ""}/emulator/inbound-faxes?from=%2B12125550123&to=%2B16505550100`, {
      method: "POST",
      headers: { "content-type": "application/pdf" },
      body: PDF,
    });
    expect(res.status).toBe(200);
    const received = await waitFor(() => sink.messages.find((m) => m.to.includes("faxes@example.com")), 20_000, "the received fax mail");
    expect(received.parsed.attachments[0]?.content.equals(PDF)).toBe(true);

    const lines = await waitFor(() => {
      const l = auditLines(dir.path);
      return l.length >= 2 ? l : undefined;
    }, 10_000, "two audit lines");
    expect(lines.find((l) => l.type === "fax.outbound")).toMatchObject({
      sender: "alice@example.com",
      recipients: [{ number: "+15551234567", status: "Sent" }],
      outcome: "final",
      report: "sent",
    });
    expect(lines.find((l) => l.type === "fax.inbound")).toMatchObject({ from: "+12125550123", mailTo: ["faxes@example.com"], outcome: "delivered" });
    const text = readFileSync(join(dir.path, "audit.jsonl"), "utf8");
    expect(text).not.toContain("Confidential");
    expect(text).not.toContain("Patient");

    const exposition = await (await fetch(`http://127.0.0.1:${d.http.port}/metrics`)).text();
    expect(exposition).toMatch(/faxbridge_mails_received_total 1/);
    expect(exposition).toMatch(/faxbridge_inbound_faxes_delivered_total 1/);
    expect(exposition).toMatch(/faxbridge_ringcentral_calls_total\{group="Heavy",operation="[^"]+",status="200",extension="[^"]+"\} 1/);
    transport.close();
  });
});
