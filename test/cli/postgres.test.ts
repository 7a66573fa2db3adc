/**
 * The CLI against PostgreSQL (issue 11): with FAXBRIDGE_DATABASE_URL set,
 * every command reads and changes the shared database, not <dataDir>
 * (queue list/show/retry/cancel, inbound list/redeliver, send, doctor), and
 * an error names the PostgreSQL database, never its password.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeAll, beforeEach, expect, it } from "vitest";
import { mailKey, type OutboundJob } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";
import { ensureBuilt } from "../helpers/build.js";
import { describePg, redactUrl, usePgDatabase } from "../helpers/pg.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";
import { tempDir } from "../helpers/tmp.js";
import { cli, cliJson } from "./helpers.js";

const NUMBER = "+15551234567";

describePg("the CLI on PostgreSQL", () => {
  const db = usePgDatabase();
  let dir: ReturnType<typeof tempDir>;
  let stores: TestStores;
  let env: Record<string, string>;

  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);

  beforeEach(async () => {
    dir = tempDir("faxbridge-cli-pg-");
    // Another machine's view: its own (empty) data directory, the shared database.
    stores = await openTestStores(join(dir.path, "daemon"), { databaseUrl: db.url });
    env = { FAXBRIDGE_DATA_DIR: join(dir.path, "operator"), FAXBRIDGE_DATABASE_URL: db.url };
  });

  afterEach(async () => {
    await stores.close();
    dir.cleanup();
  });

  async function received(): Promise<OutboundJob> {
    const id = newId();
    await stores.documents.put(mailKey(id), Readable.from([Buffer.from("Subject: Contract\r\n\r\nhello\r\n")]));
    return stores.outbound.insertReceived({ id, mailFrom: "alice@example.com", rcptTo: [{ address: "15551234567@fax.local", e164: NUMBER, options: {} }], mailKey: mailKey(id), size: 30, client: { ip: "127.0.0.1" } });
  }

  it("queue list, show, retry and cancel work on the shared database", async () => {
    const a = await received();
    const b = await received();
    await stores.outbound.transition(b.id, "received", "parsed", { faxRequest: { v: 1, meta: { references: [], isReport: false, subject: "Contract" }, documents: [], skipped: [], polls: 0 } });
    await stores.outbound.reschedule(b.id, { from: "parsed", nextAttemptAt: Date.now() + 3_600_000, error: "rate_limited: 429" });

    const list = await cliJson<{ id: string; state: string }[]>(["queue", "list"], env);
    expect(list.map((j) => [j.id, j.state])).toEqual([
      [a.id, "received"],
      [b.id, "parsed"],
    ]);
    const shown = await cli(["queue", "show", a.id], env);
    expect({ code: shown.code, stderr: shown.stderr }).toEqual({ code: 0, stderr: "" });
    expect(shown.stdout).toContain(`job:            ${a.id}`);

    const retried = await cliJson<{ state: string; message: string }>(["queue", "retry", b.id], env);
    expect(retried.message).toContain("due now");
    expect((await stores.outbound.get(b.id))?.nextAttemptAt).toBeLessThanOrEqual(Date.now());

    const cancelled = await cli(["queue", "cancel", a.id], env);
    expect({ code: cancelled.code, stderr: cancelled.stderr }).toEqual({ code: 0, stderr: "" });
    expect((await stores.outbound.get(a.id))?.state).toBe("cancelled");
    // The mail was in the database (no shared disk): cancel removed it there.
    expect(await stores.documents.stat(a.mailKey)).toBeUndefined();
  }, 60_000);

  it("inbound list and redeliver work on the shared database", async () => {
    const [fax] = await stores.inbound.recordSync(
      "200000001",
      { syncToken: "t1", syncTime: null, lastFullSyncAt: Date.now() },
      [{ extension: "200000001", rcMessageId: "777", message: { from: "+15557654321", to: ["+15551230000"], creationTime: new Date().toISOString(), attachments: [] } }],
      Date.now(),
    );
    const id = fax?.id ?? "";
    await stores.inbound.markDelivered(id, { route: -1, mailTo: ["faxes@example.com"] }, Date.now());
    const list = await cliJson<{ id: string; state: string; from: string }[]>(["inbound", "list"], env);
    expect(list).toEqual([expect.objectContaining({ id, state: "delivered", from: "+15557654321" })]);
    const again = await cli(["inbound", "redeliver", id], env);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: "" });
    expect((await stores.inbound.get(id))?.state).toBe("discovered");
  }, 60_000);

  it("send queues into the shared database, with its mail in the database's document store", async () => {
    const file = join(dir.path, "note.txt");
    writeFileSync(file, "please fax\n");
    const r = await cli(["send", "--to", NUMBER, file], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const id = /queued as (\S+)/.exec(r.stdout)?.[1] ?? "";
    const job = await stores.outbound.get(id);
    expect(job?.state).toBe("received");
    expect((await stores.documents.stat(job?.mailKey ?? ""))?.size).toBeGreaterThan(0);
  }, 60_000);

  it("doctor opens the PostgreSQL database and names it without its password", async () => {
    const r = await cli(["doctor", "--json"], env);
    const checks = JSON.parse(r.stdout) as { name: string; status: string; message: string }[];
    const database = checks.find((c) => c.name === "database");
    expect(database).toMatchObject({ status: "ok" });
    expect(database?.message).toContain("postgres");
    expect(r.stdout).not.toContain(":faxbridge@");
  }, 60_000);

  it("a refused login names the PostgreSQL database, never the password", async () => {
    const u = new URL(db.url);
    u.password = "wrong-s3cret-pw";
    const bad = { ...env, FAXBRIDGE_DATABASE_URL: u.toString() };
    for (const args of [["queue", "list"], ["inbound", "list"]]) {
      const r = await cli(args, bad);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot open the PostgreSQL database ${u.username}@${u.host}${u.pathname}`);
      expect(r.stderr).not.toContain("wrong-s3cret-pw");
      expect(r.stderr).not.toContain("the database in");
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const doctor = await cli(["doctor"], bad);
    expect(doctor.code).not.toBe(0);
    expect(`${doctor.stdout}${doctor.stderr}`).not.toContain("wrong-s3cret-pw");
    expect(redactUrl(u.toString())).not.toContain("wrong-s3cret-pw");
  }, 60_000);
});
