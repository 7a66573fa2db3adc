import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import MailComposer from "nodemailer/lib/mail-composer";
import type Mail from "nodemailer/lib/mailer";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExtractError, parseFaxMail, type FaxEnvelope, type ParseInput, type ParseResult, type ParsedFaxMail } from "../../src/outbound/parse.js";
import { TRUNCATION_MARKER } from "../../src/outbound/text.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "mail");
const NOW = new Date("2026-03-02T12:00:00Z");

let dir: string;
let workDir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "faxbridge-parse-"));
  workDir = join(dir, "work");
  await (await import("node:fs/promises")).mkdir(workDir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const config: ParseInput["config"] = { coverText: "subject+body", coverIndex: -1, resolution: "High", skipInlineImages: true };

const envelope = (...recipients: FaxEnvelope["rcptTo"]): FaxEnvelope => ({
  mailFrom: "alice@example.com",
  rcptTo: recipients.length > 0 ? recipients : [{ address: "15551234567@fax.local", e164: "+15551234567", options: {} }],
});

let counter = 0;
async function compose(options: Mail.Options): Promise<string> {
  counter += 1;
  const path = join(dir, `mail-${counter}.eml`);
  const node = new MailComposer({ from: "Alice <alice@example.com>", to: "15551234567@fax.local", ...options }).compile();
  await pipeline(node.createReadStream(), createWriteStream(path));
  return path;
}

async function parse(rawPath: string, overrides: Partial<ParseInput> = {}): Promise<ParseResult> {
  return parseFaxMail({ rawPath, workDir, envelope: envelope(), config, now: NOW, ...overrides });
}

async function parseOk(rawPath: string, overrides: Partial<ParseInput> = {}): Promise<ParsedFaxMail> {
  const result = await parse(rawPath, overrides);
  if (!result.ok) throw new Error(`expected ok, got refusal ${result.refusal.rule}: ${result.refusal.message}`);
  return result.mail;
}

async function parseRefused(rawPath: string, overrides: Partial<ParseInput> = {}): Promise<{ rule: string; message: string; filename?: string }> {
  const result = await parse(rawPath, overrides);
  if (result.ok) throw new Error("expected a refusal");
  return result.refusal;
}

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
const pdf = (label: string): Buffer => Buffer.from(`%PDF-1.4\n% ${label}\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n`, "latin1");
const png = (): Buffer => Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(300)]);

/**
 * Mails parseFaxMail refuses: what the sender is told (the rule, the file it
 * concerns, words of the message) and that nothing extracted stays behind.
 */
interface RefusalCase {
  name: string;
  raw: () => Promise<string>;
  overrides?: () => Partial<ParseInput>;
  rule: string;
  filename?: string;
  message: (RegExp | string)[];
  /** The work directory is left empty. */
  cleansUp?: boolean;
}

const doc = { filename: "a.pdf", content: pdf("a") };

const REFUSALS: RefusalCase[] = [
  {
    name: "a mail with neither body nor attachment",
    raw: () => compose({ subject: "Empty", text: "   \n  " }),
    rule: "nothing-to-fax",
    message: [/nothing to fax/],
  },
  {
    name: "winmail.dat (TNEF) with an explanation and leaves no files behind (fixture)",
    raw: async () => join(FIXTURES, "tnef.eml"),
    rule: "tnef",
    filename: "winmail.dat",
    message: [/Rich Text/, /HTML or plain text/],
    cleansUp: true,
  },
  {
    name: "a TNEF part even when it comes after a good document, and removes the extracted document",
    raw: () =>
      compose({
        subject: "x",
        text: "x",
        attachments: [
          { filename: "ok.pdf", content: pdf("ok") },
          { filename: "winmail.dat", content: randomBytes(64), contentType: "application/ms-tnef" },
        ],
      }),
    rule: "tnef",
    message: [],
    cleansUp: true,
  },
  {
    name: "a forwarded message/rfc822 part and names it (fixture)",
    raw: async () => join(FIXTURES, "forwarded-rfc822.eml"),
    rule: "embedded-message",
    filename: "Invoice 4711.eml",
    message: ['"Invoice 4711.eml"', "a forwarded email (message/rfc822) cannot be faxed", /attach the document itself/],
  },
  {
    name: "an inline message/rfc822 part too (never folded into the body)",
    raw: () =>
      compose({
        subject: "fwd",
        text: "see below",
        attachments: [{ content: "From: a@b\nSubject: inner\n\ninner body\n", contentType: "message/rfc822", contentDisposition: "inline" }],
      }),
    rule: "embedded-message",
    message: [/message\/rfc822/],
  },
  {
    name: "recipients asking for different resolutions in one mail",
    raw: () => compose({ subject: "s", text: "t", attachments: [doc] }),
    overrides: () => ({
      envelope: envelope(
        { address: "1/res=high@fax.local", e164: "+15551234567", options: { resolution: "High" } },
        { address: "2/res=low@fax.local", e164: "+15557654321", options: { resolution: "Low" } },
      ),
    }),
    rule: "conflicting-address-options",
    message: [/separate mail/],
  },
  {
    name: "X-Fax-Forward-Of together with attachments",
    raw: () => compose({ subject: "resend", text: "t", attachments: [doc], headers: { "X-Fax-Forward-Of": "1234567890" } }),
    rule: "forward-with-attachments",
    filename: "a.pdf",
    message: [],
  },
];

describe("parseFaxMail: refusals", () => {
  it.each(REFUSALS.map((c) => [c.name, c] as const))("refuses %s", async (_name, c) => {
    const refusal = await parseRefused(await c.raw(), c.overrides?.() ?? {});
    expect(refusal).toMatchObject({ rule: c.rule, ...(c.filename !== undefined && { filename: c.filename }) });
    // toMatch: a string is a part of the message, a RegExp a pattern in it.
    for (const m of c.message) expect(refusal.message).toMatch(m);
    expect(c.cleansUp === true ? await readdir(workDir) : []).toEqual([]);
  });
});

describe("parseFaxMail: documents", () => {
  it("extracts attachments in message order, byte-identical, with safe names and upload types", async () => {
    const one = pdf("one");
    const two = png();
    const three = randomBytes(100_000);
    const raw = await compose({
      subject: "Three documents",
      text: "See attached.",
      attachments: [
        { filename: "First & Final #1.pdf", content: one, contentType: "application/pdf" },
        { filename: "../../scan.PNG", content: two, contentType: "image/png" },
        { filename: "report.docx", content: three, contentType: "application/octet-stream" },
      ],
    });
    const mail = await parseOk(raw);
    expect(mail.documents.map((d) => d.filename)).toEqual(["First _ Final _1.pdf", "scan.png", "report.docx"]);
    expect(mail.documents.map((d) => d.originalFilename)).toEqual(["First & Final #1.pdf", "../../scan.PNG", "report.docx"]);
    expect(mail.documents.map((d) => d.contentType)).toEqual([
      "application/pdf",
      "image/png",
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ]);
    for (const [i, content] of [one, two, three].entries()) {
      const doc = mail.documents[i];
      expect(doc?.size).toBe(content.length);
      expect(doc?.sha256).toBe(sha256(content));
      const onDisk = await readFile(doc?.path ?? "");
      expect(sha256(onDisk)).toBe(sha256(content));
      expect(doc?.path.startsWith(workDir)).toBe(true);
    }
  });

  it("names an attachment without a file name document-N.<ext> from its content type", async () => {
    const raw = join(dir, "noname.eml");
    const content = pdf("anon");
    await writeFile(
      raw,
      [
        "From: a@example.com",
        "Subject: x",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        "",
        "--b",
        "Content-Type: text/plain",
        "",
        "body",
        "--b",
        "Content-Type: application/pdf",
        "Content-Transfer-Encoding: base64",
        "",
        content.toString("base64"),
        "--b--",
        "",
      ].join("\r\n"),
    );
    const mail = await parseOk(raw);
    expect(mail.documents).toHaveLength(1);
    expect(mail.documents[0]?.filename).toBe("document-1.pdf");
    expect(mail.documents[0]).not.toHaveProperty("originalFilename");
    expect(mail.documents[0]?.contentType).toBe("application/pdf");
    expect(mail.documents[0]?.sha256).toBe(sha256(content));
  });

  it("faxes the body as a page named by the subject (From/Date/Subject block, then the text) when there is no attachment, without repeating it on the cover", async () => {
    const raw = await compose({ subject: "Note for Dr. Roe", text: "Line one\nLine two: größer\n\n-- \nAlice", date: new Date("2026-12-01T14:05:09Z") });
    const mail = await parseOk(raw, { config: { ...config, stripQuotes: false }, timeZone: "Europe/Berlin" });
    expect(mail.documents).toHaveLength(1);
    const doc = mail.documents[0];
    expect(doc?.filename).toBe("Note for Dr Roe.txt");
    expect(doc?.contentType).toBe("text/plain; charset=utf-8");
    const bytes = await readFile(doc?.path ?? "");
    expect(doc?.size).toBe(bytes.length);
    expect(doc?.sha256).toBe(sha256(bytes));
    const text = bytes.toString("utf8");
    expect(text.startsWith("\uFEFF")).toBe(true);
    expect(text.replace(/^\uFEFF/, "").replace(/\r\n/g, "\n")).toBe(
      "From:    Alice <alice@example.com>\nDate:    2026-12-01 15:05:09 GMT+1\nSubject: Note for Dr. Roe\n" +
        "=".repeat(34) +
        "\n\nLine one\nLine two: größer\n\n-- \nAlice\n",
    );
    expect(mail.request.coverPageText).toBe("Note for Dr. Roe");
  });

  it("converts an HTML-only body with html-to-text (fixture)", async () => {
    const mail = await parseOk(join(FIXTURES, "html-only.eml"), { config: { ...config, coverText: "body" } });
    expect(mail.documents.map((d) => d.filename)).toEqual(["HTML only.txt"]);
    const text = (await readFile(mail.documents[0]?.path ?? "", "utf8")).replace(/\r\n/g, "\n");
    expect(text).toMatch(/^\uFEFF?From: {4}.+\nDate: {4}.+\nSubject: HTML only\n=+\n\n/);
    expect(text).toContain("Order confirmation");
    expect(text).toContain("Dear Dr. Roe,");
    expect(text).toContain("Item one");
    expect(text.slice(text.indexOf("\n\n"))).not.toMatch(/<[a-z]/i);
    expect(text).not.toContain("color: red");
  });

  it("skips the inline logo of a multipart/related HTML body and records it (fixture)", async () => {
    const mail = await parseOk(join(FIXTURES, "related-inline-logo.eml"));
    expect(mail.documents.map((d) => d.filename)).toEqual(["results.pdf"]);
    expect(mail.meta.skipped).toEqual([
      { filename: "quoted reply and signature in the email text", reason: "removed (fax.stripQuotes)" },
      { filename: "logo.png", reason: expect.stringContaining("inline image of the HTML body that looks like signature art") },
    ]);
    // The skipped file is not left behind.
    expect((await readdir(workDir)).sort()).toEqual([expect.stringMatching(/results\.pdf$/)]);
    // The signature is stripped from the cover text (fax.stripQuotes).
    expect(mail.request.coverPageText).toBe("Lab results\n\nResults attached.");
  });

  it("keeps inline images when skipInlineImages is off", async () => {
    const mail = await parseOk(join(FIXTURES, "related-inline-logo.eml"), { config: { ...config, skipInlineImages: false, stripQuotes: false } });
    expect(mail.documents.map((d) => d.filename)).toEqual(["logo.png", "results.pdf"]);
    expect(mail.meta.skipped).toEqual([]);
  });

  it("skips an image referenced by cid from a composed HTML body but keeps a regular image attachment", async () => {
    const raw = await compose({
      subject: "Photo",
      text: "Photo attached",
      html: '<p>Photo attached</p><img src="cid:sig-logo">',
      attachments: [
        { filename: "logo.png", content: png(), cid: "sig-logo" },
        { filename: "photo.png", content: png() },
      ],
    });
    const mail = await parseOk(raw);
    expect(mail.documents.map((d) => d.filename)).toEqual(["photo.png"]);
    expect(mail.meta.skipped.map((s) => s.filename)).toEqual(["logo.png"]);
  });

  it("faxes the body when the only attachment was a skipped inline image", async () => {
    const raw = await compose({
      subject: "Just text",
      text: "Hello there",
      html: '<p>Hello there</p><img src="cid:logo">',
      attachments: [{ filename: "logo.png", content: png(), cid: "logo" }],
    });
    const mail = await parseOk(raw);
    expect(mail.documents.map((d) => d.filename)).toEqual(["Just text.txt"]);
  });

  it("parses a body with an unknown charset instead of failing (fixture)", async () => {
    const mail = await parseOk(join(FIXTURES, "broken-charset.eml"), { config: { ...config, coverText: "body" } });
    expect(mail.documents.map((d) => d.filename)).toEqual(["Broken charset.txt"]);
    const text = await readFile(mail.documents[0]?.path ?? "", "utf8");
    expect(text).toContain("order: 3 boxes");
    expect(text).toContain("bytes that are not UTF-8");
  });

  it("throws ExtractError (not a refusal) when the work directory cannot be written", async () => {
    const raw = await compose({ subject: "s", text: "t", attachments: [{ filename: "a.pdf", content: pdf("a") }] });
    await expect(parse(raw, { workDir: join(dir, "no-such-dir") })).rejects.toBeInstanceOf(ExtractError);
  });

  it("throws ExtractError (not a refusal) when the raw message cannot be read", async () => {
    await expect(parse(join(dir, "missing.eml"))).rejects.toBeInstanceOf(ExtractError);
  });
});

describe("parseFaxMail: cover page text", () => {
  const withDoc = async (subject: string, text: string): Promise<string> =>
    compose({ subject, text, attachments: [{ filename: "a.pdf", content: pdf("a") }] });

  it.each([
    ["subject+body", "Referral\n\nPlease see the referral.\n\n> quoted reply\n-- \nAlice"],
    ["subject", "Referral"],
    ["body", "Please see the referral.\n\n> quoted reply\n-- \nAlice"],
    ["none", undefined],
  ] as const)("mode %s (stripQuotes off)", async (mode, expected) => {
    const raw = await withDoc("Referral", "  Please see the referral.\n\n> quoted reply\n-- \nAlice\n\n");
    const mail = await parseOk(raw, { config: { ...config, coverText: mode, stripQuotes: false } });
    expect(mail.request.coverPageText).toBe(expected);
  });

  it("strips quoted replies and signatures from the cover text by default (fax.stripQuotes)", async () => {
    const reply =
      "Signed copy attached.\n\nThanks,\nBob\n-- \nBob Smith | ACME Ltd\n+1 555 0100\n\n" +
      "On Tue, Dec 1, 2026 at 10:00 AM Fax Gateway <faxbridge@gw.test> wrote:\n> You received a fax from +1 555-123-4567\n> Patient: J. Doe\n";
    const mail = await parseOk(await withDoc("Re: Fax from +1 555-123-4567", reply), { config: { ...config, coverText: "body" } });
    expect(mail.request.coverPageText).toBe("Signed copy attached.\n\nThanks,\nBob");
    const outlook = "See attached.\n\n-----Original Message-----\nFrom: Fax Gateway\nSent: Tuesday\nSubject: Fax\n\nPatient: J. Doe\n";
    const mail2 = await parseOk(await withDoc("RE: Fax", outlook), { config: { ...config, coverText: "body" } });
    expect(mail2.request.coverPageText).toBe("See attached.");
  });

  it("omits the cover text when subject and body are empty", async () => {
    const raw = await compose({ attachments: [{ filename: "a.pdf", content: pdf("a") }] });
    const mail = await parseOk(raw);
    expect(mail.request).not.toHaveProperty("coverPageText");
  });

  it("cuts a long body to 1024 characters ending in the visible marker", async () => {
    const body = Array.from({ length: 400 }, (_, i) => `word${i}`).join(" ");
    const mail = await parseOk(await withDoc("Long", body), { config: { ...config, coverText: "body" } });
    const cover = mail.request.coverPageText ?? "";
    expect(cover.length).toBeLessThanOrEqual(1024);
    expect(cover.length).toBeGreaterThan(1000);
    expect(cover.endsWith(TRUNCATION_MARKER)).toBe(true);
    expect(body.startsWith(cover.slice(0, -TRUNCATION_MARKER.length))).toBe(true);
  });

  it("does not add the marker to a body of exactly 1024 characters", async () => {
    const body = "x".repeat(1024);
    const mail = await parseOk(await withDoc("Exact", body), { config: { ...config, coverText: "body" } });
    expect(mail.request.coverPageText).toBe(body);
  });
});

describe("parseFaxMail: options", () => {

  it("takes resolution and cover from config; coverIndex -1 omits it", async () => {
    const raw = await compose({ subject: "s", text: "t", attachments: [doc] });
    const mail = await parseOk(raw, { config: { ...config, resolution: "Low" } });
    expect(mail.request.faxResolution).toBe("Low");
    expect(mail.request).not.toHaveProperty("coverIndex");
    const withCover = await parseOk(raw, { config: { ...config, coverIndex: 0 } });
    expect(withCover.request.coverIndex).toBe(0);
  });

  it("applies X-Fax-Resolution, X-Fax-Cover and X-Fax-Send-Time", async () => {
    const raw = await compose({
      subject: "s",
      text: "t",
      attachments: [doc],
      headers: { "X-Fax-Resolution": "LOW", "X-Fax-Cover": "12", "X-Fax-Send-Time": "2026-03-05T10:30+02:00" },
    });
    const mail = await parseOk(raw, { config: { ...config, coverIndex: 3 } });
    expect(mail.request.faxResolution).toBe("Low");
    expect(mail.request.coverIndex).toBe(12);
    expect(mail.request.sendTime).toBe("2026-03-05T08:30:00.000Z");
  });

  it("lets address options win over headers, and puts the name into to[]", async () => {
    const raw = await compose({
      subject: "s",
      text: "t",
      attachments: [doc],
      headers: { "X-Fax-Resolution": "low", "X-Fax-Cover": "12" },
    });
    const mail = await parseOk(raw, {
      envelope: envelope(
        { address: "15551234567/res=high/cover=2/name=Dr_Roe@fax.local", e164: "+15551234567", options: { resolution: "High", coverIndex: 2, name: "Dr Roe" } },
        { address: "15557654321@fax.local", e164: "+15557654321", options: {} },
      ),
    });
    expect(mail.request.faxResolution).toBe("High");
    expect(mail.request.coverIndex).toBe(2);
    expect(mail.request.to).toEqual([{ phoneNumber: "+15551234567", name: "Dr Roe" }, { phoneNumber: "+15557654321" }]);
  });

  it("resends with X-Fax-Forward-Of: no documents, no body document", async () => {
    const raw = await compose({ subject: "resend", text: "please resend", headers: { "X-Fax-Forward-Of": "1234567890" } });
    const mail = await parseOk(raw);
    expect(mail.forwardOf).toBe("1234567890");
    expect(mail.documents).toEqual([]);
    expect(await readdir(workDir)).toEqual([]);
  });

  it.each([
    ["X-Fax-Resolution", "medium", /X-Fax-Resolution.*"medium".*"high".*"low"/],
    ["X-Fax-Cover", "29", /X-Fax-Cover.*"29".*0 to 28/],
    ["X-Fax-Cover", "-1", /X-Fax-Cover/],
    ["X-Fax-Cover", "two", /X-Fax-Cover/],
    ["X-Fax-Send-Time", "tomorrow", /X-Fax-Send-Time.*ISO 8601/],
    ["X-Fax-Send-Time", "2026-03-05T10:30", /X-Fax-Send-Time.*time zone/],
    ["X-Fax-Send-Time", "2026-02-30T10:30Z", /X-Fax-Send-Time.*ISO 8601/],
    ["X-Fax-Send-Time", "2026-03-01T10:00:00Z", /X-Fax-Send-Time.*future/],
    ["X-Fax-Send-Time", "2027-04-01T10:00:00Z", /X-Fax-Send-Time.*366 days/],
    ["X-Fax-Forward-Of", "abc123", /X-Fax-Forward-Of.*numeric id/],
  ])("refuses %s: %s", async (header, value, pattern) => {
    const raw = await compose({ subject: "s", text: "t", attachments: [doc], headers: { [header]: value } });
    const refusal = await parseRefused(raw);
    expect(refusal.rule).toBe("invalid-header");
    expect(refusal.message).toMatch(pattern);
    expect(await readdir(workDir)).toEqual([]);
  });

  it("refuses a header repeated with different values", async () => {
    const raw = await compose({
      subject: "s",
      text: "t",
      attachments: [doc],
      headers: [
        { key: "X-Fax-Cover", value: "1" },
        { key: "X-Fax-Cover", value: "2" },
      ],
    });
    const refusal = await parseRefused(raw);
    expect(refusal.rule).toBe("invalid-header");
    expect(refusal.message).toMatch(/more than once/);
  });
});

describe("parseFaxMail: meta", () => {
  it("reports threading and auto-reply headers", async () => {
    const raw = await compose({
      subject: "Re: results",
      text: "t",
      replyTo: "Desk <desk@example.com>",
      messageId: "<m-1@example.com>",
      references: ["<a@example.com>", "<b@example.com>"],
      date: new Date("2026-03-01T08:00:00Z"),
      headers: { "Auto-Submitted": "auto-generated", Precedence: "bulk", "X-Auto-Response-Suppress": "All" },
    });
    const mail = await parseOk(raw);
    expect(mail.meta).toMatchObject({
      messageId: "<m-1@example.com>",
      subject: "Re: results",
      from: "alice@example.com",
      replyTo: "desk@example.com",
      references: ["<a@example.com>", "<b@example.com>"],
      date: "2026-03-01T08:00:00.000Z",
      autoSubmitted: "auto-generated",
      precedence: "bulk",
      xAutoResponseSuppress: "All",
      isReport: false,
    });
  });

  it("flags a multipart/report and omits an unparseable date", async () => {
    const raw = join(dir, "report.eml");
    await writeFile(
      raw,
      [
        "From: MAILER-DAEMON@example.com",
        "To: 15551234567@fax.local",
        "Subject: Undelivered Mail",
        "Date: not a date",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        "",
        "--r",
        "Content-Type: text/plain",
        "",
        "Delivery failed.",
        "--r--",
        "",
      ].join("\r\n"),
    );
    const mail = await parseOk(raw);
    expect(mail.meta.isReport).toBe(true);
    expect(mail.meta).not.toHaveProperty("date");
  });
});
