/**
 * A deliberately small SMTP client over node:net that sends raw message bytes
 * exactly as given (8-bit, NUL bytes, bare LFs, huge lines) and reports every
 * reply it got. Unlike nodemailer it never rewrites the message, and it tells
 * the caller precisely whether the final 250 arrived — what a fault test needs
 * to decide "acknowledged, must never be lost" from "may be resent".
 */
import { connect, type Socket } from "node:net";

export interface SmtpReplyLine {
  code: number;
  text: string;
}

export type SendOutcome =
  /** The server answered DATA's end with this reply (250 = accepted). */
  | { kind: "reply"; stage: "connect" | "ehlo" | "mail" | "rcpt" | "data" | "end"; code: number; text: string }
  /** The connection failed or closed before a final reply to the message. */
  | { kind: "broken"; stage: string; error: string };

export interface SendOptions {
  host?: string;
  port: number;
  from: string;
  to: readonly string[];
  /** Raw RFC 5322 message; CRLF or LF line ends. Dot-stuffing and the terminator are added here. */
  raw: Buffer;
  /** Whole-transaction deadline (default 30 s); past it the socket is destroyed and the outcome is "broken". */
  timeoutMs?: number;
  /** Called once the DATA payload is being written (e.g. to signal the daemon mid-transfer). */
  onDataStarted?: () => void;
  /** Write the payload in chunks of this size, pausing `chunkDelayMs` between them (slow client). */
  chunkBytes?: number;
  chunkDelayMs?: number;
}

/** Dot-stuff a message and terminate it: every line starting with "." gets another ".", then CRLF.CRLF. */
export function dataPayload(raw: Buffer): Buffer {
  // latin1 maps every byte to one char and back, so 8-bit and NUL bytes survive unchanged.
  let text = raw.toString("latin1");
  text = text.replace(/(^|\n)\./g, "$1..");
  // Only CRLF.CRLF ends DATA: a message whose last line ends in a bare LF still needs a CRLF first.
  if (!text.endsWith("\r\n")) text += "\r\n";
  return Buffer.concat([Buffer.from(text, "latin1"), Buffer.from(".\r\n", "latin1")]);
}

class ReplyReader {
  #buf = "";
  #lines: SmtpReplyLine[] = [];
  #waiters: ((r: SmtpReplyLine | Error) => void)[] = [];
  #pending: SmtpReplyLine[] = [];
  #error: Error | undefined;

  feed(chunk: Buffer): void {
    this.#buf += chunk.toString("latin1");
    for (;;) {
      const i = this.#buf.indexOf("\n");
      if (i < 0) break;
      const line = this.#buf.slice(0, i).replace(/\r$/, "");
      this.#buf = this.#buf.slice(i + 1);
      const m = /^(\d{3})([ -])(.*)$/.exec(line);
      if (!m) continue;
      this.#lines.push({ code: Number(m[1]), text: m[3] ?? "" });
      if (m[2] === " ") {
        const reply = { code: Number(m[1]), text: this.#lines.map((l) => l.text).join("\n") };
        this.#lines = [];
        const w = this.#waiters.shift();
        if (w) w(reply);
        else this.#pending.push(reply);
      }
    }
  }

  fail(err: Error): void {
    this.#error ??= err;
    for (const w of this.#waiters.splice(0)) w(err);
  }

  next(): Promise<SmtpReplyLine> {
    const p = this.#pending.shift();
    if (p) return Promise.resolve(p);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push((r) => (r instanceof Error ? reject(r) : resolve(r))));
  }
}

async function write(socket: Socket, data: Buffer | string): Promise<void> {
  if (socket.destroyed) throw new Error("socket closed");
  await new Promise<void>((resolve, reject) => {
    socket.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

/** Send one message in one SMTP session. Never throws: the outcome says what happened. */
export async function sendRaw(opts: SendOptions): Promise<SendOutcome> {
  const socket = connect({ host: opts.host ?? "127.0.0.1", port: opts.port });
  const reader = new ReplyReader();
  socket.on("data", (c: Buffer) => reader.feed(c));
  socket.on("error", (err) => reader.fail(err));
  socket.on("close", () => reader.fail(new Error("connection closed")));
  const timer = setTimeout(() => {
    reader.fail(new Error(`timed out after ${opts.timeoutMs ?? 30_000} ms`));
    socket.destroy();
  }, opts.timeoutMs ?? 30_000);
  let stage = "connect";
  try {
    const expect = async (st: typeof stage, ok: (code: number) => boolean): Promise<SendOutcome | undefined> => {
      stage = st;
      const r = await reader.next();
      return ok(r.code) ? undefined : { kind: "reply", stage: st as "connect", code: r.code, text: r.text };
    };
    let bad = await expect("connect", (c) => c === 220);
    if (bad) return bad;
    await write(socket, "EHLO fault-test.local\r\n");
    bad = await expect("ehlo", (c) => c === 250);
    if (bad) return bad;
    await write(socket, `MAIL FROM:<${opts.from}>\r\n`);
    bad = await expect("mail", (c) => c === 250);
    if (bad) return bad;
    let accepted = 0;
    let lastRefusal: SendOutcome | undefined;
    for (const rcpt of opts.to) {
      await write(socket, `RCPT TO:<${rcpt}>\r\n`);
      stage = "rcpt";
      const r = await reader.next();
      if (r.code === 250 || r.code === 251) accepted++;
      else lastRefusal = { kind: "reply", stage: "rcpt", code: r.code, text: r.text };
    }
    if (accepted === 0) return lastRefusal ?? { kind: "broken", stage: "rcpt", error: "no recipients" };
    await write(socket, "DATA\r\n");
    bad = await expect("data", (c) => c === 354);
    if (bad) return bad;
    stage = "end";
    opts.onDataStarted?.();
    const payload = dataPayload(opts.raw);
    const chunk = opts.chunkBytes ?? 256 * 1024;
    for (let off = 0; off < payload.length; off += chunk) {
      await write(socket, payload.subarray(off, off + chunk));
      if (opts.chunkDelayMs !== undefined) await new Promise((r) => setTimeout(r, opts.chunkDelayMs));
    }
    const end = await reader.next();
    await write(socket, "QUIT\r\n").catch(() => undefined); // the outcome is known; a failed QUIT changes nothing
    return { kind: "reply", stage: "end", code: end.code, text: end.text };
  } catch (err) {
    return { kind: "broken", stage, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
    socket.end();
    socket.destroySoon();
  }
}
