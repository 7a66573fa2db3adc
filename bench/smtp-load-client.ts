import { connect, type Socket } from "node:net";

/**
 * The load generator's client side, in the role Postfix's `smtp-source`
 * plays: raw sockets, connections kept open and reused, the message's wire
 * bytes (CRLF, dot-stuffed, terminated) built once, MAIL/RCPT/DATA pipelined
 * when the server advertises PIPELINING, and a message counted only when its
 * final 250 arrived. Runs in a child process (see ./smtp-load.ts) so the
 * server's event loop and CPU measure the server alone.
 *
 * Protocol with the parent (IPC): the parent sends one LoadRequest; the child
 * answers "started" when the clock starts (after the warm-up), then one
 * LoadResult or LoadFailure, and exits.
 */

export interface LoadRequest {
  readonly host: string;
  readonly port: number;
  readonly connections: number;
  /** Messages to time (after a warm-up of one per connection). */
  readonly messages: number;
  /** Approximate wire size of each message. */
  readonly messageBytes: number;
  readonly mailFrom: string;
  readonly rcptTo: string;
}

export interface LoadResult {
  readonly type: "done";
  readonly ms: number;
  readonly messages: number;
  readonly wireBytes: number;
  readonly pipelining: boolean;
  /** CPU the client used while timed (user + system), in ms. */
  readonly clientCpuMs: number;
}

export type LoadMessage = { readonly type: "started" } | LoadResult | { readonly type: "failed"; readonly error: string };

/** Width of the per-message counter in the Message-ID. */
export const ID_DIGITS = 12;

/** xorshift32: deterministic filler, so runs send the same bytes. */
function filler(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A one-page PDF carrying `padBytes` of binary (incompressible) stream data, as scanned pages do. */
function pdf(padBytes: number): Buffer {
  const text = "BT /F1 24 Tf 72 720 Td (faxbridge intake benchmark) Tj ET";
  const parts: Buffer[] = [Buffer.from("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "latin1")];
  const offsets: number[] = [];
  let length = parts[0]?.length ?? 0;
  const add = (b: Buffer): void => {
    parts.push(b);
    length += b.length;
  };
  const objects: Buffer[][] = [
    [Buffer.from("<< /Type /Catalog /Pages 2 0 R >>")],
    [Buffer.from("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")],
    [Buffer.from("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>")],
    [Buffer.from(`<< /Length ${text.length} >>\nstream\n${text}\nendstream`)],
    [Buffer.from("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")],
    [Buffer.from(`<< /Length ${padBytes} >>\nstream\n`), filler(padBytes, 0x9e3779b9), Buffer.from("\nendstream")],
  ];
  objects.forEach((body, i) => {
    offsets.push(length);
    add(Buffer.from(`${i + 1} 0 obj\n`));
    for (const b of body) add(b);
    add(Buffer.from("\nendobj\n"));
  });
  const xref = length;
  let tail = `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) tail += `${String(o).padStart(10, "0")} 00000 n \n`;
  tail += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  add(Buffer.from(tail));
  return Buffer.concat(parts);
}

function base64Lines(data: Buffer): string {
  const b64 = data.toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join("\r\n");
}

/** SMTP transparency (RFC 5321 4.5.2): a line starting with "." gets one more. */
function dotStuff(text: string): string {
  return (text.startsWith(".") ? "." : "") + text.replace(/\r\n\./g, "\r\n..");
}

export interface WireMessage {
  /** Headers up to and including the Message-ID line's prefix; per message, the counter follows. */
  readonly head: Buffer;
  /** Everything after the counter: rest of the headers, body, and the terminating CRLF.CRLF. */
  readonly tail: Buffer;
  /** Wire size of one message. */
  readonly bytes: number;
}

/**
 * A mail of about `bytes` wire bytes: a text body (with lines that need
 * dot-stuffing) and a base64 PDF attachment. Built and dot-stuffed once; only
 * the fixed-width Message-ID counter differs per message.
 */
export function buildWireMessage(bytes: number, from: string, to: string): WireMessage {
  const boundary = "----=_faxbridge_bench_boundary";
  const line = "The quick brown fox jumps over the lazy dog, faxed through faxbridge.";
  const textLines: string[] = [];
  // About a quarter of the size is text, the rest the attachment's base64.
  const textBytes = Math.max(200, Math.floor(bytes / 4));
  // One line starts with a dot, so the server's dot-unstuffing is exercised
  // as mail from people occasionally does; base64 lines never start with one.
  for (let n = 0, i = 0; n < textBytes; i++) {
    const l = i === 3 ? `...${line}` : line;
    textLines.push(l);
    n += l.length + 2;
  }
  const headerBefore = `From: ${from}\r\nTo: ${to}\r\nSubject: intake benchmark\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <bench-`;
  const headerAfter = `@faxbridge.bench>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n`;
  const build = (pad: number): string => {
    const attachment = base64Lines(pdf(pad));
    return (
      `${headerAfter}--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${textLines.join("\r\n")}\r\n` +
      `--${boundary}\r\nContent-Type: application/pdf; name="doc.pdf"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="doc.pdf"\r\n\r\n${attachment}\r\n--${boundary}--\r\n`
    );
  };
  const overhead = headerBefore.length + ID_DIGITS + build(0).length;
  const pad = Math.max(0, Math.floor(((bytes - overhead) * 3) / 4 / 1.0265)); // base64 grows by 4/3, CRLF every 76
  const head = Buffer.from(dotStuff(headerBefore), "latin1");
  const tail = Buffer.from(`${dotStuff(build(pad))}.\r\n`, "latin1");
  return { head, tail, bytes: head.length + ID_DIGITS + tail.length };
}

/** Reads SMTP replies off a socket, one promise per expected reply, in order. */
export class ReplyReader {
  #buffer = "";
  #lines: string[] = [];
  readonly #waiters: { resolve: (r: { code: number; text: string }) => void; reject: (e: Error) => void }[] = [];
  readonly #ready: { code: number; text: string }[] = [];
  #error: Error | undefined;

  constructor(socket: Socket) {
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => this.#feed(chunk));
    socket.on("error", (err) => this.#fail(err));
    socket.on("close", () => this.#fail(new Error("connection closed by the server")));
  }

  #feed(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf("\r\n")) >= 0) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 2);
      this.#lines.push(line);
      if (line.length < 4 || line[3] !== "-") {
        const reply = { code: Number(line.slice(0, 3)), text: this.#lines.join("\n") };
        this.#lines = [];
        const w = this.#waiters.shift();
        if (w !== undefined) w.resolve(reply);
        else this.#ready.push(reply);
      }
    }
  }

  #fail(err: Error): void {
    this.#error ??= err;
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  next(): Promise<{ code: number; text: string }> {
    const r = this.#ready.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  async expect(code: number, what: string): Promise<string> {
    const r = await this.next();
    if (r.code !== code) throw new Error(`${what}: expected ${code}, got ${r.text}`);
    return r.text;
  }
}

class Session {
  readonly #socket: Socket;
  readonly #replies: ReplyReader;
  readonly #msg: WireMessage;
  /** MAIL FROM, RCPT TO and DATA, as one pipelined write. */
  readonly #envelope: Buffer;
  /** The same three commands for a server without PIPELINING, one write each. */
  readonly #commands: readonly string[];
  pipelining = false;

  private constructor(socket: Socket, msg: WireMessage, from: string, to: string) {
    this.#socket = socket;
    this.#socket.setNoDelay(true);
    this.#replies = new ReplyReader(socket);
    this.#msg = msg;
    this.#commands = [`MAIL FROM:<${from}>\r\n`, `RCPT TO:<${to}>\r\n`, "DATA\r\n"];
    this.#envelope = Buffer.from(this.#commands.join(""), "latin1");
  }

  static async open(req: LoadRequest, msg: WireMessage): Promise<Session> {
    const socket = connect(req.port, req.host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const s = new Session(socket, msg, req.mailFrom, req.rcptTo);
    await s.#replies.expect(220, "greeting");
    socket.write("EHLO bench.faxbridge.invalid\r\n");
    const ehlo = await s.#replies.expect(250, "EHLO");
    s.pipelining = /^250[- ]PIPELINING\b/im.test(ehlo);
    return s;
  }

  async send(seq: number): Promise<void> {
    const s = this.#socket;
    const r = this.#replies;
    const expected: [number, string][] = [
      [250, "MAIL FROM"],
      [250, "RCPT TO"],
      [354, "DATA"],
    ];
    if (this.pipelining) {
      s.write(this.#envelope);
      for (const [code, what] of expected) await r.expect(code, what);
    } else {
      for (const [i, [code, what]] of expected.entries()) {
        s.write(this.#commands[i] ?? "");
        await r.expect(code, what);
      }
    }
    // One writev: the small head, the counter, the shared immutable tail.
    s.cork();
    s.write(this.#msg.head);
    s.write(String(seq).padStart(ID_DIGITS, "0"), "latin1");
    s.write(this.#msg.tail);
    s.uncork();
    await r.expect(250, "end of DATA");
  }

  close(): void {
    this.#socket.end("QUIT\r\n");
  }
}

export async function runLoad(req: LoadRequest, onStarted: () => void): Promise<LoadResult> {
  const msg = buildWireMessage(req.messageBytes, req.mailFrom, req.rcptTo);
  const sessions = await Promise.all(Array.from({ length: req.connections }, () => Session.open(req, msg)));
  let seq = 0;
  try {
    // Warm-up: one message per connection (JIT, server-side first-use costs).
    await Promise.all(sessions.map((s) => s.send(seq++)));
    onStarted();
    const cpu = process.cpuUsage();
    const started = performance.now();
    let remaining = req.messages;
    await Promise.all(
      sessions.map(async (s) => {
        while (remaining > 0) {
          remaining--;
          await s.send(seq++);
        }
      }),
    );
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    return {
      type: "done",
      ms,
      messages: req.messages,
      wireBytes: msg.bytes,
      pipelining: sessions.every((s) => s.pipelining),
      clientCpuMs: (used.user + used.system) / 1000,
    };
  } finally {
    for (const s of sessions) s.close();
  }
}

// Child-process entry: one request from the parent, answers, exits.
if (process.send !== undefined && process.argv.includes("--smtp-load-child")) {
  const reply = (m: LoadMessage): Promise<void> =>
    new Promise((resolve) => {
      process.send?.(m, undefined, {}, () => resolve());
    });
  process.once("message", (req: LoadRequest) => {
    runLoad(req, () => void reply({ type: "started" }))
      .then(
        (r) => reply(r),
        (err: unknown) => reply({ type: "failed", error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      )
      .finally(() => process.disconnect());
  });
}
