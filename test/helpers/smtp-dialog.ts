/**
 * A line-by-line SMTP dialog over node:net, for tests that need to see each
 * reply exactly (EHLO capabilities, a 421 that closes the connection) or to
 * connect from a chosen loopback address (`localAddress`). Replies come back
 * as their last line ("250 2.0.0 OK"); `lines` of a multi-line reply are kept.
 */
import { connect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface Reply {
  readonly code: number;
  /** The last line, e.g. "421 4.7.0 too many commands without progress, closing connection". */
  readonly line: string;
  /** Every line of a multi-line reply, without the "250-" prefixes. */
  readonly lines: readonly string[];
}

export class SmtpDialog {
  #socket: Socket | TLSSocket;
  #buf = "";
  #partial: string[] = [];
  #replies: Reply[] = [];
  #waiters: ((r: Reply | Error) => void)[] = [];
  #closed: Error | undefined;
  readonly closedPromise: Promise<void>;

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.closedPromise = new Promise((resolve) => socket.once("close", () => resolve()));
    this.#listen(socket);
  }

  /** Connect and wait for the greeting (or the refusal sent instead of it). */
  static async open(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<{ dialog: SmtpDialog; greeting: Reply }> {
    const socket = connect({ port, host: opts.host ?? "127.0.0.1", ...(opts.localAddress !== undefined && { localAddress: opts.localAddress }) });
    const dialog = new SmtpDialog(socket);
    const greeting = await dialog.next();
    return { dialog, greeting };
  }

  #listen(socket: Socket | TLSSocket): void {
    socket.on("data", (chunk: Buffer) => this.#feed(chunk));
    socket.on("error", (err) => this.#fail(err));
    socket.on("close", () => this.#fail(new Error("connection closed")));
  }

  #feed(chunk: Buffer): void {
    this.#buf += chunk.toString("latin1");
    for (;;) {
      const i = this.#buf.indexOf("\n");
      if (i < 0) return;
      const line = this.#buf.slice(0, i).replace(/\r$/, "");
      this.#buf = this.#buf.slice(i + 1);
      const m = /^(\d{3})([ -])(.*)$/.exec(line);
      if (m === null) continue;
      this.#partial.push(m[3] ?? "");
      if (m[2] === " ") {
        const reply = { code: Number(m[1]), line, lines: this.#partial };
        this.#partial = [];
        const w = this.#waiters.shift();
        if (w !== undefined) w(reply);
        else this.#replies.push(reply);
      }
    }
  }

  #fail(err: Error): void {
    this.#closed ??= err;
    for (const w of this.#waiters.splice(0)) w(err);
  }

  /** The next reply; rejects when the connection closes first. */
  next(): Promise<Reply> {
    const r = this.#replies.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => this.#waiters.push((x) => (x instanceof Error ? reject(x) : resolve(x))));
  }

  write(line: string): void {
    this.#socket.write(`${line}\r\n`);
  }

  /** Send one command line and await its reply. */
  async command(line: string): Promise<Reply> {
    this.write(line);
    return this.next();
  }

  /** After a 220 to STARTTLS: wrap the socket in TLS (self-signed certificates accepted). */
  async startTls(): Promise<void> {
    const plain = this.#socket;
    plain.removeAllListeners("data");
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    this.#socket = secure;
    this.#listen(secure);
  }

  close(): void {
    this.#socket.destroy();
  }
}
