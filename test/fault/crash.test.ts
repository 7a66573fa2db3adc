/**
 * kill -9 at seeded random points while 200 mails go in through SMTP and 50
 * faxes arrive at RingCentral. After each kill the daemon restarts on the
 * same data directory; the client resends every mail that did not get its
 * 250 (same bytes, same Message-ID), as a real MTA would.
 *
 * The promise under test: a mail acknowledged with 250 is faxed exactly once
 * (a resend after a lost 250 is a duplicate job, never a second fax), and
 * every received fax is mailed, with redeliveries after a crash between the
 * MTA's 250 and our commit carrying the same Message-ID.
 */
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../helpers/build.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { daemonEnv, EmulatorProcess, faxMail, inboundDeliveries, markerPdf, prng, queueStates, RestartableDaemon, sha256, waitQuiescent } from "./harness.js";
import { sendRaw } from "./smtp-client.js";

const MAILS = 200;
const INBOUND = 50;
const KILLS = 4;
const SENDERS = 4;
const INBOX = "fax-inbox@gw.test";

let emu: EmulatorProcess | undefined;
let sink: SmtpSink | undefined;
let daemon: RestartableDaemon | undefined;
let dir: ReturnType<typeof tempDir> | undefined;

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  await daemon?.stop();
  await emu?.stop();
  await sink?.close();
  dir?.cleanup();
  daemon = undefined;
  emu = undefined;
  sink = undefined;
  dir = undefined;
});

interface OutMail {
  marker: string;
  hash: string;
  raw: Buffer;
  to: string;
  from: string;
  acked: boolean;
  tries: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function crashRun(seed: number): Promise<void> {
  const rand = prng(seed);
  const e = await new EmulatorProcess().start();
  emu = e;
  const s = await new SmtpSink().start();
  sink = s;
  dir = tempDir("faxbridge-fault-");
  const dbFile = join(dir.path, "faxbridge.db");
  const d = new RestartableDaemon(daemonEnv({ dataDir: dir.path, emulatorUrl: e.url, mediaUrl: e.mediaUrl, sinkUrl: s.url }));
  daemon = d;
  await d.start();
  const started = Date.now();

  const mails: OutMail[] = [];
  for (let i = 0; i < MAILS; i++) {
    const marker = `s${seed}-m${i}`;
    const pdf = markerPdf(marker);
    const to = `1555123${String(4000 + (i % 10)).padStart(4, "0")}@fax.local`;
    const from = `sender${i}@example.test`;
    mails.push({ marker, hash: sha256(pdf), raw: faxMail({ from, to, marker, pdf, messageId: `${marker}@example.test` }), to, from, acked: false, tries: 0 });
  }
  const todo = [...mails];
  let brokenAfterData = 0;
  let refused = 0;

  const sender = async (): Promise<void> => {
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const m = todo.shift();
      if (!m) {
        if (mails.every((x) => x.acked)) return;
        await sleep(20);
        continue;
      }
      const port = d.smtpPort;
      if (port === 0) {
        todo.push(m);
        await sleep(50);
        continue;
      }
      m.tries++;
      const r = await sendRaw({ port, from: m.from, to: [m.to], raw: m.raw, timeoutMs: 10_000 });
      if (r.kind === "reply" && r.stage === "end" && r.code === 250) {
        m.acked = true;
        continue;
      }
      if (r.kind === "broken" && r.stage === "end") brokenAfterData++;
      if (r.kind === "reply") {
        refused++;
        // Only transient refusals are acceptable for a well-formed mail.
        expect(r.code, `${m.marker}: ${r.stage} ${r.code} ${r.text}`).toBeGreaterThanOrEqual(400);
        expect(r.code, `${m.marker}: ${r.stage} ${r.code} ${r.text}`).toBeLessThan(500);
      }
      todo.push(m);
      await sleep(30);
    }
  };

  const injected: string[] = [];
  const inboundHashes = new Set<string>();
  const injector = async (): Promise<void> => {
    for (let i = 0; i < INBOUND; i++) {
      const pdf = markerPdf(`s${seed}-in${i}`);
      inboundHashes.add(sha256(pdf));
      injected.push(await e.injectInbound(pdf, `+1555765${String(1000 + i).padStart(4, "0")}`));
      await sleep(Math.floor(rand() * 80));
    }
  };

  const killPoints: number[] = [];
  const killer = async (): Promise<void> => {
    for (let k = 0; k < KILLS; k++) {
      const wait = 300 + Math.floor(rand() * 1700);
      killPoints.push(wait);
      await sleep(wait);
      await d.restart();
    }
  };

  await Promise.all([killer(), injector(), ...Array.from({ length: SENDERS }, () => sender())]);
  expect(mails.filter((m) => !m.acked).map((m) => m.marker)).toEqual([]);

  const faxesByHash = async (): Promise<Map<string, number>> => {
    const counts = new Map<string, number>();
    for (const f of await e.sentFaxes()) for (const a of f.attachments) counts.set(a.sha256, (counts.get(a.sha256) ?? 0) + 1);
    return counts;
  };
  await waitQuiescent(dbFile, 90_000, async () => {
    const faxes = await faxesByHash();
    return mails.every((m) => faxes.has(m.hash)) && inboundDeliveries(s, INBOX).byPdf.size >= INBOUND;
  });

  // Outbound: every acknowledged mail faxed exactly once, nothing else faxed.
  const faxes = await faxesByHash();
  const twice = mails.filter((m) => (faxes.get(m.hash) ?? 0) !== 1).map((m) => `${m.marker}×${faxes.get(m.hash) ?? 0}`);
  expect(twice).toEqual([]);
  expect([...faxes.keys()].filter((h) => !mails.some((m) => m.hash === h))).toEqual([]);

  // Inbound: exactly the 50 faxes, each under one Message-ID; redeliveries by Message-ID counted.
  const inbound = inboundDeliveries(s, INBOX);
  expect(inbound.byPdf.size).toBe(INBOUND);
  expect([...inbound.byPdf.keys()].every((h) => inboundHashes.has(h))).toBe(true);
  for (const [, ids] of inbound.byPdf) expect(ids.size).toBe(1);
  const duplicates = inbound.mails - inbound.byMessageId.size;

  const states = queueStates(dbFile);
  const summary = {
    seed,
    killPointsMs: killPoints,
    generations: d.generations.length,
    resends: mails.reduce((n, m) => n + m.tries - 1, 0),
    brokenAfterData,
    transientRefusals: refused,
    outboundJobs: states.outbound,
    duplicateJobsCancelled: states.outbound.cancelled ?? 0,
    inboundMails: inbound.mails,
    inboundDuplicatesByMessageId: duplicates,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  console.log(`[fault] kill -9 run ${JSON.stringify(summary)}`);
  // A redelivery needs a kill between the sink's 250 and our commit: a handful at most.
  expect(duplicates).toBeLessThanOrEqual(KILLS);
}

describe("kill -9 at random points", () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: every acknowledged mail faxed once, every received fax mailed once`, async () => {
      await crashRun(seed);
    }, 180_000);
  }
});
