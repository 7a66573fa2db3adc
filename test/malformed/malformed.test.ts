/**
 * Broken and hostile MIME through the real daemon (a child process talking
 * to the emulator process and an SMTP sink). For every case exactly one of:
 * refused at SMTP time with a clear reply; or accepted and then either faxed
 * sensibly (documents with safe filenames) or answered with a notice that
 * says why. Throughout, the daemon stays up and responsive, every case
 * settles within a deadline, and no file is written outside the data dir.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, ROOT } from "../helpers/build.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { daemonEnv, EmulatorProcess, faxMail, markerPdf, RestartableDaemon, sha256, waitQuiescent, type SentFax } from "../fault/harness.js";
import { sendRaw, type SendOutcome } from "../fault/smtp-client.js";
import { fixtureCorpus, generatedCorpus, type MalformedCase } from "./corpus.js";

let emu: EmulatorProcess | undefined;
let sink: SmtpSink | undefined;
let daemon: RestartableDaemon | undefined;
let dir: ReturnType<typeof tempDir> | undefined;

/** Files a traversal would create, and files it could overwrite. */
const ESCAPE_TARGETS = ["/tmp/evil-2047.pdf", "/tmp/evil-2231.pdf", "/tmp/fixture-evil.pdf", "/tmp/uu-evil.pdf", "/etc/cron.d/evil.pdf", "/etc/passwd", "/win.pdf", join(ROOT, "x.pdf"), join(ROOT, "C:\\x.pdf")];
const HOSTILE_NAME = /evil|passwd|x\.pdf|win\.pdf|nested\.pdf|fwd\.eml/;

function fingerprint(path: string): string {
  try {
    const st = statSync(path);
    return st.isFile() ? `${st.size}:${st.mtimeMs}:${createHash("sha256").update(readFileSync(path)).digest("hex")}` : `dir:${st.mtimeMs}`;
  } catch {
    return "absent";
  }
}

function hostileEntries(path: string): string[] {
  try {
    return readdirSync(path).filter((n) => HOSTILE_NAME.test(n));
  } catch {
    return [];
  }
}

function walk(path: string, out: string[] = []): string[] {
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    out.push(p);
    if (e.isDirectory()) walk(p, out);
  }
  return out;
}

interface JobRow {
  id: string;
  state: string;
  error_code: string | null;
  error_text: string | null;
  rc_message_id: string | null;
}

/** 1–255 characters, no path separators, no control characters. */
function safeFilename(n: string): boolean {
  return n.length >= 1 && n.length <= 255 && !n.includes("/") && !n.includes("\\") && ![...n].some((ch) => ch.charCodeAt(0) < 0x20) && !n.startsWith("..");
}

describe("malformed and hostile mail", () => {
  beforeAll(async () => {
    await ensureBuilt();
  }, 180_000);

  afterAll(async () => {
    await daemon?.stop();
    await emu?.stop();
    await sink?.close();
    dir?.cleanup();
  });

  it("each case is refused clearly, faxed sensibly or answered with a notice; the daemon stays up, nothing stalls or escapes", async () => {
    const e = await new EmulatorProcess().start();
    emu = e;
    const s = await new SmtpSink().start();
    sink = s;
    dir = tempDir("faxbridge-malformed-");
    const dataDir = join(dir.path, "data");
    const d = new RestartableDaemon(daemonEnv({ dataDir, emulatorUrl: e.url, mediaUrl: e.mediaUrl, sinkUrl: s.url }));
    daemon = d;
    await d.start();
    const proc = d.current;
    if (!proc) throw new Error("no daemon");
    let exited = false;
    void proc.exited().then(() => (exited = true));

    const before = new Map(ESCAPE_TARGETS.map((p) => [p, fingerprint(p)]));
    const hostileBefore = new Set([...hostileEntries(tmpdir()), ...hostileEntries(ROOT), ...hostileEntries(dir.path)]);

    const corpus: MalformedCase[] = [...generatedCorpus(), ...fixtureCorpus()];
    const outcomes = new Map<string, { outcome: SendOutcome; ms: number }>();
    const problems: string[] = [];
    const started = Date.now();
    for (const c of corpus) {
      const t0 = Date.now();
      const outcome = await sendRaw({ port: d.smtpPort, from: `${c.name}@example.test`, to: ["15551234567@fax.local"], raw: c.raw, timeoutMs: 30_000 });
      outcomes.set(c.name, { outcome, ms: Date.now() - t0 });
      if (exited) {
        problems.push(`${c.name}: the daemon exited\n${proc.tail(10)}`);
        break;
      }
      const health = await fetch(`http://127.0.0.1:${d.httpPort}/healthz`);
      if (health.status !== 200) problems.push(`${c.name}: /healthz answered ${health.status} afterwards`);
    }
    const sendMs = Date.now() - started;
    expect(problems).toEqual([]);

    // Still accepting a normal mail, and faxing it.
    const pdf = markerPdf("after-the-corpus");
    const normal = await sendRaw({
      port: d.smtpPort,
      from: "normal@example.test",
      to: ["15551234567@fax.local"],
      raw: faxMail({ from: "normal@example.test", to: "15551234567@fax.local", marker: "normal", pdf, messageId: "normal@example.test" }),
    });
    expect(normal).toMatchObject({ kind: "reply", stage: "end", code: 250 });

    // Everything settles.
    const dbFile = join(dataDir, "faxbridge.db");
    await waitQuiescent(dbFile, 90_000);
    // The last report's SMTP transaction to the sink finishes after the state change: wait for every notified job's notice.
    const notifiedDb = new Database(dbFile, { readonly: true });
    const notifiedSenders = notifiedDb.prepare<[], { mail_from: string }>("SELECT mail_from FROM outbound_jobs WHERE state = 'notified'").all().map((r) => r.mail_from);
    notifiedDb.close();
    await waitFor(() => notifiedSenders.every((from) => s.messages.some((m) => m.to.includes(from))), 10_000, "every notified sender's notice at the sink");
    const faxes = new Map<string, SentFax>((await e.sentFaxes()).map((f) => [f.id, f]));
    expect([...faxes.values()].some((f) => f.attachments.some((a) => a.sha256 === sha256(pdf)))).toBe(true);

    const db = new Database(dbFile, { readonly: true });
    const jobsOf = db.prepare<[string], JobRow>("SELECT id, state, error_code, error_text, rc_message_id FROM outbound_jobs WHERE mail_from = ?");
    const table: string[] = [];
    for (const c of corpus) {
      const o = outcomes.get(c.name);
      if (!o) continue;
      const sender = `${c.name}@example.test`;
      const jobs = jobsOf.all(sender);
      const reports = s.messages.filter((m) => m.to.includes(sender));
      let verdict: string;
      if (o.outcome.kind === "broken") {
        verdict = `BROKEN at ${o.outcome.stage}: ${o.outcome.error}`;
        problems.push(`${c.name}: the connection broke without a reply (${o.outcome.stage}: ${o.outcome.error})`);
      } else if (o.outcome.code !== 250) {
        verdict = `refused ${o.outcome.code} at ${o.outcome.stage}: ${o.outcome.text}`;
        if (o.outcome.code < 400 || o.outcome.text.trim().length < 5) problems.push(`${c.name}: unclear refusal ${o.outcome.code} ${o.outcome.text}`);
        if (jobs.length !== 0) problems.push(`${c.name}: refused but a job exists`);
      } else if (jobs.length !== 1) {
        verdict = `accepted, ${jobs.length} jobs`;
        problems.push(`${c.name}: accepted with ${jobs.length} jobs`);
      } else {
        const job = jobs[0] as JobRow;
        if (job.state !== "notified") problems.push(`${c.name}: job ended ${job.state}`);
        if (reports.length !== 1) problems.push(`${c.name}: ${reports.length} notices to the sender`);
        const subject = reports[0]?.parsed.subject ?? "";
        if (job.rc_message_id !== null) {
          const fax = faxes.get(job.rc_message_id);
          const names = fax?.attachments.map((a) => a.filename) ?? [];
          verdict = `faxed [${names.map((n) => JSON.stringify(n.length > 60 ? `${n.slice(0, 40)}…(${n.length})` : n)).join(", ")}]; notice "${subject}"`;
          if (!fax) problems.push(`${c.name}: rc message ${job.rc_message_id} not at the emulator`);
          for (const n of names) if (!safeFilename(n)) problems.push(`${c.name}: unsafe filename sent to RingCentral: ${JSON.stringify(n)}`);
          if (fax && fax.attachments.length === 0 && (fax.coverPageText ?? "") === "") problems.push(`${c.name}: a fax with neither documents nor cover text`);
        } else {
          verdict = `not faxed (${job.error_code ?? "?"}: ${job.error_text ?? ""}); notice "${subject}"`;
          if ((job.error_text ?? "").trim().length < 5) problems.push(`${c.name}: no clear reason recorded`);
          if (subject.trim() === "") problems.push(`${c.name}: notice without a subject`);
        }
      }
      table.push(`${c.name.padEnd(42)} ${String(o.ms).padStart(5)} ms  ${verdict}`);
    }
    db.close();
    console.log(`[malformed] ${corpus.length} cases sent in ${sendMs} ms\n${table.join("\n")}`);

    // Nothing escaped the data directory.
    for (const [p, fp] of before) if (fingerprint(p) !== fp) problems.push(`${p} changed`);
    for (const n of [...hostileEntries(tmpdir()), ...hostileEntries(ROOT), ...hostileEntries(dir.path)]) if (!hostileBefore.has(n)) problems.push(`new file outside the data dir: ${n}`);
    const root = realpathSync(dataDir) + sep;
    for (const p of walk(dataDir)) if (!realpathSync(p).startsWith(root)) problems.push(`${p} resolves outside the data dir`);
    for (const p of ESCAPE_TARGETS) if (!p.startsWith("/etc") && before.get(p) === "absent" && existsSync(p)) problems.push(`${p} was created`);

    expect(problems).toEqual([]);
    expect(exited).toBe(false);
  }, 300_000);
});
