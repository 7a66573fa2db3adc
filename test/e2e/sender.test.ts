/**
 * Issue 12, sender experience, end to end: nodemailer → our SMTP listener →
 * worker → RingCentral emulator, and the sender report → SMTP sink.
 */
import { randomBytes } from "node:crypto";
import { PDFDocument } from "pdf-lib";
import { afterEach, describe, expect, it } from "vitest";
import { cancelJob } from "../../src/cli/queue.js";
import type { Stores } from "../../src/cli/common.js";
import { waitFor } from "../helpers/wait.js";
import { makePdf, OutboundHarness, type HarnessOptions } from "./outbound-harness.js";
import { untagged } from "../../src/outbound/tag.js";

let h: OutboundHarness | undefined;

async function harness(opts: HarnessOptions = {}): Promise<OutboundHarness> {
  h = await new OutboundHarness(opts).start();
  return h;
}

afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A JPEG whose SOF0 header says width × height, padded to `bytes` (a pasted scan). */
function jpeg(width: number, height: number, bytes: number): Buffer {
  const app0 = Buffer.from([0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
  const head = Buffer.concat([Buffer.from([0xff, 0xd8]), app0, sof]);
  const pad = randomBytes(bytes - head.length - 2).map((b) => (b === 0xff ? 0x00 : b));
  return Buffer.concat([head, pad, Buffer.from([0xff, 0xd9])]);
}

/** A 1×1 PNG (a signature logo). */
const LOGO = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");

describe("sender experience (issue 12)", () => {
  it("faxes a pasted inline scan, skips the signature logo, and the report lists what was not faxed and why", async () => {
    const t = await harness();
    const scan = jpeg(1700, 2200, 217 * 1024);
    const id = await t.send({
      to: "15551234567@fax.local",
      subject: "Scan",
      text: "Scan below.\n\n-- \nAlice",
      html: '<p>Scan below.</p><img src="cid:image001.jpg@01DA"><p>-- <br>Alice <img src="cid:image002.png@01DA"></p>',
      attachments: [
        { filename: "image001.jpg", content: scan, cid: "image001.jpg@01DA", contentType: "image/jpeg" },
        { filename: "image002.png", content: LOGO, cid: "image002.png@01DA", contentType: "image/png" },
      ],
    });
    await t.waitState(id, "notified");
    const faxes = await t.sentFaxes();
    expect(faxes[0]?.attachments.map((a) => [a.filename, a.size])).toEqual([["image001.jpg", scan.length]]);
    expect(untagged(faxes[0]?.coverPageText ?? undefined)).toBe("Scan\n\nScan below.");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const text = t.sink.messages[0]?.parsed.text ?? "";
    expect(text).toMatch(/Documents faxed:\n\s+image001\.jpg/);
    expect(text).toContain("Not faxed:");
    expect(text).toMatch(/image002\.png: inline image of the HTML body that looks like signature art \(1×1 pixels, \d+ bytes;/);
    expect(text).toContain("quoted reply and signature in the email text: removed (fax.stripQuotes)");
  });

  it("a reply without attachments faxes a page named by its subject, without the quoted thread; report times in mail.timeZone", async () => {
    const t = await harness({ mail: { timeZone: "America/New_York" } });
    const id = await t.send({
      to: "15551234567@fax.local",
      subject: "Re: Lab order 42",
      text:
        "Approved, please proceed.\n\nDr. Roe\n\nOn Tue, Dec 1, 2026 at 10:00 AM Fax Gateway <faxbridge@gw.test> wrote:\n" +
        "> You received a fax from +1 555-123-4567\n> Patient: J. Doe, DOB 1970-01-01\n",
    });
    await t.waitState(id, "notified");
    const faxes = await t.sentFaxes();
    expect(faxes[0]?.attachments.map((a) => a.filename)).toEqual(["Re_ Lab order 42.txt"]);
    // Small: the header block and two lines, not the quoted thread.
    expect(faxes[0]?.attachments[0]?.size).toBeLessThan(200);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    const text = t.sink.messages[0]?.parsed.text ?? "";
    expect(text).toMatch(/Documents faxed:\n\s+Re_ Lab order 42\.txt/);
    expect(text).toMatch(/Received:\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} EST/);
    expect(text).not.toContain("UTC");
  });

  it("sends X-Fax-Iso-Code as isoCode in RingCentral's multipart/mixed layout (ringcentral.faxLayout: mixed)", async () => {
    const t = await harness({ faxLayout: "mixed", fax: { isoCode: "US" } });
    const id = await t.send({
      to: "442079460000@fax.local",
      headers: { "X-Fax-Iso-Code": "gb" },
      attachments: [{ filename: "a.pdf", content: makePdf() }],
    });
    await t.waitState(id, "notified");
    const faxes = await t.sentFaxes();
    expect(faxes[0]).toMatchObject({ layout: "mixed", isoCode: "GB", to: [{ phoneNumber: "+442079460000" }] });
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toMatch(/^Fax to \+44 20 7946 0000 /);

    // Without the header the configured fax.isoCode goes out.
    const id2 = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "b.pdf", content: makePdf() }] });
    await t.waitState(id2, "notified");
    expect((await t.sentFaxes())[1]).toMatchObject({ layout: "mixed", isoCode: "US" });
  });

  it("clears the stale error text of a deferred attempt once a later attempt succeeds (queue show)", async () => {
    const t = await harness();
    await t.fault({ group: "Heavy", count: 1, kind: "status", status: 503 });
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified", 15_000);
    expect(t.events("fax.deferred").length).toBeGreaterThanOrEqual(1);
    expect(job.lastError).toBeNull();
    expect(job.errorText).toBeNull();
  });

  it("queue cancel of a scheduled fax deletes it at RingCentral before its send time, confirms it, and reports 'cancelled'", async () => {
    const t = await harness();
    const sendTime = new Date(Date.now() + 120_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const id = await t.send({ to: "15551234567@fax.local", headers: { "X-Fax-Send-Time": sendTime }, attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const submitted = await t.waitState(id, "submitted");
    const stores: Stores = t.stores;
    const result = await cancelJob(stores, id);
    expect(result.message).toContain(`RingCentral deleted the scheduled fax ${submitted.rcMessageId ?? ""} before its send time (confirmed)`);
    const job = await t.waitState(id, "notified");
    expect(job.errorCode).toBe("cancelled");
    const faxes = await t.sentFaxes();
    expect(faxes[0]?.cancelledAt).not.toBeNull();
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toBe("Fax to +1 555-123-4567 cancelled");
    expect(t.sink.messages[0]?.parsed.text).toContain("nothing was faxed");
    expect(t.sink.messages[0]?.parsed.headers.get("x-faxbridge-status")).toBe("cancelled");
    expect(t.events("fax.cancelled")).toHaveLength(1);
  });

  it("attaches the first page of the fax as RingCentral transmitted it (fax.reportTransmittedCopy default), or all of it", async () => {
    const three = Buffer.from(
      "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >> endobj\n" +
        "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n4 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n" +
        "5 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
      "latin1",
    );
    const pagesOf = async (b: Buffer): Promise<number> => (await PDFDocument.load(b)).getPageCount();
    for (const [mode, name] of [
      [undefined, "transmitted-fax-page-1.pdf"],
      ["all", "transmitted-fax.pdf"],
    ] as const) {
      const t = await harness(mode === undefined ? {} : { fax: { reportTransmittedCopy: mode } });
      const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "three.pdf", content: three }] });
      await t.waitState(id, "notified");
      await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
      const atts = t.sink.messages[0]?.parsed.attachments ?? [];
      expect(atts.map((a) => a.filename)).toEqual([name]);
      const rendered = (await t.job(id)).status;
      expect(rendered?.[0]?.status).toBe("Sent");
      expect(await pagesOf(atts[0]?.content as Buffer)).toBe(mode === "all" ? 3 : 1);
      await t.close();
      h = undefined;
    }
  });

  it("attaches no transmitted copy by default when inbound.delivery is link (PHI)", async () => {
    const t = await harness({ startWorker: false });
    t.config = { ...t.config, inbound: { ...t.config.inbound, delivery: "link" } };
    await t.startWorker();
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await t.waitState(id, "notified");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.attachments).toHaveLength(0);
  });

  it("refuses a malformed X-Fax-Iso-Code with a notice naming the header", async () => {
    const t = await harness();
    const id = await t.send({ to: "15551234567@fax.local", headers: { "X-Fax-Iso-Code": "Britain" }, attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await t.waitState(id, "notified");
    expect(await t.sentFaxes()).toHaveLength(0);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the notice");
    expect(t.sink.messages[0]?.parsed.text).toContain('The X-Fax-Iso-Code header has the value "Britain"');
  });
});
