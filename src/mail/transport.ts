import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import nodemailer, { type Transporter } from "nodemailer";
import type Mail from "nodemailer/lib/mailer/index.js";
import type { FailureKind, KindedError } from "../failure.js";
import type { Logger } from "../log.js";

/** A message to send. `messageId` is required: it makes redelivery idempotent. */
export type OutgoingMail = Mail.Options & { messageId: string; envelope?: { from: string; to: string[] } };

export interface SentMail {
  /** What the mail server answered (e.g. "250 2.0.0 Ok: queued as ABC"), or the file written. */
  readonly response: string;
  readonly accepted: readonly string[];
}

/**
 * Why a mail was not sent. The verdict follows SMTP: 4xx and network trouble
 * are transient (worth retrying), 5xx is permanent.
 */
export class MailDeliveryError extends Error implements KindedError {
  readonly failureKind: FailureKind;
  readonly responseCode: number | undefined;
  constructor(message: string, temporary: boolean, responseCode?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "MailDeliveryError";
    this.failureKind = temporary ? "transient" : "permanent";
    this.responseCode = responseCode;
  }

  /** True for a transient failure (the failureKind, as SMTP says it). */
  get temporary(): boolean {
    return this.failureKind === "transient";
  }
}

export interface MailSender {
  /** Resolves once the mail server accepted the message (250) or the file is durably written. */
  send(mail: OutgoingMail): Promise<SentMail>;
  /** Checks that the transport is reachable (SMTP: connects and says EHLO). */
  verify(): Promise<void>;
  /** "smtp://host:port" or "mailbox directory <path>" for logs and /readyz; never credentials. */
  readonly description: string;
  close(): void;
}

/** What every subject says when a sandbox daemon mails through a real mail server: nothing it reports was faxed. */
export const SANDBOX_SUBJECT_TAG = "[SANDBOX, not faxed]";

/** A sender that puts `tag` in front of every subject (sandbox mode with a real mail.url). */
export function tagSubjects(sender: MailSender, tag: string): MailSender {
  return {
    description: sender.description,
    send: (mail) => sender.send({ ...mail, subject: typeof mail.subject === "string" && mail.subject !== "" ? `${tag} ${mail.subject}` : tag }),
    verify: () => sender.verify(),
    close: () => sender.close(),
  };
}

/** The transport for `mail.url`, or a local mailbox directory when the URL is empty. */
export function createMailSender(url: string, mailboxDir: string, log: Logger): MailSender {
  return url === "" ? new MailboxDirSender(mailboxDir) : new SmtpSender(url, log);
}

class SmtpSender implements MailSender {
  readonly description: string;
  readonly #transport: Transporter;

  constructor(url: string, log: Logger) {
    const u = new URL(url);
    this.description = `${u.protocol}//${u.host}`;
    // Pooled: reusing connections saves the connect + greeting + EHLO round
    // trips (over 100 ms against MTAs that delay their greeting) on every mail.
    this.#transport = nodemailer.createTransport({ url, pool: true, maxConnections: 4, maxMessages: 500 });
    log.debug({ event: "mail.transport", transport: this.description }, "outbound mail via SMTP");
  }

  async send(mail: OutgoingMail): Promise<SentMail> {
    try {
      const info = (await this.#transport.sendMail(mail)) as { response?: string; accepted?: (string | { address: string })[]; rejected?: unknown[] };
      const accepted = (info.accepted ?? []).map((a) => (typeof a === "string" ? a : a.address));
      if (accepted.length === 0) throw new MailDeliveryError(`the mail server accepted no recipient (${info.response ?? "no response"})`, false, 550);
      return { response: info.response ?? "250", accepted };
    } catch (err) {
      throw classifySmtpError(err);
    }
  }

  async verify(): Promise<void> {
    try {
      await this.#transport.verify();
    } catch (err) {
      throw classifySmtpError(err);
    }
  }

  close(): void {
    this.#transport.close();
  }
}

function classifySmtpError(err: unknown): MailDeliveryError {
  if (err instanceof MailDeliveryError) return err;
  const e = err as { responseCode?: unknown; response?: unknown; message?: unknown; code?: unknown };
  const code = typeof e.responseCode === "number" ? e.responseCode : undefined;
  const text = typeof e.response === "string" ? e.response : typeof e.message === "string" ? e.message : String(err);
  // No SMTP code means the connection failed or timed out: try again later.
  const temporary = code === undefined || (code >= 400 && code < 500);
  return new MailDeliveryError(`mail server: ${text}`, temporary, code, { cause: err });
}

/**
 * Writes each message as an .eml file under the mailbox directory, named after
 * its Message-ID, via tmp → fsync → rename: a redelivery replaces the same file,
 * so a crash can never leave two copies.
 */
class MailboxDirSender implements MailSender {
  readonly description: string;
  readonly #dir: string;
  readonly #transport: Transporter;

  constructor(dir: string) {
    this.#dir = dir;
    this.description = `mailbox directory ${dir}`;
    this.#transport = nodemailer.createTransport({ streamTransport: true, buffer: false, newline: "unix" });
  }

  async send(mail: OutgoingMail): Promise<SentMail> {
    await mkdir(join(this.#dir, "tmp"), { recursive: true, mode: 0o700 });
    const name = `${createHash("sha256").update(mail.messageId).digest("hex").slice(0, 32)}.eml`;
    const tmp = join(this.#dir, "tmp", name);
    const final = join(this.#dir, name);
    try {
      const info = (await this.#transport.sendMail(mail)) as { message: Readable; envelope: { to: string[] } };
      await pipeline(info.message, createWriteStream(tmp, { mode: 0o600 }));
      const fh = await open(tmp, "r");
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
      const dh = await open(this.#dir, "r");
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
      return { response: `written to ${final}`, accepted: info.envelope.to };
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      const code = (err as NodeJS.ErrnoException).code;
      throw new MailDeliveryError(`cannot write to the mailbox directory (${code ?? String(err)})`, true, undefined, { cause: err });
    }
  }

  async verify(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
  }

  close(): void {
    this.#transport.close();
  }
}
