/**
 * Issue 15: the fax pipeline runs off the intake's event loop. Every piece is
 * a real process on loopback: `faxbridge run` (with its pipeline child), or
 * `run --role intake` beside `run --role worker`; the RingCentral emulator as
 * its own process; an SMTP sink for reports. Nothing here is timed.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../helpers/build.js";
import { DaemonProcess, type LogLine } from "../helpers/daemon.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { daemonEnv, EmulatorProcess, faxMail, markerPdf } from "../fault/harness.js";
import { sendRaw } from "../fault/smtp-client.js";

let emulator: EmulatorProcess | undefined;
let sink: SmtpSink | undefined;
let dir: ReturnType<typeof tempDir> | undefined;
const procs: DaemonProcess[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop();
  await emulator?.stop();
  await sink?.close();
  dir?.cleanup();
  emulator = undefined;
  sink = undefined;
  dir = undefined;
});

async function setup(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  emulator = await new EmulatorProcess().start();
  sink = await new SmtpSink().start();
  dir = tempDir("faxbridge-roles-");
  return daemonEnv({ dataDir: dir.path, emulatorUrl: emulator.url, mediaUrl: emulator.mediaUrl, sinkUrl: sink.url, extra });
}

async function start(env: Record<string, string>, args: string[]): Promise<DaemonProcess> {
  const p = new DaemonProcess(env);
  procs.push(p);
  await p.start(args);
  return p;
}

async function mail(port: number, marker: string): Promise<number> {
  const to = "15551234000@fax.local";
  const from = "sender@example.test";
  const outcome = await sendRaw({ port, from, to: [to], raw: faxMail({ from, to, marker, pdf: markerPdf(marker), messageId: `${marker}@example.test` }) });
  return outcome.kind === "reply" ? outcome.code : 0;
}

async function faxed(marker: string): Promise<void> {
  await waitFor(async () => (await emulator!.sentFaxes()).some((f) => f.attachments.some((a) => a.filename.includes(marker))), { timeoutMs: 30_000, what: `the fax of ${marker}` });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const pipelinePid = (l: LogLine): number => Number(l.pid);

describe("faxbridge run --role all", () => {
  it("faxes an accepted mail through the pipeline process, not the intake's", async () => {
    const d = await start(await setup(), ["run"]);
    const { smtpPort } = await d.started();
    const child = await d.waitForLine((l) => l.event === "pipeline.process_started", 60_000);
    const started = await d.waitForLine((l) => l.event === "pipeline.started", 60_000);
    expect(pipelinePid(started)).not.toBe(d.pid);
    expect(started.role).toBe("pipeline");
    expect(pipelinePid(started)).toBe(pipelinePid(child));
    expect(await mail(smtpPort, "all-1")).toBe(250);
    await faxed("all-1");
    // The submission is logged by the pipeline process.
    const submitted = await d.waitForLine((l) => typeof l.event === "string" && l.event === "fax.submitted");
    expect(submitted.role).toBe("pipeline");
  }, 90_000);

  it("restarts a pipeline process that died alone; the intake keeps answering and the mail is faxed", async () => {
    const d = await start(await setup(), ["run"]);
    const { smtpPort, httpPort } = await d.started();
    const first = pipelinePid(await d.waitForLine((l) => l.event === "pipeline.started", 60_000));
    process.kill(first, "SIGKILL");
    await d.waitForLine((l) => l.event === "pipeline.crashed", 60_000);
    // Accepted while the pipeline is down or coming back.
    expect(await mail(smtpPort, "crash-1")).toBe(250);
    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(200);
    const second = await d.waitForLine((l) => l.event === "pipeline.started" && pipelinePid(l) !== first, 60_000);
    expect(alive(pipelinePid(second))).toBe(true);
    await faxed("crash-1");
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    expect(metrics).toMatch(/faxbridge_pipeline_restarts_total 1\b/);
    // The pipeline's own figures reach the one /metrics endpoint.
    expect(metrics).toMatch(/faxbridge_faxes_submitted_total [1-9]/);
  }, 90_000);

  it("SIGTERM stops the intake and the pipeline process cleanly", async () => {
    const d = await start(await setup(), ["run"]);
    await d.started();
    const child = pipelinePid(await d.waitForLine((l) => l.event === "pipeline.started", 60_000));
    d.kill("SIGTERM");
    expect(await d.exited()).toEqual({ code: 0, signal: null });
    await waitFor(() => !alive(child), { timeoutMs: 5_000, what: "the pipeline process to exit" });
    expect(d.lines.filter((l) => l.event === "daemon.stopped").length).toBeGreaterThanOrEqual(2);
    expect(d.lines.map((l) => l.event)).not.toContain("pipeline.crashed");
  }, 60_000);

  it("kill -9 of the daemon takes the pipeline process with it", async () => {
    const d = await start(await setup(), ["run"]);
    await d.started();
    const child = pipelinePid(await d.waitForLine((l) => l.event === "pipeline.started", 60_000));
    d.kill("SIGKILL");
    await d.exited();
    await waitFor(() => !alive(child), { timeoutMs: 5_000, what: "the orphaned pipeline process to exit" });
  }, 60_000);
});

describe("faxbridge run --role intake beside --role worker", () => {
  it("fax a mail end to end on one SQLite data directory", async () => {
    const env = await setup();
    const worker = await start(env, ["run", "--role", "worker"]);
    await worker.waitForLine((l) => l.event === "pipeline.started", 60_000);
    const intake = await start(env, ["run", "--role", "intake"]);
    const { smtpPort } = await intake.started();
    expect(intake.lines.map((l) => l.event)).not.toContain("pipeline.started");
    expect(await mail(smtpPort, "split-1")).toBe(250);
    await faxed("split-1");
  }, 90_000);

  it("a second worker on the same SQLite data directory is refused", async () => {
    const env = await setup();
    const worker = await start(env, ["run", "--role", "worker"]);
    await worker.waitForLine((l) => l.event === "pipeline.started", 60_000);
    const second = await start(env, ["run", "--role", "worker"]);
    const { code } = await second.exited();
    expect(code).not.toBe(0);
    expect(second.stderr.join("\n") + JSON.stringify(second.lines)).toContain("in use by process");
  }, 60_000);
});

describePg("faxbridge run --role intake beside --role worker on PostgreSQL", () => {
  const db = usePgDatabase();
  it("fax a mail end to end, woken by NOTIFY", async () => {
    const env = await setup({ FAXBRIDGE_DATABASE_URL: db.url });
    const worker = await start({ ...env, FAXBRIDGE_DATA_DIR: `${dir!.path}/worker` }, ["run", "--role", "worker"]);
    await worker.waitForLine((l) => l.event === "pipeline.started", 60_000);
    const intake = await start({ ...env, FAXBRIDGE_DATA_DIR: `${dir!.path}/intake` }, ["run", "--role", "intake"]);
    const { smtpPort } = await intake.started();
    expect(await mail(smtpPort, "pg-split-1")).toBe(250);
    await faxed("pg-split-1");
  }, 90_000);
});
