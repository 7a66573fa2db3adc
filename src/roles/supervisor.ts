/**
 * `--role all`: the intake runs in this process and the fax pipeline in a
 * child process (./pipeline-child.ts running ./worker.ts), so parsing, PDF
 * work, RingCentral calls and the claim loops never run on the event loop
 * that answers SMTP, and the operating system's scheduler shares the CPUs
 * between the two (neither starves the other; the child also has its own
 * SQLite connection and statement cache, and its own libuv pool).
 *
 * - The child gets the configuration this process validated (over IPC,
 *   never re-read) and the RingCentral target (the sandbox emulator lives
 *   here).
 * - Wake-ups (a job accepted, a job retried, a fax released) are IPC messages.
 * - The child dies with this process: it exits as soon as its IPC channel
 *   closes (this process stopped or was killed), ignores terminal signals
 *   and stops when told. When it dies alone it is restarted with a backoff
 *   (`pipeline.crashed`, `faxbridge_pipeline_restarts_total`); the intake
 *   keeps answering and queueing meanwhile.
 * - /metrics here merges the child's registry; its webhook route is proxied.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { Config } from "../config/schema.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { PIPELINE_METRICS_TIMEOUT_MS, PIPELINE_RESTART_MAX_MS, PIPELINE_RESTART_MIN_MS, PIPELINE_STOP_MS } from "../tunables.js";
import type { RcTarget } from "./services.js";

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** Messages to the child. */
export type ToPipeline =
  | { t: "start"; config: Readonly<Config>; rc: RcTarget }
  | { t: "wake" }
  | { t: "wakeInbound" }
  | { t: "metrics"; id: number }
  | { t: "stop" };

/** Messages from the child. */
export type FromPipeline = { t: "ready"; httpPort: number } | { t: "failed"; error: string } | { t: "metrics"; id: number; data: MetricsJson };

export interface SupervisorOptions {
  readonly config: Readonly<Config>;
  readonly rc: RcTarget;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The child's entry module (default ./pipeline-child.js beside this file). */
  readonly entry?: string;
}

export class PipelineSupervisor {
  readonly #o: SupervisorOptions;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #httpPort: number | undefined;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #backoffMs = PIPELINE_RESTART_MIN_MS;
  #upSince = 0;
  #nextId = 1;
  readonly #pending = new Map<number, (data: MetricsJson) => void>();

  constructor(opts: SupervisorOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: "supervisor" });
  }

  /** Start the child in the background; until it runs (and whenever it dies) it is restarted with a backoff. */
  start(): void {
    this.#spawn().catch((err: unknown) => this.#failed(err));
  }

  /** The child is running its pipeline. */
  get up(): boolean {
    return this.#httpPort !== undefined;
  }

  /** The child's loopback HTTP port (webhook), while it is up. */
  get httpPort(): number | undefined {
    return this.#httpPort;
  }

  wake(): void {
    this.#send({ t: "wake" });
  }

  wakeInbound(): void {
    this.#send({ t: "wakeInbound" });
  }

  /** The child's metrics (empty when it is down or slow to answer). */
  metricsJson(): Promise<MetricsJson> {
    if (!this.up) return Promise.resolve([]);
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve([]);
      }, PIPELINE_METRICS_TIMEOUT_MS);
      this.#pending.set(id, (data) => {
        clearTimeout(timer);
        resolve(data);
      });
      if (!this.#send({ t: "metrics", id })) {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve([]);
      }
    });
  }

  /** This process's metrics and the child's, as one Prometheus text. */
  async metricsText(): Promise<{ text: string; contentType: string }> {
    const [mine, theirs] = await Promise.all([this.#o.metrics.registry.getMetricsAsJSON(), this.metricsJson()]);
    const merged = AggregatorRegistry.aggregate([mine, theirs]);
    return { text: await merged.metrics(), contentType: merged.contentType };
  }

  /** Stop the child: it drains its work (SHUTDOWN order), or is killed after PIPELINE_STOP_MS. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    // A child still starting finishes starting, then stops.
    if (!this.#send({ t: "stop" }, true)) child.kill("SIGKILL");
    const timer = setTimeout(() => {
      this.#log.warn({ event: "pipeline.stop_timeout", pid: child.pid, deadlineMs: PIPELINE_STOP_MS }, "the pipeline process did not stop in time; killing it");
      child.kill("SIGKILL");
    }, PIPELINE_STOP_MS);
    await exited;
    clearTimeout(timer);
  }

  #send(msg: ToPipeline, evenStarting = false): boolean {
    const child = this.#child;
    if (child === undefined || !child.connected || (this.#httpPort === undefined && !evenStarting)) return false;
    try {
      child.send(msg);
      return true;
    } catch {
      return false;
    }
  }

  #spawn(): Promise<void> {
    const entry = this.#o.entry ?? fileURLToPath(new URL("./pipeline-child.js", import.meta.url));
    const child = fork(entry, [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.#child = child;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      child.on("message", (raw) => {
        const msg = raw as FromPipeline;
        if (msg.t === "ready") {
          started = true;
          this.#httpPort = msg.httpPort;
          this.#upSince = Date.now();
          this.#log.info({ event: "pipeline.process_started", pid: child.pid }, "pipeline process running");
          resolve();
        } else if (msg.t === "failed") {
          reject(new Error(msg.error));
        } else if (msg.t === "metrics") {
          this.#pending.get(msg.id)?.(msg.data);
          this.#pending.delete(msg.id);
        }
      });
      child.on("error", (err) => {
        if (!started) reject(err);
      });
      child.once("exit", (code, signal) => {
        this.#httpPort = undefined;
        if (this.#child === child) this.#child = undefined;
        if (!started) {
          reject(new Error(`pipeline process exited during start (code ${String(code)}, signal ${String(signal)})`));
          return;
        }
        if (this.#stopping) return;
        this.#crashed(code, signal);
      });
      child.send({ t: "start", config: this.#o.config, rc: this.#o.rc } satisfies ToPipeline);
    });
  }

  /** A start failed (the child said why, or died while starting): try again later. */
  #failed(err: unknown): void {
    if (this.#stopping) return;
    this.#log.error({ event: "pipeline.restart_failed", err: errorMessage(err) }, `the pipeline process did not start: ${errorMessage(err)}`);
    this.#crashed(null, null);
  }

  #crashed(code: number | null, signal: NodeJS.Signals | null): void {
    // A child that ran for a while starts again at once-ish; one that keeps dying backs off.
    if (Date.now() - this.#upSince > PIPELINE_RESTART_MAX_MS) this.#backoffMs = PIPELINE_RESTART_MIN_MS;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, PIPELINE_RESTART_MAX_MS);
    this.#o.metrics.pipelineRestarts.inc();
    this.#log.error({ event: "pipeline.crashed", code, signal, restartInMs: delay }, `the pipeline process died (code ${String(code)}, signal ${String(signal)}); restarting in ${delay} ms`);
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn().catch((err: unknown) => this.#failed(err));
    }, delay);
    this.#restartTimer.unref();
  }
}
