/**
 * Three instances, one PostgreSQL database, one RingCentral emulator (issue
 * 11's proof). Each instance is the built daemon as a child process with its
 * own data directory (no shared disk) and the same FAXBRIDGE_DATABASE_URL;
 * RC_JWT names a pool of two extensions. 300 mails go in over the three SMTP
 * listeners, as an MTA with three MX hosts would send them (a mail not
 * answered 250 is sent again, to the next live instance); 30 faxes arrive at
 * RingCentral meanwhile, on both pool extensions. The inbound leader is
 * killed with SIGKILL mid-run and restarted; another instance (the leader by
 * then, if it is not the first) is killed later and stays dead, so claimed
 * work and the inbound sync must be taken over by the others.
 *
 * The promise: every mail answered 250 is faxed exactly once (emulator
 * control API) and reported exactly once (the SMTP sink); every received fax
 * is mailed once (a mail repeated because an instance died between the sink's
 * 250 and its commit carries the same Message-ID, which the receiving MTA
 * drops). A repeat, of a report or of a received fax, is excused only for work
 * that was leased when an instance was killed (each instance delivers up to
 * four faxes at once, so one kill may leave several in flight); anything else
 * repeated is a bug.
 */
import pg from "pg";
import { afterEach, beforeAll, expect, it } from "vitest";
import { ensureBuilt } from "../helpers/build.js";
import { EmulatorControl } from "../helpers/emulator-control.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { daemonEnv, EmulatorProcess, faxMail, inboundDeliveries, markerPdf, RestartableDaemon, sha256 } from "./harness.js";
import { sendRaw } from "./smtp-client.js";

const MAILS = 300;
const INBOUND = 30;
const INSTANCES = 3;
const SENDERS = 6;
const INBOX = "fax-inbox@gw.test";
/** Three daemons starting at once on a busy machine (2 cores shared by several test runs) may take a while. */
const START_MS = 90_000;
const JWTS = ["eyJ.fleet-first.sig", "eyJ.fleet-second.sig"];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface OutMail {
  marker: string;
  messageId: string;
  hash: string;
  raw: Buffer;
  to: string;
  from: string;
  acked: boolean;
  tries: number;
  /** The last failed try, for the failure message. */
  last?: string;
}

/** Job and fax states straight from the shared database. */
async function queueStates(url: string): Promise<{ outbound: Record<string, number>; inbound: Record<string, number>; stuck: unknown[] }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const count = async (table: string): Promise<Record<string, number>> => {
      const r = await c.query<{ state: string; n: string }>(`SELECT state, COUNT(*) AS n FROM ${table} GROUP BY state`);
      return Object.fromEntries(r.rows.map((x) => [x.state, Number(x.n)]));
    };
    const stuck = await c.query(
      `SELECT id, state, attempts, lease_owner, lease_until - (extract(epoch from clock_timestamp()) * 1000)::bigint AS lease_in_ms, last_error
         FROM outbound_jobs WHERE state NOT IN ('notified','cancelled') LIMIT 10`,
    );
    return { outbound: await count("outbound_jobs"), inbound: await count("inbound_faxes"), stuck: stuck.rows };
  } finally {
    await c.end();
  }
}

/** Message-IDs (without angle brackets) of work leased at this moment: reports not yet committed, received faxes not yet marked delivered. */
async function inFlight(url: string): Promise<{ reports: string[]; inbound: string[] }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const held = "lease_owner IS NOT NULL AND lease_until > (extract(epoch from clock_timestamp()) * 1000)::bigint";
    const out = await c.query<{ message_id: string | null }>(`SELECT message_id FROM outbound_jobs WHERE state IN ('final','failed') AND ${held}`);
    const inb = await c.query<{ mail_message_id: string }>(`SELECT mail_message_id FROM inbound_faxes WHERE state = 'discovered' AND ${held}`);
    return {
      reports: out.rows.flatMap((r) => (r.message_id === null ? [] : [bare(r.message_id)])),
      inbound: inb.rows.map((r) => bare(r.mail_message_id)),
    };
  } finally {
    await c.end();
  }
}

const bare = (id: string): string => id.trim().replace(/^<|>$/g, "");

/** The Message-IDs sent more than once, each with its number of extra copies. */
function repeats(counts: Map<string, number>): Map<string, number> {
  return new Map([...counts].filter(([, n]) => n > 1).map(([id, n]) => [bare(id), n - 1]));
}

/** Repeats not explained by work in flight at a kill: each kill excuses one extra copy of each id it interrupted. */
function unexcused(extra: Map<string, number>, interrupted: readonly string[][]): string[] {
  const allowance = new Map<string, number>();
  for (const ids of interrupted) for (const id of new Set(ids)) allowance.set(id, (allowance.get(id) ?? 0) + 1);
  return [...extra].filter(([id, n]) => n > (allowance.get(id) ?? 0)).map(([id, n]) => `${id}×${n + 1}`);
}

function settled(s: { outbound: Record<string, number>; inbound: Record<string, number> }): boolean {
  const out = Object.entries(s.outbound).every(([state, n]) => n === 0 || state === "notified" || state === "cancelled");
  const inb = Object.entries(s.inbound).every(([state, n]) => n === 0 || state === "delivered" || state === "dead");
  return out && inb;
}

describePg("three instances on one PostgreSQL database, kill -9 twice", () => {
  const db = usePgDatabase();
  let emu: EmulatorProcess | undefined;
  let sink: SmtpSink | undefined;
  const fleet: RestartableDaemon[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  }, 180_000);

  afterEach(async () => {
    for (const d of fleet.splice(0)) await d.stop();
    await emu?.stop();
    await sink?.close();
    for (const d of dirs.splice(0)) d.cleanup();
    emu = undefined;
    sink = undefined;
  });

  it("every mail answered 250 is faxed and reported once; every received fax is mailed once", async () => {
    const started = Date.now();
    const e = (emu = await new EmulatorProcess().start());
    const control = new EmulatorControl(e.url);
    const extensions: string[] = [];
    for (const jwt of JWTS) extensions.push((await control.request<{ extensionId: string }>("POST", "/emulator/extensions", { jwt })).extensionId);
    const s = (sink = await new SmtpSink().start());
    for (let i = 0; i < INSTANCES; i++) {
      const dir = tempDir(`faxbridge-fleet-${i}-`);
      dirs.push(dir);
      const env = daemonEnv({
        dataDir: dir.path,
        emulatorUrl: e.url,
        mediaUrl: e.mediaUrl,
        sinkUrl: s.url,
        extra: {
          FAXBRIDGE_DATABASE_URL: db.url,
          RC_JWT: JWTS.join(","),
          // Quotas are shared by the instances, and a mail cut off by a kill keeps what it took for the hour: crash safety is under test, not quotas.
          FAXBRIDGE_POLICY_QUOTAS_PER_CLIENT_IP_PER_HOUR: "100000",
          FAXBRIDGE_POLICY_QUOTAS_GLOBAL_PER_HOUR: "100000",
          FAXBRIDGE_POLICY_QUOTAS_PER_SENDER_PER_HOUR: "100000",
        },
      });
      fleet.push(new RestartableDaemon(env));
    }
    try {
      await Promise.all(fleet.map((d) => d.start(START_MS)));
    } catch (err) {
      throw new Error(`${String(err)}\n${fleet.map((d, i) => `--- instance ${i + 1}\n${d.current?.tail(15) ?? ""}`).join("\n")}`, { cause: err });
    }

    const mails: OutMail[] = [];
    for (let i = 0; i < MAILS; i++) {
      const marker = `fleet-m${i}`;
      const pdf = markerPdf(marker);
      const to = `1555123${String(5000 + (i % 10)).padStart(4, "0")}@fax.local`;
      const from = `sender${i % 7}@example.test`;
      const messageId = `${marker}@example.test`;
      mails.push({ marker, messageId, hash: sha256(pdf), raw: faxMail({ from, to, marker, pdf, messageId }), to, from, acked: false, tries: 0 });
    }
    const todo = [...mails];
    let next = 0;
    let refused = 0;
    let broken = 0;
    const permanent: string[] = [];
    const ackedBy = fleet.map(() => 0);
    // An MTA with three MX hosts: round robin over the instances that listen; a failed try goes to the back of the queue.
    const sender = async (): Promise<void> => {
      const deadline = Date.now() + 180_000;
      while (Date.now() < deadline) {
        const m = todo.shift();
        if (!m) {
          if (mails.every((x) => x.acked)) return;
          await sleep(20);
          continue;
        }
        const live = fleet.filter((d) => d.smtpPort !== 0);
        const d = live[next++ % Math.max(1, live.length)];
        if (d === undefined) {
          todo.push(m);
          await sleep(50);
          continue;
        }
        m.tries++;
        const r = await sendRaw({ port: d.smtpPort, from: m.from, to: [m.to], raw: m.raw, timeoutMs: 10_000 });
        if (r.kind === "reply" && r.stage === "end" && r.code === 250) {
          m.acked = true;
          const k = fleet.indexOf(d);
          ackedBy[k] = (ackedBy[k] ?? 0) + 1;
          continue;
        }
        m.last = r.kind === "reply" ? `${r.stage} ${r.code} ${r.text}` : `broken at ${r.stage}: ${r.error}`;
        if (r.kind === "broken") broken++;
        if (r.kind === "reply") {
          refused++;
          // Only transient refusals are acceptable for a well-formed mail.
          if (r.code < 400 || r.code >= 500) permanent.push(`${m.marker}: ${r.stage} ${r.code} ${r.text}`);
        }
        todo.push(m);
        await sleep(30);
      }
    };

    const inboundHashes = new Set<string>();
    const injector = async (): Promise<void> => {
      for (let i = 0; i < INBOUND; i++) {
        const pdf = markerPdf(`fleet-in${i}`);
        inboundHashes.add(sha256(pdf));
        const ext = extensions[i % extensions.length] ?? "";
        const from = `+1555765${String(2000 + i).padStart(4, "0")}`;
        await control.request("POST", `/emulator/inbound-faxes?extensionId=${ext}&from=${encodeURIComponent(from)}`, pdf, "application/pdf");
        await sleep(150);
      }
    };

    const acked = (): number => mails.filter((m) => m.acked).length;
    const kills: string[] = [];
    /** What was leased right after each kill (a killed instance's leases stay until they expire or are taken over). */
    const interrupted: { reports: string[]; inbound: string[] }[] = [];
    /** The live instance that leads inbound sync now (its current process logged leader.elected last), else `fallback`. */
    const leader = (fallback: RestartableDaemon, not?: RestartableDaemon): RestartableDaemon => {
      const leading = fleet.filter((d) => {
        if (d === not || d.smtpPort === 0) return false;
        const events = (d.current?.lines ?? []).filter((l) => l.event === "leader.elected" || l.event === "leader.stepped_down");
        return events.at(-1)?.event === "leader.elected";
      });
      return leading[0] ?? fallback;
    };
    const killer = async (): Promise<void> => {
      // The inbound leader dies a third of the way in and comes back; then the leader of that moment
      // (another instance) dies and stays dead, so its claimed work and the inbound sync move twice.
      while (acked() < MAILS / 3) await sleep(20);
      const first = leader(fleet[0] as RestartableDaemon);
      await first.kill9();
      interrupted.push(await inFlight(db.url));
      kills.push(`instance ${fleet.indexOf(first) + 1} (leader) at ${acked()} acked`);
      await sleep(1500);
      await first.start(START_MS);
      while (acked() < (2 * MAILS) / 3) await sleep(20);
      const second = leader(fleet.find((d) => d !== first) as RestartableDaemon, first);
      await second.kill9();
      interrupted.push(await inFlight(db.url));
      kills.push(`instance ${fleet.indexOf(second) + 1} at ${acked()} acked`);
    };

    await Promise.all([killer(), injector(), ...Array.from({ length: SENDERS }, () => sender())]);
    expect(permanent).toEqual([]);
    expect(mails.filter((m) => !m.acked).map((m) => `${m.marker} (${m.tries} tries, last: ${m.last ?? "none"})`)).toEqual([]);

    const faxesByHash = async (): Promise<Map<string, number>> => {
      const counts = new Map<string, number>();
      for (const f of await e.sentFaxes()) for (const a of f.attachments) counts.set(a.sha256, (counts.get(a.sha256) ?? 0) + 1);
      return counts;
    };
    const reports = (): Map<string, number> => {
      const byOriginal = new Map<string, number>();
      for (const m of s.messages) {
        const irt = m.parsed.inReplyTo;
        if (irt === undefined || m.to.includes(INBOX)) continue;
        byOriginal.set(irt, (byOriginal.get(irt) ?? 0) + 1);
      }
      return byOriginal;
    };
    try {
      await waitFor(
        async () => {
          const faxes = await faxesByHash();
          const rep = reports();
          return (
            mails.every((m) => faxes.has(m.hash) && rep.has(`<${m.messageId}>`)) &&
            inboundDeliveries(s, INBOX).byPdf.size >= INBOUND &&
            settled(await queueStates(db.url))
          );
        },
        { timeoutMs: 120_000, what: "every fax sent and reported, every received fax mailed" },
      );
    } catch (err) {
      const st = await queueStates(db.url);
      const faxes = await faxesByHash();
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}; kills ${JSON.stringify(kills)}; queue ${JSON.stringify(st.outbound)} / ${JSON.stringify(st.inbound)}; ` +
          `unfaxed ${mails.filter((m) => !faxes.has(m.hash)).length}; unreported ${mails.filter((m) => !reports().has(`<${m.messageId}>`)).length}; ` +
          `received mailed ${inboundDeliveries(s, INBOX).byPdf.size}/${INBOUND}; stuck ${JSON.stringify(st.stuck)}`,
        { cause: err },
      );
    }

    // Outbound: each acknowledged mail faxed exactly once, nothing else faxed.
    const faxes = await faxesByHash();
    expect(mails.filter((m) => faxes.get(m.hash) !== 1).map((m) => `${m.marker}×${faxes.get(m.hash) ?? 0}`)).toEqual([]);
    expect([...faxes.keys()].filter((h) => !mails.some((m) => m.hash === h))).toEqual([]);
    // Reports: one per mail by In-Reply-To; a repeat needs a kill between the sink's 250 and the commit.
    const rep = reports();
    const reportRepeats = mails.reduce((n, m) => n + (rep.get(`<${m.messageId}>`) ?? 0) - 1, 0);
    expect(unexcused(repeats(rep), interrupted.map((i) => i.reports))).toEqual([]);

    // Inbound: exactly the injected faxes, each under one Message-ID.
    const inbound = inboundDeliveries(s, INBOX);
    expect(inbound.byPdf.size).toBe(INBOUND);
    expect([...inbound.byPdf.keys()].every((h) => inboundHashes.has(h))).toBe(true);
    for (const [, ids] of inbound.byPdf) expect(ids.size).toBe(1);
    const inboundRepeats = inbound.mails - inbound.byMessageId.size;
    expect(unexcused(repeats(inbound.byMessageId), interrupted.map((i) => i.inbound))).toEqual([]);

    // Work was shared: every instance that lived accepted mail, and leadership moved or stayed on a live one.
    const accepted = ackedBy;
    const states = await queueStates(db.url);
    console.log(
      `[fault] fleet ${JSON.stringify({
        kills,
        acceptedPerInstance: accepted,
        resends: mails.reduce((n, m) => n + m.tries - 1, 0),
        broken,
        transientRefusals: refused,
        outboundJobs: states.outbound,
        reportRepeats,
        inboundRepeats,
        inFlightAtKills: interrupted.map((i) => ({ reports: i.reports.length, inbound: i.inbound.length })),
        leaders: fleet.map((d) => d.events("leader.elected").length),
        seconds: Math.round((Date.now() - started) / 100) / 10,
      })}`,
    );
    expect(accepted.every((n) => n > 0)).toBe(true);
  }, 420_000);
});
