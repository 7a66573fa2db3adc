import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import nodemailer from "nodemailer";
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
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port,
      secure: false,
      ignoreTLS: true,
      pool: true,
      maxConnections: connections,
      maxMessages: Infinity,
    });
    const envelope = { from: "bench@example.com", to: ["+12025550143@fax.local"] };
    try {
      // Warm-up: open every connection (smtp-server delays its greeting by 100 ms).
      await Promise.all(Array.from({ length: connections }, () => transport.sendMail({ envelope, raw })));
      const started = performance.now();
      await Promise.all(Array.from({ length: messages }, () => transport.sendMail({ envelope, raw })));
      const seconds = (performance.now() - started) / 1000;
      const counts = await store.countByState();
      if (counts.received !== messages + connections) {
        throw new Error(`expected ${messages + connections} received jobs, the store has ${counts.received}`);
      }
      opts.logger?.info({ event: "bench.intake", commits: store.commitStats }, "group commit stats");
      return { messagesPerSecond: Math.round(messages / seconds), messages, connections, messageBytes: raw.length };
    } finally {
      transport.close();
    }
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
