import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { Spool} from "../../src/spool/spool.js";
import { SpoolError } from "../../src/spool/spool.js";
import { mailKey, type OutboundStore } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";
import { tempDir } from "../helpers/tmp.js";

/** A stream like smtp-server's DATA stream: chunks, then end; records whether it was read to the end. */
function dataStream(chunks: Buffer[]): PassThrough & { drained: Promise<void> } {
  const s = new PassThrough() as PassThrough & { drained: Promise<void> };
  s.drained = new Promise((resolve) => s.once("end", () => resolve()));
  Readable.from(chunks).pipe(s);
  return s;
}

describe("Spool", () => {
  let dir: string;
  let spool: Spool;
  let stores: TestStores;
  let store: OutboundStore;
  // The SQLite backend's file layout under <dataDir>/spool/.
  const paths = () => ({ tmpDir: join(dir, "spool", "tmp"), msgDir: join(dir, "spool", "msg"), workDir: join(dir, "spool", "work") });
  const messagePath = (id: string) => join(dir, "spool", "msg", `${id}.eml`);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "faxbridge-spool-"));
    stores = await openTestStores(dir, { logger: silentLogger() });
    spool = stores.spool;
    store = stores.outbound;
  });

  afterEach(async () => {
    await stores.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("streams a message into msg/<id>.eml with private modes", async () => {
    const id = newId();
    const body = Buffer.from("Subject: hi\r\n\r\n" + "x".repeat(600_000));
    const chunks = [body.subarray(0, 100_000), body.subarray(100_000, 400_000), body.subarray(400_000)];
    const result = await spool.receive(id, dataStream(chunks), 1_000_000);
    expect(result).toEqual({ path: join(dir, "spool", "msg", `${id}.eml`), size: body.length });
    expect((await readFile(result.path)).equals(body)).toBe(true);
    expect((await stat(result.path)).mode & 0o777).toBe(0o600);
    for (const d of ["spool", "spool/tmp", "spool/msg", "spool/work"]) expect((await stat(join(dir, d))).mode & 0o777).toBe(0o700);
    expect(await readdir(paths().tmpDir)).toEqual([]);
    expect(await text(await spool.openMessage(id))).toBe(body.toString());
  });

  it("refuses a message over the limit, keeps nothing and still reads the input to its end", async () => {
    const id = newId();
    const input = dataStream([Buffer.alloc(300_000, 97), Buffer.alloc(300_000, 98)]);
    const err = await spool.receive(id, input, 400_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect(err).toMatchObject({ kind: "too_big" });
    await input.drained;
    expect(await readdir(paths().tmpDir)).toEqual([]);
    expect(await readdir(paths().msgDir)).toEqual([]);
  });

  it("honours smtp-server's sizeExceeded flag", async () => {
    const input = dataStream([Buffer.from("a"), Buffer.from("b")]) as PassThrough & { drained: Promise<void>; sizeExceeded?: boolean };
    input.sizeExceeded = true;
    await expect(spool.receive(newId(), input, 1_000_000)).rejects.toMatchObject({ kind: "too_big" });
  });

  it("fails with an io error when tmp/ cannot be written, draining the input", async () => {
    await rm(paths().tmpDir, { recursive: true });
    await writeFile(paths().tmpDir, "not a directory");
    const input = dataStream([Buffer.alloc(50_000, 97)]);
    await expect(spool.receive(newId(), input, 1_000_000)).rejects.toMatchObject({ name: "SpoolError", kind: "io" });
    await input.drained;
    expect(await readdir(paths().msgDir)).toEqual([]);
  });

  it("reports a client that went away mid-DATA as aborted", async () => {
    const input = new PassThrough();
    const pending = spool.receive(newId(), input, 1_000_000);
    input.write(Buffer.alloc(1000, 97));
    input.destroy();
    await expect(pending).rejects.toMatchObject({ kind: "aborted" });
    expect(await readdir(paths().tmpDir)).toEqual([]);
  });

  it("creates and removes a job's working directory and message", async () => {
    const id = newId();
    await spool.receive(id, dataStream([Buffer.from("hello")]), 100);
    const work = await spool.createWorkDir(id);
    expect(work).toBe(join(paths().workDir, id));
    await writeFile(join(work, "doc.pdf"), "%PDF");
    expect((await stat(work)).mode & 0o777).toBe(0o700);
    await spool.remove(id);
    expect(existsSync(work)).toBe(false);
    expect(existsSync(messagePath(id))).toBe(false);
    await spool.remove(id); // idempotent
  });

  it("recovers: deletes tmp/*, deletes unacknowledged files, fails jobs whose file is gone", async () => {
    // A partial write from before a crash.
    await writeFile(join(paths().tmpDir, newId()), "partial");
    // A file that was spooled but whose job row never committed: the client never got a 250.
    const orphan = newId();
    await spool.receive(orphan, dataStream([Buffer.from("orphan")]), 100);
    // A healthy job.
    const kept = newId();
    await spool.receive(kept, dataStream([Buffer.from("kept")]), 100);
    await store.insertReceived({ id: kept, mailFrom: "a@example.com", rcptTo: [], mailKey: mailKey(kept), size: 4, client: { ip: "127.0.0.1" } });
    // A job whose file vanished, and one already past the point of needing it.
    const lost = newId();
    await store.insertReceived({ id: lost, mailFrom: "a@example.com", rcptTo: [], mailKey: mailKey(lost), size: 4, client: { ip: "127.0.0.1" } });
    const done = newId();
    await store.insertReceived({ id: done, mailFrom: "a@example.com", rcptTo: [], mailKey: mailKey(done), size: 4, client: { ip: "127.0.0.1" } });
    await store.transition(done, "received", "cancelled");
    await mkdir(join(paths().tmpDir, "stray-dir"));

    const report = await spool.recover(store);
    expect(report).toEqual({ tmpDeleted: 2, orphansDeleted: [orphan], missing: [lost] });
    expect(await readdir(paths().tmpDir)).toEqual([]);
    expect(await readdir(paths().msgDir)).toEqual([`${kept}.eml`]);
    expect(await store.get(lost)).toMatchObject({ state: "failed", errorCode: "spool_missing" });
    expect((await store.get(kept))?.state).toBe("received");
    expect((await store.get(done))?.state).toBe("cancelled");
  });
});

describePg("spool recovery with documents shared by several instances (PostgreSQL)", () => {
  const db = usePgDatabase();
  it("a restarting instance leaves the fresh message another instance is receiving, and deletes only old orphans", async () => {
    const dirs = [tempDir(), tempDir()];
    const [a, b] = await Promise.all(dirs.map((d) => openTestStores(d.path, { databaseUrl: db.url })));
    try {
      if (a === undefined || b === undefined) throw new Error("two instances expected");
      // B is receiving a mail: its message is stored, its job row not yet committed.
      const receiving = newId();
      await b.spool.receive(receiving, Readable.from([Buffer.from("Subject: x\r\n\r\nin flight\r\n")]), 1000);
      // Left by an instance that died two hours ago before committing the row.
      const old = newId(Date.now() - 2 * 3_600_000);
      await b.spool.receive(old, Readable.from([Buffer.from("Subject: y\r\n\r\nold\r\n")]), 1000);
      const report = await a.spool.recover(a.outbound, { shared: true });
      expect(report.orphansDeleted).toEqual([old]);
      expect(await a.documents.stat(mailKey(receiving))).toBeDefined();
      expect(await a.documents.stat(mailKey(old))).toBeUndefined();
    } finally {
      for (const s of [a, b]) await s?.close();
      for (const d of dirs) d.cleanup();
    }
  });
});
