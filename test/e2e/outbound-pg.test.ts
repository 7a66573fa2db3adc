/**
 * Email → fax end to end on the PostgreSQL backend (database.url), and the
 * same happy path on SQLite: the message is spooled into the document store,
 * the job row is there, the worker faxes it through the emulator, the report
 * arrives, and the documents are removed from the store afterwards.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { waitFor } from "../helpers/wait.js";
import { makePdf, OutboundHarness, sha256 } from "./outbound-harness.js";

/** Every file below `dir` (recursively); none when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => !e.isDirectory()).map((e) => join(e.parentPath, e.name));
}

/** The happy path on each backend: one suite, the same assertions (SQLite keeps files, PostgreSQL keeps everything in the database). */
for (const backend of ["sqlite", "postgres"] as const) {
  const describeOn = backend === "postgres" ? describePg : describe;
  describeOn(`email → fax on ${backend === "postgres" ? "PostgreSQL" : "SQLite"}`, () => {
    const db = backend === "postgres" ? usePgDatabase() : undefined;
    let h: OutboundHarness | undefined;
    afterEach(async () => {
      await h?.close();
      h = undefined;
    });

    it("faxes the documents byte-identical, reports to the sender, and cleans the documents out of the document store", async () => {
      const t = (h = await new OutboundHarness(db === undefined ? {} : { databaseUrl: db.url }).start());
      expect(t.stores.backend).toBe(backend);
      const a = makePdf("first");
      const b = makePdf("second");
      const id = await t.send({
        to: "15551234567@fax.local",
        messageId: "<pg-happy-1@example.com>",
        subject: "Contract",
        text: "Please fax.",
        attachments: [
          { filename: "a.pdf", content: a, contentType: "application/pdf" },
          { filename: "b.pdf", content: b, contentType: "application/pdf" },
        ],
      });
      const job = await t.waitState(id, "notified");
      expect(job.mailKey).toBe(`msg/${id}.eml`);
      expect(job.status).toEqual([{ e164: "+15551234567", status: "Sent" }]);
      const faxes = await t.sentFaxes();
      expect(faxes).toHaveLength(1);
      expect(faxes[0]?.attachments.map((x) => x.sha256)).toEqual([sha256(a), sha256(b)]);
      await waitFor(() => t.sink.messages.length === 1, 15_000, "the report");
      expect(t.sink.messages[0]?.parsed.subject).toMatch(/^Fax to \+1 555-123-4567 sent/);
      expect(t.sink.messages[0]?.parsed.inReplyTo).toBe("<pg-happy-1@example.com>");
      await waitFor(async () => (await t.stores.documents.stat(job.mailKey)) === undefined, 15_000, "the raw message removed from the document store");
      await waitFor(async () => (await t.stores.documents.list("work")).length === 0, 15_000, "the documents removed from the document store");
      expect(t.events("fax.submitted")).toHaveLength(1);
      // PostgreSQL: nothing of the job is left in the instance's local scratch either (staged uploads, copies, cache).
      expect(backend === "postgres" ? await filesUnder(join(t.dir.path, "pg-local")) : []).toEqual([]);
    });
  });
}

describePg("email → fax on PostgreSQL", () => {
  const db = usePgDatabase();
  let h: OutboundHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("the same mail sent twice is faxed once (the duplicate check runs in the database)", async () => {
    const t = (h = await new OutboundHarness({ databaseUrl: db.url }).start());
    const mail = { to: "15551234568@fax.local", messageId: "<pg-dup@example.com>", attachments: [{ filename: "a.pdf", content: makePdf(), contentType: "application/pdf" }] };
    const first = await t.send(mail);
    const second = await t.send(mail);
    await t.waitState(first, "notified");
    const dup = await t.waitState(second, "cancelled");
    expect(dup.errorCode).toBe("duplicate");
    expect((await t.sentFaxes()).filter((f) => f.to[0]?.phoneNumber === "+15551234568")).toHaveLength(1);
  });
});
