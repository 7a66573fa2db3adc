import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { createMailSender, MailDeliveryError } from "../../src/mail/transport.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";

const mail = {
  messageId: "<fax-123@faxbridge>",
  from: "faxbridge@localhost",
  to: "someone@example.com",
  subject: "Fax from +1 555-123-4567 (1 pages)",
  text: "hello",
  attachments: [{ filename: "fax.pdf", content: Buffer.from("%PDF-1.4\n%%EOF\n"), contentType: "application/pdf" }],
};

describe("mail sender over SMTP", () => {
  let sink: SmtpSink;
  beforeEach(async () => {
    sink = await new SmtpSink().start();
  });
  afterEach(async () => {
    await sink.close();
  });

  it("resolves after the server accepted the message", async () => {
    const sender = createMailSender(sink.url, "/nonexistent", silentLogger());
    const sent = await sender.send(mail);
    expect(sent.response).toMatch(/^250 /);
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]?.parsed.messageId).toBe("<fax-123@faxbridge>");
    expect(sink.messages[0]?.parsed.attachments[0]?.filename).toBe("fax.pdf");
    sender.close();
  });

  it("classifies 4xx as temporary and 5xx as permanent", async () => {
    const sender = createMailSender(sink.url, "/nonexistent", silentLogger());
    sink.failNext(1, 451);
    await expect(sender.send(mail)).rejects.toMatchObject({ name: "MailDeliveryError", temporary: true, responseCode: 451 });
    sink.failNext(1, 550);
    await expect(sender.send(mail)).rejects.toMatchObject({ name: "MailDeliveryError", temporary: false, responseCode: 550 });
    sender.close();
  });

  it("treats an unreachable server as temporary", async () => {
    const port = sink.port;
    await sink.down();
    const sender = createMailSender(`smtp://127.0.0.1:${port}`, "/nonexistent", silentLogger());
    const err: unknown = await sender.send(mail).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MailDeliveryError);
    expect(err).toMatchObject({ temporary: true });
    sender.close();
  });
});

describe("mail sender to a mailbox directory", () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.cleanup());

  it("writes one .eml per Message-ID, even when sent twice", async () => {
    const sender = createMailSender("", join(dir.path, "mailbox"), silentLogger());
    await sender.send(mail);
    await sender.send(mail);
    const files = readdirSync(join(dir.path, "mailbox")).filter((f) => f.endsWith(".eml"));
    expect(files).toHaveLength(1);
    const text = readFileSync(join(dir.path, "mailbox", files[0] as string), "utf8");
    expect(text).toContain("Message-ID: <fax-123@faxbridge>");
    expect(text).toContain("Subject: Fax from +1 555-123-4567 (1 pages)");
    sender.close();
  });
});
