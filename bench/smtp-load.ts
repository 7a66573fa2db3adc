import { fork } from "node:child_process";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { SMTPServer } from "smtp-server";
import type { LoadMessage, LoadRequest, LoadResult } from "./smtp-load-client.js";

/**
 * Runs the raw-socket SMTP load generator (./smtp-load-client.ts) in a child
 * process against a server listening in this process, and reports the rate
 * together with the CPU each side used while the clock ran.
 */

export interface SmtpLoadOptions {
  readonly host?: string;
  readonly port: number;
  /** Connections kept open and reused. Default 8. */
  readonly connections?: number;
  /** Messages timed, after a warm-up of one per connection. */
  readonly messages: number;
  /** Approximate wire size of each message. Default 100 kB. */
  readonly messageBytes?: number;
  readonly mailFrom?: string;
  readonly rcptTo?: string;
}

export interface SmtpLoadResult {
  readonly messagesPerSecond: number;
  readonly messages: number;
  readonly connections: number;
  /** Wire size of each message (dot-stuffed, with the terminating dot). */
  readonly messageBytes: number;
  readonly pipelining: boolean;
  /** CPU per message: the client process, and this (server) process incl. its worker threads. */
  readonly clientCpuMsPerMessage: number;
  readonly serverCpuMsPerMessage: number;
}

/** The client's compiled entry; benchmarks run from dist (`npm run bench`). */
function clientEntry(): string {
  const url = new URL("./smtp-load-client.js", import.meta.url);
  if (import.meta.url.endsWith(".ts")) {
    throw new Error("the SMTP load generator runs as a compiled child process: build first (npm run build) and run the bench from dist/");
  }
  return fileURLToPath(url);
}

export async function runSmtpLoad(opts: SmtpLoadOptions): Promise<SmtpLoadResult> {
  const connections = opts.connections ?? 8;
  const request: LoadRequest = {
    host: opts.host ?? "127.0.0.1",
    port: opts.port,
    connections,
    messages: opts.messages,
    messageBytes: opts.messageBytes ?? 100_000,
    mailFrom: opts.mailFrom ?? "bench@example.com",
    rcptTo: opts.rcptTo ?? "+12025550143@fax.local",
  };
  const child = fork(clientEntry(), ["--smtp-load-child"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let serverCpu: NodeJS.CpuUsage | undefined;
  try {
    const result = await new Promise<LoadResult>((resolve, reject) => {
      child.on("message", (m: LoadMessage) => {
        if (m.type === "started") serverCpu = process.cpuUsage();
        else if (m.type === "done") resolve(m);
        else reject(new Error(`SMTP load generator failed: ${m.error}`));
      });
      child.once("error", reject);
      child.once("exit", (code, signal) => reject(new Error(`SMTP load generator exited early (code ${code}, signal ${signal})`)));
      child.send(request);
    });
    const used = process.cpuUsage(serverCpu);
    return {
      messagesPerSecond: Math.round(result.messages / (result.ms / 1000)),
      messages: result.messages,
      connections,
      messageBytes: result.wireBytes,
      pipelining: result.pipelining,
      clientCpuMsPerMessage: round2(result.clientCpuMs / result.messages),
      serverCpuMsPerMessage: round2((used.user + used.system) / 1000 / result.messages),
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill();
      await exited;
    }
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/**
 * The ceiling: an smtp-server configured like faxbridge's (no reverse lookup,
 * no logger, PIPELINING advertised) that reads every message and throws it away.
 */
export async function startDiscardServer(maxClients: number): Promise<{ port: number; close: () => Promise<void> }> {
  const server = new SMTPServer({
    disableReverseLookup: true,
    logger: false,
    authOptional: true,
    maxClients,
    onData(stream, _session, callback) {
      stream.on("end", () => callback(null, "Discarded"));
      stream.resume();
    },
  });
  // Client connection errors are re-emitted on the server; they must not end the bench.
  server.on("error", () => undefined);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.server.address() as AddressInfo;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
