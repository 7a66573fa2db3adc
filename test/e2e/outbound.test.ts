/**
 * Email → fax end to end over real loopback servers: nodemailer → our SMTP
 * server → spool/store → OutboundWorker → RingCentralClient → emulator, and
 * the sender report → SmtpSink.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { makePdf, OutboundHarness, sha256, type HarnessOptions } from "./outbound-harness.js";

let h: OutboundHarness | undefined;

async function harness(opts: HarnessOptions = {}): Promise<OutboundHarness> {
  h = await new OutboundHarness(opts).start();
  return h;
}

afterEach(async () => {
  await h?.close();
  h = undefined;
});

function header(h: OutboundHarness, i: number, name: string): unknown {
  return h.sink.messages[i]?.parsed.headers.get(name);
}

describe("email → fax", () => {
  it("faxes the documents in order, byte-identical, and threads a 'sent' report to the sender as soon as the fax ends Sent", async () => {
    const t = await harness();
    const a = makePdf("first");
    const b = makePdf("second");
    const id = await t.send({
      to: "15551234567@fax.local",
      messageId: "<happy-1@example.com>",
      references: "<earlier@example.com>",
      subject: "Contract",
      text: "Please fax.",
      attachments: [
        { filename: "a.pdf", content: a, contentType: "application/pdf" },
        { filename: "b.pdf", content: b, contentType: "application/pdf" },
      ],
    });
    const job = await t.waitState(id, "notified");
    expect(job.rcMessageId).not.toBeNull();
    // RingCentral reports a fax that went through as Sent: final at once, no wait for a Delivered that never comes.
    expect(job.status).toEqual([{ e164: "+15551234567", status: "Sent" }]);
    expect(t.events("fax.status_timeout")).toHaveLength(0);
    expect(await t.metrics.registry.metrics()).toMatch(/faxbridge_faxes_final_total\{status="Sent",error_code="none"\} 1/);

    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(1);
    expect(faxes[0]?.to).toEqual([{ phoneNumber: "+15551234567" }]);
    expect(faxes[0]?.attachments.map((x) => x.sha256)).toEqual([sha256(a), sha256(b)]);
    expect(faxes[0]?.coverPageText).toContain("Contract");

    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const report = t.sink.messages[0];
    expect(report?.from).toBe("");
    expect(report?.to).toEqual(["alice@example.com"]);
    expect(report?.parsed.subject).toMatch(/^Fax to \+1 555-123-4567 sent \(\d+ pages?\)$/);
    expect(report?.parsed.inReplyTo).toBe("<happy-1@example.com>");
    expect(report?.parsed.references).toEqual(["<earlier@example.com>", "<happy-1@example.com>"]);
    expect(header(t, 0, "auto-submitted")).toBe("auto-replied");
    expect(header(t, 0, "x-faxbridge-queue-id")).toBe(id);
    expect(header(t, 0, "x-faxbridge-status")).toBe("delivered");
    expect(header(t, 0, "x-faxbridge-rc-message-id")).toBe(job.rcMessageId);
    expect(report?.parsed.text).toContain("a.pdf");
    // Only the transmitted copy's first page (fax.reportTransmittedCopy default), not the documents.
    expect(report?.parsed.attachments.map((a) => a.filename)).toEqual(["transmitted-fax-page-1.pdf"]);

    // the spool is cleaned once notified (right after the report went out, so wait for it)
    await waitFor(() => !existsSync(t.stores.messagePath(id)) && !existsSync(join(t.stores.workDir, id)), 5000, "spool cleanup");
    expect(t.events("fax.submitted")).toHaveLength(1);
    expect(t.events("report.sent")).toHaveLength(1);
  });

  it("the report lists each document under the very name it was uploaded to RingCentral under", async () => {
    const t = await harness();
    const id = await t.send({
      to: "15551234567@fax.local",
      subject: "Names",
      text: "See attached.",
      attachments: [
        { filename: "Invoice & Co #7.pdf", content: makePdf("one"), contentType: "application/pdf" },
        { filename: "Größe – Übersicht.pdf", content: makePdf("two"), contentType: "application/pdf" },
        { filename: "invoice _ co _7.pdf", content: makePdf("three"), contentType: "application/pdf" },
      ],
    });
    await t.waitState(id, "notified");
    const faxes = await t.sentFaxes();
    const uploaded = faxes[0]?.attachments.map((x) => x.filename) ?? [];
    expect(uploaded).toEqual(["Invoice _ Co _7.pdf", "Größe _ Übersicht.pdf", "invoice _ co _7_2.pdf"]);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const text = t.sink.messages[0]?.parsed.text ?? "";
    for (const name of uploaded) expect(text).toContain(name);
    expect(text).not.toContain("Invoice & Co");
  });

  it("one fax request for several recipients; the report counts outcomes and explains the failure", async () => {
    const t = await harness();
    const id = await t.send({
      to: ["15551234567@fax.local", "15551234568@fax.local", "15550000001@fax.local"],
      attachments: [{ filename: "a.pdf", content: makePdf(), contentType: "application/pdf" }],
    });
    const job = await t.waitState(id, "notified");
    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(1);
    expect(faxes[0]?.to.map((x) => x.phoneNumber).sort()).toEqual(["+15550000001", "+15551234567", "+15551234568"]);
    expect(job.status).toContainEqual({ e164: "+15550000001", status: "SendingFailed", faxErrorCode: "LineBusy" });
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toBe("Fax to 3 recipients: 2 sent, 1 failed");
    expect(t.sink.messages[0]?.parsed.text).toContain("+1 555-000-0001: failed: line busy (LineBusy)");
    expect(header(t, 0, "x-faxbridge-status")).toBe("partial");
  });

  it("a failed fax (line busy) gets a report that says so in words", async () => {
    const t = await harness();
    const id = await t.send({ to: "15550000001@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await t.waitState(id, "notified");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toBe("Fax to +1 555-000-0001 failed: line busy");
    expect(t.sink.messages[0]?.parsed.text).toContain("busy. Send the email again in a few minutes.");
  });

  it("refuses an unsupported file type with a notice naming the file and the rule; nothing is faxed", async () => {
    const t = await harness();
    const id = await t.send({
      to: "15551234567@fax.local",
      messageId: "<heic@example.com>",
      attachments: [{ filename: "scan.heic", content: Buffer.from("\0\0\0\x18ftypheic\0\0\0\0mif1heic"), contentType: "image/heic" }],
    });
    const job = await t.waitState(id, "notified");
    expect(job.errorCode).toBe("unsupported-type");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the notice");
    expect(t.sink.messages[0]?.parsed.subject).toBe("Fax not sent: an attachment is not a supported file type");
    expect(t.sink.messages[0]?.parsed.inReplyTo).toBe("<heic@example.com>");
    expect(header(t, 0, "x-faxbridge-rule")).toBe("unsupported-type");
    expect(header(t, 0, "x-faxbridge-status")).toBe("refused");
    expect(await t.sentFaxes()).toHaveLength(0);
  });

  it("refuses Outlook Rich Text (TNEF) mail", async () => {
    const t = await harness();
    const raw = readFileSync(new URL("../fixtures/mail/tnef.eml", import.meta.url));
    const id = await t.send({ envelope: { from: "outlook@example.com", to: ["15551234567@fax.local"] }, raw });
    const job = await t.waitState(id, "notified");
    expect(job.errorCode).toBe("tnef");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the notice");
    const notice = t.sink.messages[0];
    expect(notice?.to).toEqual(["outlook@example.com"]);
    expect(notice?.parsed.subject).toBe("Fax not sent: the attachment is in Outlook Rich Text format (winmail.dat)");
    expect(notice?.parsed.inReplyTo).toBe("<tnef-1@example.com>");
    expect(notice?.parsed.text).toContain("winmail.dat");
    expect(await t.sentFaxes()).toHaveLength(0);
  });

  it("refuses documents over 50 MB", async () => {
    const t = await harness();
    const size = 50 * 1024 * 1024 + 1;
    let sent = 0;
    const big = new Readable({
      read() {
        if (sent === 0) {
          this.push(Buffer.from("%PDF-1.4\n"));
          sent += 9;
          return;
        }
        const n = Math.min(1024 * 1024, size - sent);
        if (n <= 0) {
          this.push(null);
          return;
        }
        sent += n;
        this.push(Buffer.alloc(n, 0x20));
      },
    });
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "huge.pdf", content: big, contentType: "application/pdf" }] });
    const job = await t.waitState(id, "notified", 30_000);
    expect(job.errorCode).toBe("too-large");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the notice");
    expect(t.sink.messages[0]?.parsed.subject).toBe("Fax not sent: an attachment is too large (50 MB per fax)");
    expect(await t.sentFaxes()).toHaveLength(0);
  }, 60_000);

  it("does not fax the same Message-ID to the same recipients twice, and sends one report", async () => {
    const t = await harness();
    const mail = {
      to: "15551234567@fax.local",
      messageId: "<dup@example.com>",
      attachments: [{ filename: "a.pdf", content: makePdf() }],
    };
    const first = await t.send(mail);
    await t.waitState(first, "notified");
    const second = await t.send(mail);
    const dup = await t.waitState(second, "cancelled");
    expect(dup.errorCode).toBe("duplicate");
    expect(dup.errorText).toBe(`duplicate of ${first}`);
    expect(await t.sentFaxes()).toHaveLength(1);
    expect(t.events("job.duplicate")).toHaveLength(1);
    expect(t.sink.messages).toHaveLength(1);
    expect(existsSync(t.stores.messagePath(second))).toBe(false);
  });

  it("sends no report to the null sender <>", async () => {
    const t = await harness();
    const id = await t.send({
      envelope: { from: "", to: ["15551234567@fax.local"] },
      attachments: [{ filename: "a.pdf", content: makePdf() }],
    });
    const job = await t.waitState(id, "notified");
    expect(job.mailFrom).toBe("");
    expect(t.events("report.suppressed")[0]?.["reason"]).toBe("null-sender");
    expect(await t.sentFaxes()).toHaveLength(1);
    expect(t.sink.messages).toHaveLength(0);
  });

  it("sends no report to auto-submitted mail", async () => {
    const t = await harness();
    const id = await t.send({
      to: "15551234567@fax.local",
      headers: { "Auto-Submitted": "auto-generated" },
      attachments: [{ filename: "scan.heic", content: Buffer.from("x") }],
    });
    await t.waitState(id, "notified");
    expect(t.events("report.suppressed")[0]?.["reason"]).toBe("auto-submitted");
    expect(t.sink.messages).toHaveLength(0);
  });

  it("retries a 429 storm from the queue, honouring Retry-After: one fax, delivered", async () => {
    const t = await harness();
    await t.fault({ group: "Heavy", count: 2, kind: "429", retryAfter: 1 });
    const started = Date.now();
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified", 15_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(job.attempts).toBeGreaterThanOrEqual(2);
    expect(job.status).toEqual([{ e164: "+15551234567", status: "Sent" }]);
    expect(await t.sentFaxes()).toHaveLength(1);
    expect(t.events("fax.deferred").length).toBeGreaterThanOrEqual(2);
  });

  it("after a 5xx looks for the fax before resending, then sends it once", async () => {
    const t = await harness();
    await t.fault({ group: "Heavy", count: 1, kind: "status", status: 503 });
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await t.waitState(id, "notified", 15_000);
    expect(await t.sentFaxes()).toHaveLength(1);
    const reconciled = t.events("fax.reconciled");
    expect(reconciled.map((l) => l["outcome"])).toEqual(["not_found"]);
    const calls = await t.calls();
    expect(Object.entries(calls.byRoute).some(([route, n]) => route.includes("message-store") && route.startsWith("GET") && n > 0)).toBe(true);
  });

  it("fails permanently on MSG-348 from RingCentral and tells the sender in words", async () => {
    // .mcw passes preflight, but the emulator (like RingCentral may) refuses its media type with MSG-348.
    const t = await harness();
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "notes.mcw", content: Buffer.from("plain words") }] });
    const job = await t.waitState(id, "notified");
    expect(job.errorCode).toBe("MSG-348");
    expect(job.attempts).toBe(0);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toBe("Fax to +1 555-123-4567 not sent: unsupported attachment type");
    expect(header(t, 0, "x-faxbridge-error-code")).toBe("MSG-348");
    expect(await t.sentFaxes()).toHaveLength(0);
  });

  it("forwards a stored fax with X-Fax-Forward-Of (no upload), and reports an unknown id in words", async () => {
    const t = await harness();
    const first = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const original = await t.waitState(first, "notified");
    const fwd = await t.send({ to: "15557654321@fax.local", headers: { "X-Fax-Forward-Of": original.rcMessageId ?? "" }, text: "" });
    await t.waitState(fwd, "notified");
    const faxes = await t.sentFaxes();
    expect(faxes).toHaveLength(2);
    expect(faxes[1]?.layout).toBe("resend");
    expect(faxes[1]?.originalMessageId).toBe(original.rcMessageId);
    expect(faxes[1]?.to).toEqual([{ phoneNumber: "+15557654321" }]);

    const bad = await t.send({ to: "15557654321@fax.local", headers: { "X-Fax-Forward-Of": "999999" }, text: "" });
    const job = await t.waitState(bad, "notified");
    expect(job.errorCode).toBe("CMN-102");
    await waitFor(() => t.sink.messages.length === 3, 5000, "three reports");
    expect(t.sink.messages.map((m) => m.parsed.subject)).toContain("Fax to +1 555-765-4321 not sent: not found");
  });

  it("passes X-Fax-Send-Time to RingCentral as sendTime and sends an acceptance notice when configured", async () => {
    const t = await harness({ fax: { notifyOnAccept: true } });
    const sendTime = new Date(Date.now() + 1500).toISOString().replace(/\.\d{3}Z$/, "Z");
    const id = await t.send({
      to: "15551234567@fax.local",
      headers: { "X-Fax-Send-Time": sendTime },
      attachments: [{ filename: "a.pdf", content: makePdf() }],
    });
    await t.waitState(id, "notified", 15_000);
    const faxes = await t.sentFaxes();
    expect(Date.parse(faxes[0]?.sendTime ?? "")).toBe(Date.parse(sendTime));
    await waitFor(() => t.sink.messages.length === 2, 5000, "notice and report");
    const subjects = t.sink.messages.map((m) => m.parsed.subject);
    expect(subjects[0]).toMatch(/^Fax to \+1 555-123-4567 scheduled for /);
    expect(subjects[1]).toMatch(/ sent /);
    expect(t.sink.messages[0]?.parsed.messageId).not.toBe(t.sink.messages[1]?.parsed.messageId);
  });

  it("retries a report after a temporary mail failure; logs report.failed and still finishes on a permanent one", async () => {
    const t = await harness();
    t.sink.failNext(1, 451);
    const a = await t.send({ to: "15551234567@fax.local", messageId: "<r1@example.com>", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await t.waitState(a, "notified");
    expect(t.events("report.deferred")).toHaveLength(1);
    expect(t.sink.messages).toHaveLength(1);

    t.sink.failNext(1, 550);
    const b = await t.send({ to: "15551234567@fax.local", messageId: "<r2@example.com>", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(b, "notified");
    const failed = t.events("report.failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]?.level).toBe("error");
    expect(job.faxRequest).toMatchObject({ report: { outcome: "failed" } });
    expect(t.sink.messages).toHaveLength(1);
  });
});
