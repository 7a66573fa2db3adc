import type { AddressInfo } from "node:net";
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";

export interface SinkMessage {
  readonly from: string;
  readonly to: string[];
  readonly raw: Buffer;
  readonly parsed: ParsedMail;
}

/**
 * A real SMTP server on loopback that keeps what it receives: the far end of
 * our outbound mail in tests. `failNext(n, code)` makes the next n messages
 * fail at DATA with that reply code; `down()`/`up()` stop and restart it on the
 * same port.
 */
export class SmtpSink {
  readonly messages: SinkMessage[] = [];
  /** Connection errors seen (e.g. ECONNRESET from a client that was killed). */
  readonly errors: Error[] = [];
  #server: SMTPServer | undefined;
  #port = 0;
  #failures: { count: number; code: number } = { count: 0, code: 451 };
  attempts = 0;
  /** SMTP connections opened to this sink so far. */
  connections = 0;
  /** Recipients answered 550 at RCPT (lower-case addresses). */
  readonly refuseRecipients = new Set<string>();

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.#port}`;
  }

  async start(): Promise<this> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      disableReverseLookup: true,
      logger: false,
      size: 100 * 1024 * 1024,
      closeTimeout: 500,
      onConnect: (_session, callback) => {
        this.connections++;
        callback();
      },
      onRcptTo: (address, _session, callback) => {
        if (this.refuseRecipients.has(address.address.toLowerCase())) {
          callback(Object.assign(new Error("5.1.1 <" + address.address + ">: Recipient address rejected: User unknown"), { responseCode: 550 }));
          return;
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          this.attempts++;
          if (this.#failures.count > 0) {
            this.#failures.count--;
            const err = Object.assign(new Error(this.#failures.code >= 500 ? "Mailbox unavailable" : "Try again later"), { responseCode: this.#failures.code });
            callback(err);
            return;
          }
          const raw = Buffer.concat(chunks);
          simpleParser(raw)
            .then((parsed) => {
              this.messages.push({
                from: session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address,
                to: session.envelope.rcptTo.map((r) => r.address),
                raw,
                parsed,
              });
              callback(null, "Ok: queued");
            })
            .catch((err: unknown) => callback(err instanceof Error ? err : new Error(String(err))));
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, "127.0.0.1", () => resolve());
    });
    server.removeAllListeners("error");
    // smtp-server re-emits every client connection's socket error on the server (a client
    // killed mid-session resets its connection): keep them, never let one crash the test run.
    server.on("error", (err: Error) => this.errors.push(err));
    this.#port = (server.server.address() as AddressInfo).port;
    this.#server = server;
    return this;
  }

  failNext(count: number, code = 451): void {
    this.#failures = { count, code };
  }

  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async up(): Promise<void> {
    await this.start();
  }

  async close(): Promise<void> {
    await this.down();
  }
}
