/**
 * How a daemon process (any role) stops: its parts are closed in a fixed order
 * (stop taking work first, then the workers, then the stores) within
 * SHUTDOWN_DEADLINE_MS, on close() or on SIGTERM/SIGINT; a second signal
 * exits at once.
 */
import type { Logger } from "../log.js";
import { SHUTDOWN_DEADLINE_MS } from "../tunables.js";
import type { CloseStep } from "./pipeline.js";

/** Close order, first to close first: stop taking work, then the workers, then the stores. */
export const CLOSE_ORDER: readonly string[] = [
  "janitor",
  "ringcentral-holds",
  "inbound",
  "leadership",
  "smtp",
  "pipeline",
  "outbound",
  "http",
  "web",
  "alerts",
  "mail",
  "ringcentral",
  "audit",
  "database",
  "emulator",
];

export class Lifecycle {
  /** Close steps in the order they opened; close() sorts them by CLOSE_ORDER. */
  readonly steps: CloseStep[] = [];
  readonly finished: Promise<number>;
  readonly #log: Logger;
  #resolveFinished: (code: number) => void = () => undefined;
  #closing: Promise<void> | undefined;

  constructor(log: Logger) {
    this.#log = log;
    this.finished = new Promise<number>((r) => (this.#resolveFinished = r));
  }

  /** Close every step opened so far (in reverse opening order), logging failures. */
  async cleanup(): Promise<void> {
    const steps = this.steps;
    for (const step of steps.reverse()) {
      try {
        await step.close();
      } catch (err) {
        this.#log.error({ event: "shutdown.step_failed", step: step.name, err }, `closing ${step.name} failed`);
      }
    }
    steps.length = 0;
  }

  /** Put the steps in CLOSE_ORDER (cleanup closes in reverse array order, so the first-to-close goes last). */
  ordered(): void {
    this.steps.sort((a, b) => CLOSE_ORDER.indexOf(b.name) - CLOSE_ORDER.indexOf(a.name));
  }

  /** Graceful, idempotent shutdown within the deadline. */
  close(reason = "requested"): Promise<void> {
    this.#closing ??= (async () => {
      const log = this.#log;
      log.info({ event: "daemon.stopping", reason }, "shutting down");
      const timer = setTimeout(() => {
        log.error({ event: "daemon.shutdown_timeout", deadlineMs: SHUTDOWN_DEADLINE_MS }, "shutdown deadline passed; exiting");
        this.#resolveFinished(1);
      }, SHUTDOWN_DEADLINE_MS);
      timer.unref();
      this.ordered();
      await this.cleanup();
      clearTimeout(timer);
      log.info({ event: "daemon.stopped" }, "stopped");
      log.flush();
      this.#resolveFinished(0);
    })();
    return this.#closing;
  }

  /** Handle SIGTERM/SIGINT: the first closes gracefully, a second exits now. */
  installSignalHandlers(): void {
    const log = this.#log;
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        log.warn({ event: "daemon.forced_exit", signal }, "second signal: exiting now");
        log.flush();
        process.exit(130);
      }
      signalled = true;
      void this.close(signal);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }
}
