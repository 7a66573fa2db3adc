import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { Janitor } from "../../src/ops/janitor.js";
import type { Spool } from "../../src/spool/spool.js";
import { mailKey, type InboundStore, type OutboundStore } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";
import { tempDir } from "../helpers/tmp.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe("retention janitor", () => {
  let dir: ReturnType<typeof tempDir>;
  let stores: TestStores;
  let clock: number;
  let outbound: OutboundStore;
  let inbound: InboundStore;
  let spool: Spool;

  beforeEach(async () => {
    dir = tempDir();
    clock = Date.now() - 100 * DAY;
    stores = await openTestStores(dir.path, { logger: silentLogger(), now: () => clock, groupCommit: "worker" });
    ({ outbound, inbound, spool } = stores);
  });
  afterEach(async () => {
    await stores.close();
    dir.cleanup();
  });

  async function job(state: "notified" | "parsed"): Promise<string> {
    const id = newId(clock);
    await spool.receive(id, Readable.from([Buffer.from("Subject: x\r\n\r\nbody\r\n")]), 1_000_000);
    await outbound.insertReceived({ id, mailFrom: "a@example.com", rcptTo: [{ address: "1@fax.local", e164: "+15551234567", options: {} }], mailKey: mailKey(id), size: 20, client: { ip: "127.0.0.1" } });
    if (state === "notified") {
      await outbound.transition(id, "received", "failed", { errorCode: "x", errorText: "y" });
      await outbound.transition(id, "failed", "notified", { notifiedAt: clock });
    } else {
      await outbound.transition(id, "received", "parsed", { faxRequest: {} });
    }
    return id;
  }

  function janitor(documentsHours: number, recordsDays: number, linkDelivery = false): Janitor {
    return new Janitor({
      outbound,
      inbound,
      spool,
      inboundDir: join(dir.path, "inbound"),
      retention: { documentsHours, recordsDays },
      linkDelivery,
      logger: silentLogger(),
      now: () => clock,
    });
  }

  it("removes documents of finished jobs after documentsHours, never those of jobs in flight", async () => {
    const done = await job("notified");
    const waiting = await job("parsed");
    clock += 2 * HOUR;
    expect(await janitor(3, 90).runOnce()).toMatchObject({ removedDocuments: 0 });
    expect(existsSync(stores.messagePath(done))).toBe(true);
    clock += 2 * HOUR;
    expect(await janitor(3, 90).runOnce()).toMatchObject({ removedDocuments: 1, purgedJobs: 0 });
    expect(existsSync(stores.messagePath(done))).toBe(false);
    expect(existsSync(stores.messagePath(waiting))).toBe(true);
  });

  it("purges finished records after recordsDays, and files left behind with them", async () => {
    const done = await job("notified");
    const waiting = await job("parsed");
    clock += 31 * DAY;
    const r = await janitor(24 * 365, 30).runOnce();
    expect(r.purgedJobs).toBe(1);
    expect(await outbound.get(done)).toBeUndefined();
    expect(await outbound.get(waiting)).toBeDefined();
    expect(existsSync(stores.messagePath(done))).toBe(false);
  });

  it("keeps received PDFs for link-only delivery at least a day", async () => {
    const [fax] = await inbound.recordSync(
      "200000001",
      { syncToken: "t", syncTime: null, lastFullSyncAt: null },
      [{ extension: "200000001", rcMessageId: "77", message: { from: "+15551234567", to: ["+16505550100"], creationTime: new Date(clock).toISOString(), attachments: [] } }],
      clock,
    );
    await inbound.markDelivered(fax!.id, { route: -1, mailTo: ["x@example.com"] }, Date.now());
    mkdirSync(join(dir.path, "inbound", fax!.id), { recursive: true });
    writeFileSync(join(dir.path, "inbound", fax!.id, "fax.pdf"), "%PDF");
    clock = Date.now() + 2 * HOUR;
    await janitor(0, 90, true).runOnce();
    expect(existsSync(join(dir.path, "inbound", fax!.id))).toBe(true);
    clock = Date.now() + 25 * HOUR;
    await janitor(0, 90, true).runOnce();
    expect(existsSync(join(dir.path, "inbound", fax!.id))).toBe(false);
  });
});

describePg("retention janitor on several instances (PostgreSQL)", () => {
  const db = usePgDatabase();
  const dirs: ReturnType<typeof tempDir>[] = [];
  const open: TestStores[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    for (const d of dirs.splice(0)) d.cleanup();
  });

  it("every instance may sweep at once: each finished job and document is removed once, live ones stay", async () => {
    let clock = Date.now() - 100 * DAY;
    const instances: TestStores[] = [];
    for (const name of ["a", "b", "c"]) {
      const d = tempDir();
      dirs.push(d);
      const s = await openTestStores(d.path, { databaseUrl: db.url, owner: `instance-${name}`, now: () => clock });
      open.push(s);
      instances.push(s);
    }
    const first = instances[0] as TestStores;
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const id = newId(clock + i);
      await first.spool.receive(id, Readable.from([Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`)]), 1_000_000);
      await first.outbound.insertReceived({ id, mailFrom: "a@example.com", rcptTo: [{ address: "1@fax.local", e164: "+15551234567", options: {} }], mailKey: mailKey(id), size: 20, client: { ip: "127.0.0.1" } });
      if (i < 30) await first.outbound.transition(id, "received", "cancelled");
      ids.push(id);
    }
    clock += 40 * DAY;
    const sweeps = await Promise.all(
      instances.map((s) =>
        new Janitor({
          outbound: s.outbound,
          inbound: s.inbound,
          spool: s.spool,
          inboundDir: join(s.dataDir, "inbound"),
          retention: { documentsHours: 1, recordsDays: 30 },
          linkDelivery: false,
          logger: silentLogger(),
          now: () => clock,
        }).runOnce(),
      ),
    );
    expect(sweeps.reduce((n, r) => n + r.purgedJobs, 0)).toBe(30);
    const left = [];
    for (const id of ids) left.push({ id, row: (await first.outbound.get(id))?.state, document: (await first.documents.stat(mailKey(id))) !== undefined });
    expect(left).toEqual(ids.map((id, i) => ({ id, row: i < 30 ? undefined : "received", document: i >= 30 })));
  });
});
