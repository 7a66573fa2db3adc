/**
 * /readyz means "this instance can accept and durably queue mail": a mail
 * server outage is reported in the body and in /metrics but does not pull
 * intake out of a load balancer; and probes share cached dependency checks,
 * so 100 probes do not open 100 connections to the mail server.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { sandboxEnv } from "../helpers/config.js";

interface Ready {
  status: string;
  checks: Record<string, string>;
  dependencies: Record<string, { state: string; detail: string; checkedAt: string }>;
}

describe("/readyz and dependency states", () => {
  let dir: ReturnType<typeof tempDir>;
  let sink: SmtpSink;
  let daemon: Daemon | undefined;

  beforeEach(async () => {
    dir = tempDir();
    sink = await new SmtpSink().start();
    const config = loadConfig({
      env: sandboxEnv(dir.path, {
        FAXBRIDGE_MAIL_URL: sink.url,
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
        FAXBRIDGE_INBOUND_TO: "faxes@example.com",
        FAXBRIDGE_LOG_LEVEL: "silent",
      }),
    });
    daemon = await startDaemon(config, { logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
  });

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    await sink.close();
    dir.cleanup();
  });

  const readyz = async (): Promise<{ status: number; body: Ready }> => {
    const res = await fetch(`http://127.0.0.1:${daemon!.http.port}/readyz`);
    return { status: res.status, body: (await res.json()) as Ready };
  };

  it("100 probes (50 at once, then 50 one by one) open at most 2 connections to the mail server", async () => {
    const before = sink.connections;
    const burst = await Promise.all(Array.from({ length: 50 }, () => readyz()));
    for (let i = 0; i < 50; i++) burst.push(await readyz());
    expect(burst.every((r) => r.status === 200)).toBe(true);
    expect(burst[0]?.body.dependencies["mail"]?.state).toBe("up");
    expect(sink.connections - before).toBeLessThanOrEqual(2);
  });

  it("stays ready while the mail server is down, and says so in the body and in /metrics", async () => {
    await sink.down();
    // A fresh daemon-side check happens once the cached result is older than the cache time.
    const { waitFor } = await import("../helpers/wait.js");
    const down = await waitFor(
      async () => {
        const r = await readyz();
        return r.body.dependencies["mail"]?.state === "down" ? r : undefined;
      },
      { timeoutMs: 15_000, maxIntervalMs: 1_000, what: "the mail dependency to be reported down" },
    );
    expect(down.status).toBe(200);
    expect(down.body.status).toBe("ready");
    expect(down.body.checks).toEqual({ store: "ok", spool: "ok", disk: "ok", smtp: "ok" });
    expect(down.body.dependencies["mail"]?.detail).toMatch(/ECONNREFUSED|refused/i);
    expect(down.body.dependencies["ringcentral"]?.state).toBe("up");
    const metrics = await (await fetch(`http://127.0.0.1:${daemon!.http.port}/metrics`)).text();
    expect(metrics).toMatch(/faxbridge_dependency_up\{dependency="mail"\} 0/);
    expect(metrics).toMatch(/faxbridge_dependency_up\{dependency="ringcentral"\} 1/);
    expect(metrics).toMatch(/faxbridge_ready 1/);
    expect(metrics).toMatch(/faxbridge_data_free_bytes \d/);
    expect(metrics).toMatch(/faxbridge_queue_oldest_job_seconds 0/);
  });

  it("/metrics runs the readiness and (cached) dependency checks itself, without anyone probing /readyz", async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${daemon!.http.port}/metrics`)).text();
    expect(metrics).toMatch(/^faxbridge_ready 1$/m);
    expect(metrics).toMatch(/^faxbridge_dependency_up\{dependency="mail"\} 1$/m);
    expect(metrics).toMatch(/^faxbridge_dependency_up\{dependency="ringcentral"\} 1$/m);
  });
});
