/**
 * Upgrading the SQLite backend: the previous version named a parsed job's
 * documents by their absolute paths under the data directory. Opening the
 * data directory migrates such rows to document keys (work/<id>/<file>), and
 * the job, parsed by the old version, is sent by this one, byte for byte.
 */
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { readJobData } from "../../src/outbound/job-data.js";
import { mailKey, workKey } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";
import { openTestStores } from "../helpers/stores.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { makePdf, OutboundHarness, sha256 } from "./outbound-harness.js";

describe("upgrade: a job parsed by the previous version (documents named by path)", () => {
  let h: OutboundHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("is migrated to document keys at open and sent by this version, byte-identical", async () => {
    const dataDir = tempDir("faxbridge-upgrade-").path;
    const id = newId();
    const pdf = makePdf("old");
    // The previous version's data directory: the raw mail, a received row, the extracted document in spool/work/<id>/.
    const stores = await openTestStores(dataDir);
    const raw = `From: alice@example.com\r\nTo: 15551234567@fax.local\r\nMessage-ID: <upgrade-1@example.com>\r\nSubject: old\r\n\r\nsee attachment\r\n`;
    const { size } = await stores.documents.put(mailKey(id), Readable.from([Buffer.from(raw)]));
    await stores.outbound.insertReceived({
      id,
      mailFrom: "alice@example.com",
      rcptTo: [{ address: "15551234567@fax.local", e164: "+15551234567", options: {} }],
      mailKey: mailKey(id),
      size,
      client: { ip: "127.0.0.1" },
    });
    await stores.close();
    const work = join(dataDir, "spool", "work", id);
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, "001-contract.pdf"), pdf);
    // … and the row as the previous version's parse step left it (schema version 4: documents[].path).
    const oldData = {
      v: 1,
      meta: { messageId: "<upgrade-1@example.com>", subject: "old", from: "alice@example.com", references: [], isReport: false },
      request: { to: [{ phoneNumber: "+15551234567" }], faxResolution: "High" },
      documents: [
        {
          path: join(work, "001-contract.pdf"),
          filename: "contract.pdf",
          contentType: "application/pdf",
          size: pdf.length,
          sha256: createHash("sha256").update(pdf).digest("hex"),
        },
      ],
      skipped: [],
      polls: 0,
    };
    const db = new Database(join(dataDir, "faxbridge.db"));
    db.prepare("UPDATE outbound_jobs SET state = 'parsed', fax_request = ?, next_attempt_at = 0 WHERE id = ?").run(JSON.stringify(oldData), id);
    db.prepare("UPDATE schema_versions SET version = 4 WHERE module = 'outbound'").run();
    db.close();

    h = await new OutboundHarness({ dataDir }).start();
    const done = await h.waitState(id, "notified", 20_000);
    const data = readJobData(done.faxRequest);
    expect(data.ok && data.data?.documents).toEqual([
      { key: workKey(id, "001-contract.pdf"), filename: "contract.pdf", contentType: "application/pdf", size: pdf.length, sha256: sha256(pdf) },
    ]);
    expect(JSON.stringify(done.faxRequest)).not.toContain(dataDir);
    const faxes = await h.sentFaxes();
    expect(faxes.map((f) => f.attachments.map((a) => [a.filename, a.sha256]))).toEqual([[["contract.pdf", sha256(pdf)]]]);
    expect(h.events("fax.documents_missing")).toEqual([]);
    await waitFor(() => h?.sink.messages.length === 1, 15_000, "the report");
    expect(h.sink.messages[0]?.parsed.inReplyTo).toBe("<upgrade-1@example.com>");
  });
});
