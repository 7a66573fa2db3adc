/**
 * The SQLite backend's migration to document keys: a database written by the
 * previous version (absolute spool paths in `spool_path`) opens with the
 * same jobs, now naming their raw mail by key.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/store/sqlite/db.js";
import { inboundMigration } from "../../src/store/sqlite/inbound.js";
import { outboundMigration } from "../../src/store/sqlite/outbound.js";
import { newId } from "../../src/util/ids.js";
import { openTestStores } from "../helpers/stores.js";
import { tempDir } from "../helpers/tmp.js";

describe("SQLite migration to document keys", () => {
  const dir = tempDir("faxbridge-migrate-");
  afterEach(() => dir.cleanup());

  it("turns an old row's absolute spool path into its key, keeps the job, and the spool still finds the mail", async () => {
    // The schema as the previous version left it: outbound at version 2, inbound at 1.
    const old = openDatabase(join(dir.path, "faxbridge.db"), [
      { module: "outbound", steps: outboundMigration.steps.slice(0, 2) },
      { module: "inbound", steps: inboundMigration.steps.slice(0, 1) },
    ]);
    const id = newId();
    const spoolPath = join(dir.path, "spool", "msg", `${id}.eml`);
    old
      .prepare(
        `INSERT INTO outbound_jobs (id, state, mail_from, rcpt_to, rcpt_key, spool_path, size, received_at, client_ip, attempts, next_attempt_at, lease_until, updated_at, identity, report_to)
         VALUES (?, 'received', 'a@example.com', '[]', '', ?, 4, 1000, '127.0.0.1', 0, 1000, 99999999999999, 1000, 'mail:a@example.com', 'a@example.com')`,
      )
      .run(id, spoolPath);
    old.close();

    const stores = await openTestStores(dir.path, { role: "daemon" });
    try {
      const job = await stores.outbound.get(id);
      expect(job).toMatchObject({ id, state: "received", mailKey: `msg/${id}.eml`, identity: "mail:a@example.com" });
      expect(JSON.stringify(job)).not.toContain(dir.path);
      // The old lease belonged to the process that wrote it: released when the daemon opened.
      expect(stores.releasedLeases).toEqual({ outbound: 1, inbound: 0 });
      expect(job?.leaseUntil).toBeNull();
      writeFileSync(spoolPath, "mail");
      expect(await stores.documents.stat(job?.mailKey ?? "")).toEqual({ size: 4 });
      expect(await stores.spool.recover(stores.outbound)).toMatchObject({ missing: [], orphansDeleted: [] });
      expect(existsSync(spoolPath)).toBe(true);
    } finally {
      await stores.close();
    }
  });
});
