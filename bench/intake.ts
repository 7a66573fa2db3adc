// The spool's fsyncs and SQLite's commit worker queue on libuv's threadpool:
// size it like `faxbridge run` does, before any asynchronous fs call.
process.env.UV_THREADPOOL_SIZE ??= "16";

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { configSchema } from "../src/config/schema.js";
import { silentLogger, type Logger } from "../src/log.js";
import { createSmtpServer } from "../src/smtp/server.js";
import { Spool } from "../src/spool/spool.js";
import { openStores } from "../src/store/open.js";
import { benchDatabase } from "./pg-database.js";
import { runSmtpLoad, startDiscardServer, type SmtpLoadResult } from "./smtp-load.js";

/**
 * Durable intake throughput: messages per second faxbridge's SMTP server
 * accepts (file fsync + directory fsync + job row committed before each 250)
 * over reused connections, as a relaying MTA would send them; and, as the
 * ceiling of this client and smtp-server on this machine, the same load
 * against an smtp-server that discards every message.
 *
 * The same load is then run with the PostgreSQL backend (a fresh database on
 * the server ./pg-database.ts finds; `postgres.skipped` says why not when
 * none is reachable): mail and job rows committed to the database before
 * each 250, as every instance of a scaled-out gateway does.
 *
 * The client is a raw-socket load generator in a child process
 * (./smtp-load-client.ts, in the role of Postfix's smtp-source), so the
 * server's process has a core of its own.
 */

export interface BenchIntakeOptions {
  /** Messages to time (after a warm-up of one per connection). Default 2000. */
  readonly messages?: number;
  /** Concurrent SMTP connections, reused for every message. Default 8. */
  readonly connections?: number;
  /** Wire size of each message. Default 100 kB. */
  readonly messageBytes?: number;
  /** Also measure the discarding server (the ceiling). Default true. */
  readonly discard?: boolean;
  /** Also measure the PostgreSQL backend (skipped when unreachable). Default true. */
  readonly postgres?: boolean;
  readonly logger?: Logger;
}

export interface BenchIntakeResult {
  /** Durable intake rate (the figure the target is about). */
  messagesPerSecond: number;
  messages: number;
  connections: number;
  messageBytes: number;
  client: string;
  durable: SmtpLoadResult & { commitBatches: number; largestCommitBatch: number };
  discard?: SmtpLoadResult;
  /** The same durable intake on the PostgreSQL backend, beside SQLite's `durable`. */
  postgres?: (SmtpLoadResult & { backend: "postgres" }) | { skipped: string };
}

const CLIENT = "raw-socket SMTP client in a child process (bench/smtp-load-client.ts), PIPELINING, message built once";

/** The daemon's wiring (src/app.ts) on a temp dir: real spool, real SQLite store, real SMTP server. */
async function benchDurable(messages: number, connections: number, messageBytes: number, logger: Logger, databaseUrl = ""): Promise<BenchIntakeResult["durable"]> {
  const dir = await mkdtemp(join(tmpdir(), "faxbridge-bench-"));
  const stores = await openStores({ dataDir: dir, database: { url: databaseUrl } }, logger, { role: "daemon" });
  const store = stores.outbound;
  const spool = new Spool({ documents: stores.documents, logger });
  // SQLite's group-commit counters (src/store/sqlite/group-commit.ts).
  const commitStats = (): { batches: number; rows: number; largest: number } =>
    "commitStats" in store ? (store.commitStats as { batches: number; rows: number; largest: number }) : { batches: 0, rows: 0, largest: 0 };
  const config = configSchema.parse({ dataDir: dir, smtp: { port: 0, maxConnections: connections * 2 } });
  const server = createSmtpServer({ config, spool, store, logger, numberCheck: "possible" });
  try {
    const { port } = await server.listen();
    const before = { ...commitStats() };
    const result = await runSmtpLoad({ port, connections, messages, messageBytes });
    const counts = await store.countByState();
    if (counts.received !== messages + connections) {
      throw new Error(`expected ${messages + connections} received jobs, the store has ${counts.received}`);
    }
    const stats = commitStats();
    logger.info({ event: "bench.intake", commits: stats }, "group commit stats");
    return { ...result, commitBatches: stats.batches - before.batches, largestCommitBatch: stats.largest };
  } finally {
    await server.close(1000);
    await stores.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchDiscard(messages: number, connections: number, messageBytes: number): Promise<SmtpLoadResult> {
  const server = await startDiscardServer(connections * 2);
  try {
    return await runSmtpLoad({ port: server.port, connections, messages, messageBytes });
  } finally {
    await server.close();
  }
}

export async function benchIntake(opts: BenchIntakeOptions = {}): Promise<BenchIntakeResult> {
  const messages = opts.messages ?? 2000;
  const connections = opts.connections ?? 8;
  const messageBytes = opts.messageBytes ?? 100_000;
  const durable = await benchDurable(messages, connections, messageBytes, opts.logger ?? silentLogger());
  const discard = opts.discard === false ? undefined : await benchDiscard(messages, connections, messageBytes);
  const postgres = opts.postgres === false ? undefined : await benchPostgres(messages, connections, messageBytes, opts.logger ?? silentLogger());
  return {
    messagesPerSecond: durable.messagesPerSecond,
    messages,
    connections,
    messageBytes: durable.messageBytes,
    client: CLIENT,
    durable,
    ...(discard !== undefined && { discard }),
    ...(postgres !== undefined && { postgres }),
  };
}

async function benchPostgres(messages: number, connections: number, messageBytes: number, logger: Logger): Promise<NonNullable<BenchIntakeResult["postgres"]>> {
  const db = await benchDatabase();
  if ("skipped" in db) return db;
  try {
    const { commitBatches: _batches, largestCommitBatch: _largest, ...result } = await benchDurable(messages, connections, messageBytes, logger, db.url);
    return { backend: "postgres", ...result };
  } finally {
    await db.drop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const messages = Number(process.argv[2] ?? 2000);
  const discard = process.argv[3] !== "durable";
  const postgres = process.argv[4] !== "sqlite";
  benchIntake({ messages, discard, postgres }).then(
    (r) => console.log(JSON.stringify(r)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
