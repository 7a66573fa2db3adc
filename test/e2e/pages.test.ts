/**
 * Issue 8, cost: pages are counted before anything is sent. A fax over
 * fax.maxPages or over an hourly page quota is not sent (nothing reaches the
 * emulator) and the sender gets a notice; uncountable types are charged by
 * RingCentral's faxPageCount.
 */
import { describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { harnessPerTest } from "./outbound-harness.js";

const harness = harnessPerTest();

/** A PDF whose page tree has `n` pages (one shared page object) while its /Count claims `claim`. */
function pdfWithPages(n: number, claim = n): Buffer {
  const kids = Array.from({ length: n }, () => "3 0 R").join(" ");
  return Buffer.from(
    `%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [${kids}] /Count ${claim} >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n`,
    "latin1",
  );
}

describe("pages, not just recipients", () => {
  it("does not send a 300,000-page PDF that claims one page (fax.maxPages), and names the file and its page count", async () => {
    const t = await harness();
    const id = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "huge.pdf", content: pdfWithPages(300_000, 1), contentType: "application/pdf" }] });
    const job = await t.waitState(id, "notified", 20_000);
    expect(job.errorCode).toBe("too-many-pages");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the notice");
    const notice = t.sink.messages[0];
    expect(notice?.parsed.subject).toBe("Fax not sent: the fax has too many pages");
    expect(notice?.parsed.text).toContain('"huge.pdf" has 300000 pages; this gateway faxes at most 200 pages per fax.');
    expect(await t.sentFaxes()).toHaveLength(0);
  }, 30_000);

  it("charges pages × recipients to the sender identity and refuses over the hourly page quota with when it frees up", async () => {
    const t = await harness({ policy: { quotas: { pagesPerSenderPerHour: 10 } } });
    const first = await t.send({
      envelope: { from: "q1@example.com", to: ["15551234567@fax.local", "15557654321@fax.local"] },
      attachments: [{ filename: "four.pdf", content: pdfWithPages(4), contentType: "application/pdf" }],
    });
    const sent = await t.waitState(first, "notified");
    expect(sent.faxRequest).toMatchObject({ countedPages: 4, chargedPages: 8 });
    // Another spelling of the same sender: 3 more pages do not fit in the 2 left.
    const second = await t.send({
      envelope: { from: "Q1+again@example.com", to: ["15551234567@fax.local"] },
      attachments: [{ filename: "three.pdf", content: pdfWithPages(3), contentType: "application/pdf" }],
    });
    const refused = await t.waitState(second, "notified");
    expect(refused.errorCode).toBe("page-quota");
    expect(refused.errorText).toMatch(/^this fax is 3 pages × 1 recipient = 3 pages, over q1@example\.com's hourly quota of 10 pages\. The quota frees up at \d\d:\d\d UTC \(in 60 minutes\); send the email again then\.$/);
    await waitFor(() => t.sink.messages.length === 2, 5000, "the report and the notice");
    expect(t.sink.messages.map((m) => m.parsed.subject)).toContain("Fax not sent: the hourly page quota is reached");
    expect(await t.sentFaxes()).toHaveLength(1);
  });

  it("charges a type it cannot count by RingCentral's faxPageCount, and that counts against the next fax", async () => {
    const t = await harness({ policy: { quotas: { pagesPerSenderPerHour: 2 } } });
    const docx = await t.send({
      envelope: { from: "a@example.com", to: ["15551234567@fax.local", "15557654321@fax.local"] },
      attachments: [{ filename: "letter.docx", content: Buffer.from("PK\x03\x04word/document.xml", "latin1"), contentType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document" }],
    });
    const done = await t.waitState(docx, "notified");
    expect(done.faxRequest).toMatchObject({ chargedPages: 2, pagesSettled: true });
    expect(done.faxRequest).not.toHaveProperty("countedPages");
    const next = await t.send({ envelope: { from: "a@example.com", to: ["15551234567@fax.local"] }, attachments: [{ filename: "one.pdf", content: pdfWithPages(1) }] });
    expect((await t.waitState(next, "notified")).errorCode).toBe("page-quota");
    expect(await t.sentFaxes()).toHaveLength(1);
  });

  it("counts a forwarded fax's pages like any other: a resend does not cost one unit", async () => {
    const t = await harness({ policy: { quotas: { pagesPerSenderPerHour: 5 } } });
    const first = await t.send({ envelope: { from: "a@example.com", to: ["15551234567@fax.local"] }, attachments: [{ filename: "three.pdf", content: pdfWithPages(3) }] });
    const rcId = (await t.waitState(first, "notified")).rcMessageId as string;
    const resend = await t.send({ envelope: { from: "a@example.com", to: ["15557654321@fax.local"] }, headers: { "X-Fax-Forward-Of": rcId }, text: "" });
    const refused = await t.waitState(resend, "notified");
    expect(refused.errorCode).toBe("page-quota");
    expect(refused.errorText).toMatch(/^this fax is 3 pages × 1 recipient = 3 pages, over a@example\.com's hourly quota of 5 pages\./);
    expect(await t.sentFaxes()).toHaveLength(1);
  });

  it("counts the hour's pages again after a restart of the worker", async () => {
    const t = await harness({ policy: { quotas: { pagesPerSenderPerHour: 5 } } });
    const first = await t.send({ envelope: { from: "a@example.com", to: ["15551234567@fax.local"] }, attachments: [{ filename: "four.pdf", content: pdfWithPages(4) }] });
    await t.waitState(first, "notified");
    await t.stopWorker();
    await t.startWorker();
    const second = await t.send({ envelope: { from: "a@example.com", to: ["15551234567@fax.local"] }, attachments: [{ filename: "two.pdf", content: pdfWithPages(2) }] });
    expect((await t.waitState(second, "notified")).errorCode).toBe("page-quota");
    expect(await t.sentFaxes()).toHaveLength(1);
  });
});
