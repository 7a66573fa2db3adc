import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { CLI, ensureBuilt } from "./build.js";

export interface LogLine {
  level: string;
  event?: string;
  msg: string;
  [key: string]: unknown;
}

/**
 * The real daemon (`faxbridge run`) as a child process, with its JSON log
 * lines collected. Ports default to 0 (ephemeral) and are read from the
 * `daemon.started` line.
 */
export class DaemonProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  #child: ChildProcess | undefined;
  #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  #waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  readonly env: Record<string, string>;

  constructor(env: Record<string, string>) {
    this.env = env;
  }

  async start(args: string[] = ["run"]): Promise<this> {
    await ensureBuilt();
    const child = spawn(process.execPath, [CLI, ...args], {
      env: {
        PATH: process.env.PATH ?? "",
        FAXBRIDGE_SMTP_PORT: "0",
        FAXBRIDGE_HTTP_PORT: "0",
        FAXBRIDGE_EMULATOR_PORT: "0",
        FAXBRIDGE_LOG_LEVEL: "info",
        ...this.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    this.#exit = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    createInterface({ input: child.stdout! }).on("line", (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { level: "raw", msg: text };
      }
      this.lines.push(line);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.match(line)) return true;
        w.resolve(line);
        return false;
      });
    });
    createInterface({ input: child.stderr! }).on("line", (text) => this.stderr.push(text));
    return this;
  }

  get pid(): number {
    const pid = this.#child?.pid;
    if (pid === undefined) throw new Error("daemon not started");
    return pid;
  }

  /** Resolve with the first log line (past or future) that matches, or fail after timeoutMs or when the process exits. */
  waitForLine(match: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; last lines:\n${this.tail()}`)), timeoutMs);
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      this.#waiters.push(waiter);
      void this.#exit?.then(({ code, signal }) => {
        clearTimeout(timer);
        if (this.#waiters.includes(waiter)) reject(new Error(`daemon exited (${code ?? signal}) before the line; output:\n${this.tail()}`));
      });
    });
  }

  async started(timeoutMs?: number): Promise<{ smtpPort: number; httpPort: number; line: LogLine }> {
    const line = await this.waitForLine((l) => l.event === "daemon.started", timeoutMs);
    const smtp = line.smtp as { port: number };
    const http = line.http as { port: number };
    return { smtpPort: smtp.port, httpPort: http.port, line };
  }

  tail(n = 30): string {
    return [...this.lines.slice(-n).map((l) => JSON.stringify(l)), ...this.stderr.slice(-n)].join("\n");
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.#child?.kill(signal);
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.#exit) throw new Error("daemon not started");
    return this.#exit;
  }

  /** Stop it if it still runs (for afterEach). */
  async stop(): Promise<void> {
    if (!this.#child || this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill("SIGKILL");
    await this.#exit;
  }
}
