/**
 * `faxbridge run --role worker`: the fax pipeline without the SMTP intake —
 * outbound worker, inbound service, janitor, alerts — plus an HTTP listener
 * for /healthz, /readyz, /metrics and the RingCentral webhook. It owns the
 * data directory (SQLite: the pid file; leases left by a dead process are
 * released at start). Mail reaches it through the store: it claims new jobs
 * on its idle poll (one second) or, on PostgreSQL, at once when an intake
 * announces a job (NOTIFY).
 *
 * The same function runs the child process of `--role all` (./supervisor.ts),
 * then with a loopback listener and the parent's RingCentral target.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Config } from "../config/schema.js";
import { resolveConfig } from "../config/resolve.js";
import { errorMessage } from "../errors.js";
import { HttpServer } from "../http/server.js";
import type { Logger } from "../log.js";
import { Metrics } from "../metrics.js";
import { Spool } from "../spool/spool.js";
import { openStores } from "../store/open.js";
import { Lifecycle } from "./lifecycle.js";
import { startPipeline } from "./pipeline.js";
import { openServices, rcTarget, type RcTarget } from "./services.js";

export interface WorkerRoleOptions {
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Handle SIGTERM/SIGINT (the CLI does). */
  readonly signals?: boolean;
  /** Listen here instead of config.http (the supervised child: loopback, any free port). */
  readonly listen?: { readonly host: string; readonly port: number };
  /** The RingCentral to use (the parent's sandbox emulator); default: from the configuration. */
  readonly rc?: RcTarget;
  /** Take the data directory (default); the child of `--role all` does not: its parent holds it. */
  readonly lock?: boolean;
}

export interface WorkerRole {
  readonly http: { host: string; port: number };
  readonly metrics: Metrics;
  wake(): void;
  wakeInbound(): void;
  close(reason?: string): Promise<void>;
  /** Resolves with the process exit code once stopped. */
  readonly finished: Promise<number>;
}

export async function startWorkerRole(config: Readonly<Config>, opts: WorkerRoleOptions): Promise<WorkerRole> {
  const log = opts.logger;
  const resolved = resolveConfig(config);
  const metrics = opts.metrics ?? new Metrics();
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const life = new Lifecycle(log);
  try {
    const target = opts.rc ?? (await rcTarget(config, resolved.sandbox, log, life.steps)).rc;
    // The pipeline owns the store: leases still set belong to a process that died, and are released at open.
    const stores = await openStores(config, log, { role: "daemon", groupCommit: "inline", lock: opts.lock ?? true });
    life.steps.push({ name: "database", close: () => stores.close() });
    const spool = new Spool({ documents: stores.documents, logger: log });
    const services = await openServices({ config, rc: target, sandbox: resolved.sandbox, dataDir, logger: log, metrics, steps: life.steps });
    const listen = opts.listen ?? { host: config.http.host, port: config.http.port };
    const http = new HttpServer({ host: listen.host, port: listen.port, logger: log.child({ component: "http" }), metrics });
    http.readinessCheck("store", () => stores.ping());
    const pipeline = await startPipeline({ config, stores, spool, ...services, metrics, logger: log, http, dataDir });
    life.steps.push(...pipeline.steps);
    const address = await http.listen();
    life.steps.push({ name: "http", close: () => http.close() });
    life.ordered();
    log.info({ event: "pipeline.started", pid: process.pid, http: address, store: stores.description }, `faxbridge pipeline running (HTTP ${address.host}:${address.port})`);
    if (opts.signals === true) life.installSignalHandlers();
    return {
      http: address,
      metrics,
      wake: pipeline.wake,
      wakeInbound: pipeline.wakeInbound,
      close: (reason) => life.close(reason),
      finished: life.finished,
    };
  } catch (err) {
    log.fatal({ event: "daemon.start_failed", err: errorMessage(err) }, `cannot start: ${errorMessage(err)}`);
    await life.cleanup();
    throw err;
  }
}
