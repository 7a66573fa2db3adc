/**
 * Asks the configured mail server whether it would take mail for some
 * recipients, without sending any: EHLO, STARTTLS when offered (smtps:// is
 * TLS from the start), AUTH PLAIN when mail.url has credentials, MAIL FROM,
 * one RCPT TO per address, then RSET and QUIT. `faxbridge doctor` uses it to
 * catch inbound mailboxes the server refuses (every received fax would be
 * dead-lettered) before a fax arrives.
 *
 * nodemailer offers no RCPT-only exchange (its send always goes on to DATA),
 * hence this small client. Credentials never appear in its results.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface RcptVerdict {
  readonly address: string;
  /** 2xx: the server would take mail for it. */
  readonly accepted: boolean;
  readonly code: number;
  /** The server's reply text (one line). */
  readonly reply: string;
}

export interface ProbeResult {
  /** What MAIL FROM was answered (a refused sender makes every RCPT meaningless). */
  readonly mailFrom: { accepted: boolean; code: number; reply: string };
  readonly recipients: RcptVerdict[];
}

interface Reply {
  code: number;
  lines: string[];
}

class SmtpDialog {
  #socket: Socket | TLSSocket;
  #buffer = "";
  #lines: string[] = [];
  #waiting: ((r: Reply | Error) => void) | undefined;
  #error: Error | undefined;

  constructor(socket: Socket | TLSSocket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.#onData(chunk));
    socket.on("error", (err) => this.#fail(err));
    socket.on("close", () => this.#fail(new Error("the mail server closed the connection")));
  }

  #fail(err: Error): void {
    this.#error ??= err;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.(err);
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, nl).replace(/\r$/, "");
      this.#buffer = this.#buffer.slice(nl + 1);
      this.#lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = { code: Number(line.slice(0, 3)), lines: this.#lines.map((l) => l.slice(4)) };
        this.#lines = [];
        const w = this.#waiting;
        this.#waiting = undefined;
        w?.(reply);
      }
    }
  }

  read(): Promise<Reply> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#waiting = (r) => (r instanceof Error ? reject(r) : resolve(r));
    });
  }

  async command(line: string): Promise<Reply> {
    if (/[\r\n]/.test(line)) throw new Error("an address contains a line break");
    const reply = this.read();
    this.#socket.write(`${line}\r\n`);
    return reply;
  }

  /** Upgrade to TLS after a 220 to STARTTLS. */
  async startTls(servername: string, rejectUnauthorized: boolean): Promise<void> {
    const plain = this.#socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    plain.removeAllListeners("error");
    const secure = tlsConnect({ socket: plain, servername, rejectUnauthorized });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    this.#socket = secure;
    this.#attach(secure);
  }

  end(): void {
    this.#socket.removeAllListeners("close");
    this.#socket.on("error", () => undefined);
    this.#socket.end();
    this.#socket.destroy();
  }
}

const oneLine = (r: Reply): string => `${r.code} ${r.lines.join(" ").trim()}`.slice(0, 300);

/** RCPT-probe `recipients` at the server of `mailUrl` (smtp:// or smtps://) with `mailFrom` as sender. */
export async function probeRecipients(
  mailUrl: string,
  mailFrom: string,
  recipients: readonly string[],
  opts: { timeoutMs?: number; heloName?: string } = {},
): Promise<ProbeResult> {
  const u = new URL(mailUrl);
  const secure = u.protocol === "smtps:";
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = u.port !== "" ? Number(u.port) : secure ? 465 : 587;
  const rejectUnauthorized = u.searchParams.get("tls.rejectUnauthorized") !== "false";
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const socket: Socket = secure ? tlsConnect({ host, port, servername: host, rejectUnauthorized }) : netConnect({ host, port });
  socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`the mail server did not answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
  const dialog = new SmtpDialog(socket);
  try {
    const greeting = await dialog.read();
    if (greeting.code !== 220) throw new Error(`mail server greeting: ${oneLine(greeting)}`);
    const helo = opts.heloName ?? "faxbridge.doctor";
    let ehlo = await dialog.command(`EHLO ${helo}`);
    if (ehlo.code !== 250) throw new Error(`EHLO refused: ${oneLine(ehlo)}`);
    if (!secure && ehlo.lines.some((l) => /^STARTTLS\b/i.test(l))) {
      const r = await dialog.command("STARTTLS");
      if (r.code === 220) {
        await dialog.startTls(host, rejectUnauthorized);
        ehlo = await dialog.command(`EHLO ${helo}`);
        if (ehlo.code !== 250) throw new Error(`EHLO after STARTTLS refused: ${oneLine(ehlo)}`);
      }
    }
    if (u.username !== "") {
      const token = Buffer.from(`\0${decodeURIComponent(u.username)}\0${decodeURIComponent(u.password)}`).toString("base64");
      const r = await dialog.command(`AUTH PLAIN ${token}`);
      if (r.code !== 235) throw Object.assign(new Error(`the mail server refused the login (${r.code})`), { code: "EAUTH", responseCode: r.code });
    }
    const from = await dialog.command(`MAIL FROM:<${mailFrom}>`);
    const result: ProbeResult = { mailFrom: { accepted: from.code >= 200 && from.code < 300, code: from.code, reply: oneLine(from) }, recipients: [] };
    if (result.mailFrom.accepted) {
      for (const address of recipients) {
        const r = await dialog.command(`RCPT TO:<${address}>`);
        result.recipients.push({ address, accepted: r.code >= 200 && r.code < 300, code: r.code, reply: oneLine(r) });
      }
    }
    await dialog.command("RSET").catch(() => undefined);
    await dialog.command("QUIT").catch(() => undefined);
    return result;
  } finally {
    dialog.end();
  }
}

/** The bare address of "Name <addr>" or "addr". */
export function bareAddress(value: string): string {
  const m = /<([^<>]*)>\s*$/.exec(value);
  return (m?.[1] ?? value).trim();
}

/** True for an address at a domain only this machine knows (localhost, *.local, a bare host name). */
export function isLocalDomain(address: string): boolean {
  const domain = bareAddress(address).split("@").pop()?.toLowerCase().replace(/\.$/, "") ?? "";
  return domain === "" || domain === "localhost" || domain.endsWith(".localhost") || domain.endsWith(".local") || !domain.includes(".");
}
