import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import MailComposer from "nodemailer/lib/mail-composer";
import { configSchema } from "../src/config/schema.js";
import { silentLogger, type Logger } from "../src/log.js";
import { createSmtpServer } from "../src/smtp/server.js";
import { Spool } from "../src/spool/spool.js";
import { openDatabase } from "../src/store/db.js";
import { SqliteOutboundStore, outboundMigration } from "../src/store/outbound.js";

/**
 * Durable intake throughput: messages per second the SMTP server accepts
 * (file fsync + directory fsync + job row committed before each 250) over
 * reused connections, as a relaying MTA would send them.
 */

export interface BenchIntakeOptions {
  /** Messages to send (after a warm-up of one per connection). Default 2000. */
  readonly messages?: number;
  /** Concurrent SMTP connections, reused for every message. Default 8. */
  readonly connections?: number;
  /** Size of each raw message. Default 100 kB. */
  readonly messageBytes?: number;
  readonly logger?: Logger;
}

/**
 * The client side, on its own thread so the server's event loop measures the
 * server (nodemailer's dot-stuffing of 100 kB costs as much CPU as the intake
 * itself). Plain JS run with `eval`, so it works from sources and from dist.
 */
const CLIENT_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
(async () => {
  const nodemailer = (await import(workerData.nodemailer)).default;
  const transport = nodemailer.createTransport({
    host: "127.0.0.1", port: workerData.port, secure: false, ignoreTLS: true,
    pool: true, maxConnections: workerData.connections, maxMessages: Infinity,
  });
  const raw = Buffer.from(workerData.raw);
  const envelope = workerData.envelope;
  const sendAll = (n) => Promise.all(Array.from({ length: n }, () => transport.sendMail({ envelope, raw })));
  try {
    // Warm-up: open every connection (smtp-server delays its greeting by 100 ms).
    await sendAll(workerData.connections);
    const started = performance.now();
    await sendAll(workerData.messages);
    parentPort.postMessage({ ms: performance.now() - started });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.stack || err) });
  } finally {
    transport.close();
  }
})();
`;

async function runClient(port: number, raw: Buffer, messages: number, connections: number): Promise<number> {
  const worker = new Worker(CLIENT_SOURCE, {
    eval: true,
    workerData: { port, raw, messages, connections, envelope: { from: "bench@example.com", to: ["+12025550143@fax.local"] }, nodemailer: import.meta.resolve("nodemailer") },
  });
  try {
    const reply = await new Promise<{ ms?: number; error?: string }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    if (reply.error !== undefined || reply.ms === undefined) throw new Error(`benchmark client failed: ${reply.error ?? "no result"}`);
    return reply.ms;
  } finally {
    await worker.terminate();
  }
}

export interface BenchIntakeResult {
  messagesPerSecond: number;
  messages: number;
  connections: number;
  messageBytes: number;
}

/** A one-page PDF, a few hundred bytes. */
function smallPdf(): Buffer {
  const stream = "BT /F1 24 Tf 72 720 Td (faxbridge intake benchmark) Tj ET";
  const objects = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ];
  let out = "%PDF-1.4\n";
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, "latin1");
}

async function compose(bodyChars: number): Promise<Buffer> {
  const line = "The quick brown fox jumps over the lazy dog, faxed through faxbridge. ";
  let text = "";
  while (text.length < bodyChars) text += line.repeat(1) + (text.length % 700 < line.length ? "\n" : "");
  return new MailComposer({
    from: "bench@example.com",
    to: "+12025550143@fax.local",
    subject: "intake benchmark",
    messageId: "<bench@example.com>",
    text: text.slice(0, bodyChars),
    attachments: [{ filename: "doc.pdf", content: smallPdf(), contentType: "application/pdf" }],
  })
    .compile()
    .build();
}

/** Build a raw message of about `bytes` bytes (text body + small PDF attachment). */
async function messageOfSize(bytes: number): Promise<Buffer> {
  const probe = await compose(1000);
  const overhead = probe.length - 1000;
  return compose(Math.max(0, bytes - overhead));
}

export async function benchIntake(opts: BenchIntakeOptions = {}): Promise<BenchIntakeResult> {
  const messages = opts.messages ?? 2000;
  const connections = opts.connections ?? 8;
  const logger = opts.logger ?? silentLogger();
  const dir = await mkdtemp(join(tmpdir(), "faxbridge-bench-"));
  const db = openDatabase(join(dir, "faxbridge.db"), [outboundMigration]);
  const store = new SqliteOutboundStore(db, { logger });
  const spool = await Spool.open({ dataDir: dir, logger });
  const config = configSchema.parse({ dataDir: dir, smtp: { port: 0, maxConnections: connections * 2 } });
  const server = createSmtpServer({ config, spool, store, logger, numberCheck: "possible" });
  const raw = await messageOfSize(opts.messageBytes ?? 100_000);
  try {
    const { port } = await server.listen();
    const ms = await runClient(port, raw, messages, connections);
    const counts = await store.countByState();
    if (counts.received !== messages + connections) {
      throw new Error(`expected ${messages + connections} received jobs, the store has ${counts.received}`);
    }
    opts.logger?.info({ event: "bench.intake", commits: store.commitStats }, "group commit stats");
    return { messagesPerSecond: Math.round(messages / (ms / 1000)), messages, connections, messageBytes: raw.length };
  } finally {
    await server.close(1000);
    await spool.close();
    await store.close();
    db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const messages = Number(process.argv[2] ?? 2000);
  benchIntake({ messages }).then(
    (r) => console.log(JSON.stringify(r)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
