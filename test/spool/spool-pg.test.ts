/**
 * The spool on PostgreSQL, through the real SMTP listener: a message is
 * staged in this instance's scratch directory (`<dataDir>/pg-local/tmp`),
 * copied into the database, and lent back as a temporary local file for the
 * header checks at SMTP time. Whatever the session's outcome (accepted,
 * refused after DATA, client gone mid-DATA, the job row not written), nothing
 * may be left in the scratch directory.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import nodemailer from "nodemailer";
import pg from "pg";
import { afterEach, expect, it } from "vitest";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { SmtpDialog } from "../helpers/smtp-dialog.js";
import { startIntake, type Intake } from "../helpers/smtp-intake.js";
import { waitFor } from "../helpers/wait.js";

/** Every file below `dir` (recursively); none when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => !e.isDirectory()).map((e) => join(e.parentPath, e.name));
}

function message(from: string, body = "Please fax this.\r\n"): string {
  return `From: ${from}\r\nTo: fax\r\nSubject: contract\r\nMessage-ID: <m-${Math.random().toString(36).slice(2)}@example.com>\r\n\r\n${body}`;
}

describePg("spool on PostgreSQL: temporary copies", () => {
  const db = usePgDatabase();
  let h: Intake | undefined;
  const transports: ReturnType<typeof nodemailer.createTransport>[] = [];
  const scratch = (i: Intake): string => join(i.dir, "pg-local", "tmp");

  async function start(policy?: Record<string, unknown>): Promise<Intake> {
    h = await startIntake({ databaseUrl: db.url, prefix: "faxbridge-spool-pg-", ...(policy !== undefined && { policy }) });
    return h;
  }

  function sendRaw(i: Intake, from: string, raw: string): Promise<{ response: string }> {
    const t = nodemailer.createTransport({ host: "127.0.0.1", port: i.port, secure: false, ignoreTLS: true });
    transports.push(t);
    return t.sendMail({ envelope: { from, to: ["12025550143@fax.local"] }, raw }) as Promise<{ response: string }>;
  }

  /** What the database holds (jobs, spooled messages): the file's tests share one database. */
  async function stored(i: Intake): Promise<{ jobs: string[]; msg: string[] }> {
    return { jobs: (await i.store.list()).map((j) => j.id), msg: await i.stores.documents.list("msg") };
  }

  afterEach(async () => {
    for (const t of transports.splice(0)) t.close();
    await h?.close();
    h = undefined;
  });

  it("an accepted message leaves no temporary copy behind", async () => {
    const i = await start();
    const info = await sendRaw(i, "alice@example.com", message("alice@example.com"));
    const id = /Queued as (\S+)/.exec(info.response)?.[1] ?? "";
    expect((await i.store.get(id))?.state).toBe("received");
    expect(await i.stores.documents.stat(`msg/${id}.eml`)).toBeDefined();
    expect(await filesUnder(scratch(i))).toEqual([]);
  });

  it("a message refused after DATA (header From not allowed) leaves no temporary copy and nothing stored", async () => {
    const i = await start({ default: { senders: ["@example.com"], verifySender: "none" } });
    const before = await stored(i);
    const err = await sendRaw(i, "alice@example.com", message("mallory@evil.example")).then(
      () => undefined,
      (e: unknown) => e as { response?: string },
    );
    expect(err?.response).toMatch(/^550 5\.1\.1 sender mallory@evil\.example is not allowed/);
    expect(await stored(i)).toEqual(before);
    expect(await filesUnder(scratch(i))).toEqual([]);
  });

  it("a client that disconnects mid-DATA leaves no staged file", async () => {
    const i = await start();
    const before = await stored(i);
    const { dialog } = await SmtpDialog.open(i.port);
    expect((await dialog.command("EHLO client.test")).code).toBe(250);
    expect((await dialog.command("MAIL FROM:<alice@example.com>")).code).toBe(250);
    expect((await dialog.command("RCPT TO:<12025550143@fax.local>")).code).toBe(250);
    expect((await dialog.command("DATA")).code).toBe(354);
    dialog.write(message("alice@example.com", `${"x".repeat(998)}\r\n`.repeat(400)));
    // The message is being staged: then the client goes away.
    await waitFor(async () => (await filesUnder(scratch(i))).length > 0, 10_000, "the message to be staged");
    dialog.close();
    await waitFor(async () => (await filesUnder(scratch(i))).length === 0, 10_000, "the staged file to be removed");
    expect(await stored(i)).toEqual(before);
  });

  it("a job row that cannot be written (451) leaves no temporary copy and nothing stored", async () => {
    const i = await start();
    const before = await stored(i);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      // The database refuses every new job row: a real failure of the insert, not a mock.
      await admin.query("ALTER TABLE outbound_jobs ADD CONSTRAINT spool_pg_test_refuse CHECK (false) NOT VALID");
      const err = await sendRaw(i, "alice@example.com", message("alice@example.com")).then(
        () => undefined,
        (e: unknown) => e as { response?: string },
      );
      expect(err?.response).toMatch(/^451 /);
      expect(await stored(i)).toEqual(before);
      expect(await filesUnder(scratch(i))).toEqual([]);
    } finally {
      await admin.query("ALTER TABLE outbound_jobs DROP CONSTRAINT IF EXISTS spool_pg_test_refuse").catch(() => undefined);
      await admin.end();
    }
  });
});
