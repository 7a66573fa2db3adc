import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import nodemailer from "nodemailer";
import { simpleParser, type ParsedMail } from "mailparser";
import { FAX_ERROR_CODES, FAX_ERROR_TEXT, describeFaxError } from "../../src/outbound/fax-errors.js";
import { composeReport, reportMessageId, suppressReason, type ReportInput } from "../../src/outbound/report.js";
import type { OutgoingMail } from "../../src/mail/transport.js";

const FROM = "Fax Gateway <faxbridge@gw.example>";
const base: ReportInput = {
  kind: "final",
  queueId: "0mhx8f2k1a00c-3f9d2a7b",
  to: "alice@example.com",
  recipients: [{ e164: "+15551234567", status: "Delivered" }],
  rcMessageId: "3000000001",
  pages: 3,
  receivedAt: Date.parse("2026-09-01T08:00:00Z"),
  submittedAt: Date.parse("2026-09-01T08:00:05Z"),
  completedAt: Date.parse("2026-09-01T08:03:00Z"),
  documents: [{ name: "contract.pdf", size: 12_345, path: "/nonexistent/contract.pdf", contentType: "application/pdf" }],
  original: { messageId: "<orig@example.com>", references: ["<a@example.com> <b@example.com>"], subject: "Contract" },
};

async function render(mail: OutgoingMail): Promise<{ raw: string; parsed: ParsedMail; envelope: { from: string | false; to: string[] } }> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });
  const info = (await t.sendMail(mail)) as unknown as { message: Buffer; envelope: { from: string | false; to: string[] } };
  return { raw: info.message.toString("utf8"), parsed: await simpleParser(info.message), envelope: info.envelope };
}

describe("composeReport", () => {
  it("delivered: subject, threading, machine headers, null envelope sender", async () => {
    const { mail, status, subject } = composeReport(base, { from: FROM, attachDocuments: false });
    expect(status).toBe("delivered");
    expect(subject).toBe("Fax to +1 555-123-4567 delivered (3 pages)");
    const { parsed, envelope } = await render(mail);
    expect(envelope.from).toBe(false);
    expect(envelope.to).toEqual(["alice@example.com"]);
    expect(parsed.subject).toBe(subject);
    expect(parsed.inReplyTo).toBe("<orig@example.com>");
    expect(parsed.references).toEqual(["<a@example.com>", "<b@example.com>", "<orig@example.com>"]);
    expect(parsed.messageId).toBe("<faxbridge.report.0mhx8f2k1a00c-3f9d2a7b@gw.example>");
    expect(parsed.headers.get("auto-submitted")).toBe("auto-replied");
    expect(parsed.headers.get("x-faxbridge-queue-id")).toBe(base.queueId);
    expect(parsed.headers.get("x-faxbridge-status")).toBe("delivered");
    expect(parsed.headers.get("x-faxbridge-rc-message-id")).toBe("3000000001");
    expect(parsed.headers.get("x-faxbridge-pages")).toBe("3");
    expect(parsed.attachments).toHaveLength(0);
    expect(parsed.text).toContain("+1 555-123-4567: delivered");
    expect(parsed.text).toContain("contract.pdf (12 KB)");
    expect(parsed.text).toContain("Queue id:");
    expect(parsed.text).toMatch(/RingCentral message id: +3000000001/);
    expect(parsed.text).toMatch(/Submitted to RingCentral: +2026-09-01 08:00:05 UTC/);
    expect(parsed.text).toContain("Completed:");
    expect(parsed.html).toContain("<table");
  });

  it("the Message-ID is stable per job and kind", () => {
    const a = composeReport(base, { from: FROM, attachDocuments: false }).mail.messageId;
    const b = composeReport({ ...base, recipients: [{ e164: "+15551234567", status: "SendingFailed", faxErrorCode: "LineBusy" }] }, { from: FROM, attachDocuments: false }).mail.messageId;
    expect(a).toBe(b);
    expect(reportMessageId(base.queueId, "accepted", FROM)).not.toBe(a);
    expect(reportMessageId(base.queueId, "final", "no-angle@x.org")).toBe(`<faxbridge.report.${base.queueId}@x.org>`);
  });

  it("failed recipient: the faxErrorCode in words", async () => {
    const { mail, status, subject } = composeReport(
      { ...base, recipients: [{ e164: "+15550000001", status: "SendingFailed", faxErrorCode: "LineBusy" }] },
      { from: FROM, attachDocuments: false },
    );
    expect(status).toBe("failed");
    expect(subject).toBe("Fax to +1 555-000-0001 failed: line busy");
    const { parsed } = await render(mail);
    expect(parsed.text).toContain("failed: line busy (LineBusy)");
    expect(parsed.text).toContain(FAX_ERROR_TEXT.LineBusy.advice);
  });

  it("redialled recipients (fax.redial): attempts per recipient, and why a redial was not made, in text and HTML", () => {
    const { mail, subject } = composeReport(
      {
        ...base,
        recipients: [
          { e164: "+15551234567", status: "Sent" },
          { e164: "+15550000001", status: "SendingFailed", faxErrorCode: "LineBusy" },
        ],
        attempts: [
          { e164: "+15551234567", attempts: 2 },
          { e164: "+15550000001", attempts: 2, note: "not redialled: over the hourly page quota." },
        ],
      },
      { from: FROM, attachDocuments: false },
    );
    expect(subject).toBe("Fax to 2 recipients: 1 sent, 1 failed");
    expect(mail.text).toContain("+1 555-123-4567: sent after 2 attempts");
    expect(mail.text).toContain("+1 555-000-0001: failed: line busy (LineBusy) after 2 attempts\n    not redialled: over the hourly page quota. The receiving fax line was busy.");
    expect(mail.html).toContain("failed: line busy (LineBusy) after 2 attempts<br><small>not redialled: over the hourly page quota.");
  });

  it("several recipients: counts in the subject, one line each", async () => {
    const { mail, status, subject } = composeReport(
      {
        ...base,
        recipients: [
          { e164: "+15551234567", status: "Delivered" },
          { e164: "+15551234568", status: "Delivered" },
          { e164: "+15550000002", status: "DeliveryFailed", faxErrorCode: "NoAnswer" },
        ],
      },
      { from: FROM, attachDocuments: false },
    );
    expect(status).toBe("partial");
    expect(subject).toBe("Fax to 3 recipients: 2 delivered, 1 failed");
    const { parsed } = await render(mail);
    expect(parsed.text).toContain("+1 555-000-0002: failed: no answer (NoAnswer)");
  });

  it("refusal: names the file and the rule", async () => {
    const { mail, status, subject } = composeReport(
      {
        ...base,
        kind: "failed",
        recipients: [{ e164: "+15551234567", status: "Unknown" }],
        documents: [],
        refusal: { rule: "unsupported-type", filename: "scan.heic", message: '"scan.heic" is a HEIC image, which RingCentral cannot fax.' },
      },
      { from: FROM, attachDocuments: false },
    );
    expect(status).toBe("refused");
    expect(subject).toBe("Fax not sent: an attachment is not a supported file type");
    const { parsed } = await render(mail);
    expect(parsed.headers.get("x-faxbridge-rule")).toBe("unsupported-type");
    expect(parsed.text).toContain("HEIC image");
    expect(parsed.text).toContain("Rule:");
  });

  it("API failure: reason in the subject, advice in the body, code in a header", async () => {
    const { mail, subject } = composeReport(
      { ...base, kind: "failed", failure: { code: "MSG-348", reason: "unsupported attachment type", advice: "Send it as PDF." } },
      { from: FROM, attachDocuments: false },
    );
    expect(subject).toBe("Fax to +1 555-123-4567 not sent: unsupported attachment type");
    const { parsed } = await render(mail);
    expect(parsed.headers.get("x-faxbridge-error-code")).toBe("MSG-348");
    expect(parsed.text).toContain("Send it as PDF.");
  });

  it("acceptance notice and scheduled sending", () => {
    expect(composeReport({ ...base, kind: "accepted", recipients: [{ e164: "+15551234567", status: "Queued" }] }, { from: FROM, attachDocuments: true }).subject).toBe(
      "Fax to +1 555-123-4567 accepted, sending",
    );
    const scheduled = composeReport(
      { ...base, kind: "accepted", sendTime: "2026-09-02T08:30:00Z", recipients: [{ e164: "+15551234567", status: "Queued" }] },
      { from: FROM, attachDocuments: true },
    );
    expect(scheduled.subject).toBe("Fax to +1 555-123-4567 scheduled for 2026-09-02 08:30:00 UTC");
    expect(scheduled.mail.attachments).toBeUndefined();
  });

  it("status unknown after the timeout", () => {
    const r = composeReport({ ...base, recipients: [{ e164: "+15551234567", status: "Queued" }], statusProblem: "no final status after 24 hours" }, { from: FROM, attachDocuments: false });
    expect(r.status).toBe("unknown");
    expect(r.subject).toBe("Fax to +1 555-123-4567: status unknown");
  });

  it("attaches the documents only when asked to", () => {
    expect(composeReport(base, { from: FROM, attachDocuments: false }).mail.attachments).toBeUndefined();
    expect(composeReport(base, { from: FROM, attachDocuments: true }).mail.attachments).toEqual([
      { filename: "contract.pdf", path: "/nonexistent/contract.pdf", contentType: "application/pdf" },
    ]);
  });

  it("no threading headers without an original Message-ID", () => {
    const { mail } = composeReport({ ...base, original: { references: [] } }, { from: FROM, attachDocuments: false });
    expect(mail.inReplyTo).toBeUndefined();
    expect(mail.references).toBeUndefined();
  });
});

describe("suppressReason", () => {
  const cases: [string, string, Parameters<typeof suppressReason>[1], string | undefined][] = [
    ["ordinary sender", "alice@example.com", { isReport: false }, undefined],
    ["null sender", "", undefined, "null-sender"],
    ["mailer-daemon", "MAILER-DAEMON@mx.example.com", undefined, "mailer-daemon"],
    ["postmaster", "postmaster@example.com", undefined, "mailer-daemon"],
    ["Auto-Submitted: auto-generated", "alice@example.com", { autoSubmitted: "auto-generated" }, "auto-submitted"],
    ["Auto-Submitted: no", "alice@example.com", { autoSubmitted: "no" }, undefined],
    ["X-Auto-Response-Suppress: All", "alice@example.com", { xAutoResponseSuppress: "All" }, "auto-response-suppress"],
    ["X-Auto-Response-Suppress: OOF, AutoReply", "alice@example.com", { xAutoResponseSuppress: "OOF, AutoReply" }, "auto-response-suppress"],
    ["X-Auto-Response-Suppress: OOF", "alice@example.com", { xAutoResponseSuppress: "OOF" }, undefined],
    ["multipart/report", "alice@example.com", { isReport: true }, "report"],
  ];
  it.each(cases)("%s", (_name, sender, meta, want) => {
    expect(suppressReason(sender, meta)).toBe(want);
  });
});

describe("fax error words", () => {
  it("has a short phrase and an actionable sentence for every code", () => {
    const bad = FAX_ERROR_CODES.filter((code) => {
      const t = describeFaxError(code);
      return !/^[A-Za-z][^.]*$/.test(t.short) || !/\.$/.test(t.advice);
    });
    expect(bad).toEqual([]);
    expect(describeFaxError("SomethingNew").advice).toContain("SomethingNew");
  });

  const spec = "/work/shared/ringcentral/rc-public-openapi.yml";
  it.skipIf(!existsSync(spec))("covers every FaxErrorCodeEnum value of the API spec", () => {
    const text = readFileSync(spec, "utf8");
    const block = /\n {4}FaxErrorCodeEnum:\n {6}type: string\n {6}enum:\n((?: {8}- \S+\n)+)/.exec(text);
    expect(block).not.toBeNull();
    const values = (block?.[1] ?? "").split("\n").map((l) => l.replace(/^\s*- /, "").trim()).filter(Boolean);
    expect(values.length).toBeGreaterThan(30);
    expect([...FAX_ERROR_CODES].sort()).toEqual([...values].sort());
  });
});

describe("report subjects carry no attacker text", () => {
  it("names no file in the subject for any rule, and quotes a long original subject only in part", () => {
    const filename = `${"evil-offer-".repeat(30)}.heic`;
    for (const rule of ["unsupported-type", "mislabeled-type", "too-large", "empty-file", "encrypted-pdf", "embedded-message", "too-many-pages", "page-quota", "something-new"]) {
      const { subject, mail } = composeReport(
        {
          kind: "failed",
          queueId: "q1",
          to: "victim@example.org",
          recipients: [{ e164: "+15551234567", status: "Unknown" }],
          receivedAt: Date.UTC(2030, 0, 1),
          documents: [],
          refusal: { rule, message: `"${filename}" ${"x".repeat(10_000)}`, filename },
          original: { references: [], subject: "S".repeat(100_000) },
        },
        { from: "gw <gw@example.net>", attachDocuments: false },
      );
      expect(subject).not.toContain("evil");
      expect(subject.length).toBeLessThan(80);
      expect(mail.envelope).toEqual({ from: "", to: ["victim@example.org"] });
      expect(String(mail.text).length).toBeLessThan(2_000);
    }
  });
});
