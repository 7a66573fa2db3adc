/**
 * Whole-queue gauges with several instances on one PostgreSQL database (issue
 * 11): queue depth and the oldest job's age describe the shared queue, so
 * only the inbound leader exports them (`faxbridge_queue_reporter 1`); the
 * others export no `faxbridge_queue_jobs` series and
 * `faxbridge_queue_reporter 0`, so `sum(faxbridge_queue_jobs)` over the
 * instances counts every job once.
 */
import { afterEach, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

describePg("queue gauges with two instances on PostgreSQL", () => {
  const db = usePgDatabase();
  const daemons: Daemon[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];
  afterEach(async () => {
    for (const d of daemons.splice(0).reverse()) await d.close();
    for (const d of dirs.splice(0)) d.cleanup();
  });

  async function start(): Promise<Daemon> {
    const dir = tempDir("faxbridge-fleet-metrics-");
    dirs.push(dir);
    const config = loadConfig({
      env: {
        FAXBRIDGE_DATA_DIR: dir.path,
        FAXBRIDGE_DATABASE_URL: db.url,
        FAXBRIDGE_SMTP_PORT: "0",
        FAXBRIDGE_HTTP_PORT: "0",
        FAXBRIDGE_EMULATOR_PORT: "0",
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
        FAXBRIDGE_LOG_LEVEL: "silent",
      },
    });
    const d = await startDaemon(config, { logger: silentLogger() });
    daemons.push(d);
    return d;
  }

  async function scrape(d: Daemon): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${d.http.port}/metrics`);
    return res.text();
  }

  it("the leader alone exports queue depth; the follower says it does not report", async () => {
    const leader = await start();
    const follower = await start();
    const fromLeader = await waitFor(async () => {
      const t = await scrape(leader);
      return /^faxbridge_queue_jobs\{state="received"\} \d+$/m.test(t) ? t : undefined;
    }, { timeoutMs: 15_000, what: "the leader's queue gauge" });
    expect(fromLeader).toMatch(/^faxbridge_queue_reporter 1$/m);
    expect(fromLeader).toMatch(/^faxbridge_queue_oldest_job_seconds \d/m);
    const fromFollower = await scrape(follower);
    expect(fromFollower).toMatch(/^faxbridge_queue_reporter 0$/m);
    expect(fromFollower).not.toMatch(/^faxbridge_queue_jobs\{/m);
    expect(fromFollower).toMatch(/^faxbridge_queue_oldest_job_seconds 0$/m);

    // The leader leaves: the follower takes over and reports.
    await leader.close();
    daemons.splice(daemons.indexOf(leader), 1);
    const taken = await waitFor(async () => {
      const t = await scrape(follower);
      return /^faxbridge_queue_reporter 1$/m.test(t) && /^faxbridge_queue_jobs\{/m.test(t) ? t : undefined;
    }, { timeoutMs: 20_000, what: "the new leader's queue gauge" });
    expect(taken).toMatch(/^faxbridge_queue_jobs\{state="received"\} \d+$/m);
  });
});
