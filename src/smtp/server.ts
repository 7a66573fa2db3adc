import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";
import type { Config } from "../config/schema.js";
import { ConfigError, SmtpReply, errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { SmtpPolicy } from "../policy/index.js";
import { SpoolError, type Spool } from "../spool/spool.js";
import type { JobRecipient, OutboundStore } from "../store/ports.js";
import { newId } from "../util/ids.js";
import { accept as acceptIntake, belowDiskFloor, IntakeError, type IntakeSender } from "../intake/accept.js";
import { senderIdentity } from "../policy/identity.js";
import { parseFaxAddress, splitAddress, type NumberCheck } from "../fax/number.js";
import { createCidrMatcher, isLocalClient } from "../net/cidr.js";
import { countRefusal, refuse, REPLIES, replyLine, smtpReply, spoolFailure, type RefusalReason, type RefusalSink, type ReplySpec } from "../replies.js";
import { usePreciseEnhancedCodes } from "./enhanced.js";
import { verifyPassword } from "./password.js";
import { guardSessions } from "./session-guard.js";
import { SMTP_CLOSE_DEADLINE_MS } from "../tunables.js";

/**
 * The SMTP intake. Hooks are thin: policy at AUTH and MAIL, one parse of the
 * fax number at RCPT, and at DATA nothing but streaming into the spool. A
 * 250 is sent only after the message file and its directory are fsynced and
 * the job row is committed. Every refusal is an SmtpReply with an explicit code.
 */

export interface SmtpServerDeps {
  readonly config: Pick<Config, "smtp" | "fax" | "policy" | "dataDir">;
  readonly spool: Spool;
  readonly store: OutboundStore;
  readonly logger: Logger;
  /** Called after a message is durably accepted (wakes the worker). */
  readonly onAccepted?: (jobId: string) => void;
  /** How strictly RCPT numbers are checked (default "valid"; the sandbox uses "possible"). */
  readonly numberCheck?: NumberCheck;
  /** Counts accepted mails and refusals (by reason). */
  readonly metrics?: Metrics;
  /** Security policy (src/policy): sender rules, destinations, quotas, abuse limits. Without it only the smtp settings apply. */
  readonly policy?: SmtpPolicy;
}

export interface FaxSmtpServer {
  listen(): Promise<{ host: string; port: number }>;
  /** Stop accepting, answer 421 to new transactions, let spool writes in flight finish; after `deadlineMs` remaining clients get 421 and are disconnected. Idempotent. */
  close(deadlineMs?: number): Promise<void>;
  readonly closing: boolean;
}

/** The state of one mail transaction, from MAIL FROM to the end of DATA. */
interface Transaction {
  readonly id: string;
  readonly log: Logger;
  /** Keyed by E.164: two addresses for the same number are one fax recipient. */
  readonly recipients: Map<string, JobRecipient>;
}


function readTlsFile(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError([{ path: key, source: path, message: `cannot read: ${errorMessage(err)}` }]);
  }
}

export function createSmtpServer(deps: SmtpServerDeps): FaxSmtpServer {
  const { config, spool, store, logger } = deps;
  const smtp = config.smtp;
  const log = logger.child({ component: "smtp" });
  const faxDomains = new Set(config.fax.domains.map((d) => d.toLowerCase().replace(/\.$/, "")));
  let allowUnauthenticated: (ip: string) => boolean;
  try {
    allowUnauthenticated = createCidrMatcher(smtp.allowUnauthenticatedFrom);
  } catch (err) {
    throw new ConfigError([{ path: "smtp.allowUnauthenticatedFrom", source: "config", message: errorMessage(err) }]);
  }
  const users = new Map(smtp.users.map((u) => [u.username, u.passwordHash]));
  // Unknown users are checked against this so they cost the same scrypt work as known ones.
  const dummyHash = `scrypt$16384$8$1$${randomBytes(16).toString("base64")}$${randomBytes(32).toString("base64")}`;
  const tls = smtp.tlsKey !== "" && smtp.tlsCert !== "";
  const diskFloor = { dir: config.dataDir, minFreeBytes: smtp.minFreeBytes };
  const transactions = new WeakMap<object, Transaction>();
  const inFlight = new Set<Promise<unknown>>();
  let closing = false;
  let closed: Promise<void> | undefined;
  const sink = (logger: Logger = log): RefusalSink => ({ logger, metrics: deps.metrics });

  const server = new SMTPServer({
    name: smtp.hostname,
    // smtp-server greets with "220 <name> ESMTP <banner>": the banner only adds the product.
    banner: "faxbridge",
    size: smtp.maxMessageBytes,
    maxClients: smtp.maxConnections,
    disableReverseLookup: true,
    // Advertise ENHANCEDSTATUSCODES (smtp-server 3.21 hides them by default): every reply carries one, derived from its basic code.
    hideENHANCEDSTATUSCODES: false,
    hideSTARTTLS: !tls,
    ...(tls && { key: readTlsFile(smtp.tlsKey, "smtp.tlsKey"), cert: readTlsFile(smtp.tlsCert, "smtp.tlsCert") }),
    authMethods: ["PLAIN", "LOGIN"],
    // smtp-server decides this per server; we decide per client in onAuth (loopback only).
    allowInsecureAuth: true,
    // Who must authenticate depends on the client network: decided in onMailFrom.
    authOptional: true,
    logger: false,
    onConnect,
    onSecure,
    onAuth,
    onMailFrom,
    onRcptTo,
    onData,
  });
  usePreciseEnhancedCodes(server);
  server.on("error", (err: Error) => {
    log.warn({ event: "smtp.error", err }, "SMTP server error");
  });

  const guard = guardSessions(server, {
    maxCommandsWithoutProgress: config.policy.abuse.maxCommandsWithoutProgress,
    authRefusal: (session) => {
      const refusal = authRefusal(session);
      if (refusal !== undefined) {
        countRefusal(sink(), "auth_needs_tls", { event: "smtp.auth_refused", msg: "AUTH refused without TLS", fields: { sessionId: session.id, client: session.remoteAddress } });
      }
      return refusal?.text;
    },
    onNoProgress: (session, commands) => {
      countRefusal(sink(), "no_progress", {
        event: "smtp.no_progress",
        msg: "session closed: too many commands without progress",
        fields: { sessionId: session.id, client: session.remoteAddress, commands },
      });
    },
  });

  /** Why this session may not log in (538), or undefined: AUTH needs TLS unless the client is local (see isLocalClient). */
  function authRefusal(session: SMTPServerSession): ReplySpec | undefined {
    if (session.secure || isLocalClient(session.remoteAddress, session.localAddress)) return undefined;
    return REPLIES.authNeedsTls(tls);
  }

  /** Sessions that may not log in yet are not offered AUTH in EHLO (smtp-server reads session.disabledCommands). */
  function offerAuth(session: SMTPServerSession): void {
    (session as SMTPServerSession & { disabledCommands?: string[] }).disabledCommands = authRefusal(session) === undefined ? [] : ["AUTH"];
  }

  function openFrom(ip: string): number {
    let n = 0;
    for (const c of server.connections as Set<{ remoteAddress?: string }>) if (c.remoteAddress === ip) n++;
    return n;
  }

  function onConnect(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const refusal = deps.policy?.checkConnect(session, openFrom(session.remoteAddress));
    if (refusal === undefined) offerAuth(session);
    callback(refusal);
  }

  function onSecure(_socket: unknown, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    offerAuth(session);
    callback();
  }

  function onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, callback: (err: Error | null | undefined, response?: { user: unknown }) => void): void {
    const needsTls = authRefusal(session);
    if (needsTls !== undefined) {
      const fields = { sessionId: session.id, client: session.remoteAddress, user: auth.username };
      callback(refuse(sink(), "auth_needs_tls", needsTls, { event: "smtp.auth_refused", msg: "AUTH refused without TLS", fields }));
      return;
    }
    const locked = deps.policy?.checkAuth(session);
    if (locked !== undefined) {
      callback(locked);
      return;
    }
    const hash = users.get(auth.username ?? "");
    verifyPassword(auth.password ?? "", hash ?? dummyHash).then(
      (ok) => {
        if (ok && hash !== undefined) {
          log.info({ event: "smtp.auth_ok", sessionId: session.id, client: session.remoteAddress, user: auth.username }, "client authenticated");
          deps.policy?.authSucceeded(session);
          guard.progress(session, "login");
          callback(null, { user: auth.username });
        } else {
          const fields = { sessionId: session.id, client: session.remoteAddress, user: auth.username };
          const refusal = refuse(sink(), "auth_failed", REPLIES.authFailed(), { event: "smtp.auth_failed", level: "warn", msg: "authentication failed", fields });
          // Brute force: each failure is answered later than the one before (policy.abuse).
          const delayMs = deps.policy?.authFailed(session) ?? 0;
          const reply = (): void => callback(refusal);
          if (delayMs > 0) setTimeout(reply, delayMs).unref();
          else reply();
        }
      },
      (err: unknown) => {
        log.error({ event: "smtp.auth_error", sessionId: session.id, err }, "password check failed");
        callback(smtpReply(REPLIES.authTemporary(), err));
      },
    );
  }

  function authenticatedUser(session: SMTPServerSession): string | undefined {
    const user: unknown = session.user;
    return typeof user === "string" ? user : undefined;
  }

  function onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    if (closing) {
      const fields = { sessionId: session.id, client: session.remoteAddress };
      callback(refuse(sink(), "shutdown", REPLIES.shutdown(), { event: "smtp.refused", msg: "shutting down: new mail refused", fields }));
      return;
    }
    const user = authenticatedUser(session);
    if (user === undefined && !allowUnauthenticated(session.remoteAddress)) {
      const fields = { sessionId: session.id, client: session.remoteAddress };
      callback(refuse(sink(), "auth_required", REPLIES.authRequired(), { event: "smtp.mail_refused", msg: "unauthenticated client outside allowUnauthenticatedFrom", fields }));
      return;
    }
    belowDiskFloor(diskFloor).then(
      (full) => {
        if (full) {
          const fields = { sessionId: session.id, client: session.remoteAddress, minFreeBytes: smtp.minFreeBytes };
          const msg = "data directory below smtp.minFreeBytes; new mail refused";
          callback(refuse(sink(), "disk_floor", REPLIES.diskFloor(), { event: "smtp.disk_floor", level: "warn", msg, fields }));
          return;
        }
        mailFromAccepted(address, session, user, callback);
      },
      (err: unknown) => {
        log.error({ event: "smtp.statfs_failed", err }, "cannot read the free space of the data directory; answering 451");
        callback(smtpReply(REPLIES.localError(), err));
      },
    );
  }

  function mailFromAccepted(address: SMTPServerAddress, session: SMTPServerSession, user: string | undefined, callback: (err?: Error | null) => void): void {
    const denied = deps.policy?.checkMailFrom(session, address.address);
    if (denied !== undefined) {
      callback(denied);
      return;
    }
    const id = newId();
    const txLog = log.child({ sessionId: session.id, queueId: id });
    transactions.set(session.envelope, { id, log: txLog, recipients: new Map() });
    txLog.debug({ event: "smtp.mail_from", from: address.address, client: session.remoteAddress, ...(user !== undefined && { user }) }, "MAIL FROM");
    callback();
  }

  function onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const tx = transactions.get(session.envelope);
    if (tx === undefined) {
      callback(smtpReply(REPLIES.transactionLost()));
      return;
    }
    const reject = (reply: ReplySpec, reason: RefusalReason): void => {
      const fields = { to: address.address, code: reply.code, reason: replyLine(reply) };
      callback(refuse(sink(tx.log), reason, reply, { event: "smtp.rcpt_refused", msg: "recipient refused", fields }));
    };
    const parts = splitAddress(address.address);
    if (parts === undefined) {
      reject(REPLIES.malformedAddress(), "malformed_address");
      return;
    }
    if (!faxDomains.has(parts.domain)) {
      reject(REPLIES.notFaxDomain(parts.domain), "not_fax_domain");
      return;
    }
    const parsed = parseFaxAddress(parts.local, config.fax.defaultCountry, deps.numberCheck ?? "valid");
    if (!parsed.ok) {
      reject(REPLIES.badNumber(parsed.reason), "bad_number");
      return;
    }
    if (!tx.recipients.has(parsed.e164) && tx.recipients.size >= smtp.maxRecipients) {
      reject(REPLIES.tooManyRecipients(), "too_many_recipients");
      return;
    }
    const accepted = (): void => {
      tx.recipients.set(parsed.e164, { address: address.address, e164: parsed.e164, options: parsed.options });
      guard.progress(session, "recipient");
      callback();
    };
    const policy = deps.policy;
    if (policy === undefined) {
      accepted();
      return;
    }
    // The quota check reads the store's ledger (shared by every instance); the take at the end of DATA decides.
    policy.checkRecipient(session, { domain: parts.domain, e164: parsed.e164 }).then(
      (denied) => {
        if (denied === undefined) {
          accepted();
          return;
        }
        tx.log.info({ event: "smtp.rcpt_refused", to: address.address, code: denied.responseCode, reason: denied.message }, "recipient refused by policy");
        callback(denied);
      },
      (err: unknown) => {
        tx.log.error({ event: "smtp.policy_failed", err }, "checking a recipient failed; answering 451");
        callback(smtpReply(REPLIES.localError(), err));
      },
    );
  }

  function onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    const tx = transactions.get(session.envelope);
    if (tx === undefined || tx.recipients.size === 0) {
      stream.resume();
      callback(smtpReply(REPLIES.transactionLost()));
      return;
    }
    const work = accept(tx, stream, session).then(
      (id) => {
        deps.metrics?.mailsReceived.inc();
        guard.progress(session, "message");
        callback(null, `Queued as ${id}`);
      },
      (err: unknown) => callback(err instanceof SmtpReply ? err : smtpReply(REPLIES.localError())),
    );
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  }

  /** The end of DATA: the shared intake (src/intake/accept.ts) with this session's sender and checks. */
  async function accept(tx: Transaction, stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const mailFrom = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address;
    const user = authenticatedUser(session);
    // The identity so far; the policy's check of the stored message decides the final one (a verified From).
    const sender: IntakeSender = { key: senderIdentity({ user, mailFrom }).key, mailFrom, user, ip: session.remoteAddress };
    const policy = deps.policy;
    try {
      const accepted = await acceptIntake(
        { spool, store, policy, maxMessageBytes: smtp.maxMessageBytes, diskFloor, logger: log, onAccepted: deps.onAccepted },
        {
          id: tx.id,
          sender,
          recipients: [...tx.recipients.values()],
          message: stream,
          sessionId: session.id,
          // Sender rules that need the whole message (From, DKIM/DMARC): a refusal here is still at SMTP time, nothing is recorded.
          ...(policy !== undefined && {
            checkMessage: async (m) => {
              const d = await policy.beforeCommit(session, { path: m.path });
              return { sender: { ...sender, key: d.identity.key }, reservation: d, job: { reportTo: d.reportTo } };
            },
          }),
        },
      );
      return accepted.id;
    } catch (err) {
      if (err instanceof SmtpReply) throw err;
      if (err instanceof IntakeError) {
        const refusal = { level: "error", msg: `${err.message}; answering 451`, fields: { err }, cause: err } as const;
        if (err.step === "store") throw refuse(sink(tx.log), "local_error", REPLIES.localError(), { event: "smtp.store_failed", ...refusal });
        tx.log.error({ event: "smtp.policy_failed", err }, refusal.msg);
        throw smtpReply(REPLIES.localError(), err);
      }
      throw spoolRefusal(tx, err);
    }
  }

  /** The spool write failed: refuse with what went wrong (too big, out of space, client gone, I/O). */
  function spoolRefusal(tx: Transaction, err: unknown): SmtpReply {
    const failure = spoolFailure(err instanceof SpoolError ? err.kind : "io", smtp.maxMessageBytes);
    const withErr = failure.log.level === "error" ? { ...failure.log.fields, err } : failure.log.fields;
    return refuse(sink(tx.log), failure.reason, failure.reply, { ...failure.log, ...(withErr !== undefined && { fields: withErr }), cause: err });
  }

  return {
    get closing() {
      return closing;
    },

    listen() {
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.server.once("error", onError);
        server.listen(smtp.port, smtp.host, () => {
          server.server.off("error", onError);
          const a = server.server.address() as AddressInfo;
          log.info({ event: "smtp.listening", host: a.address, port: a.port, tls }, "SMTP listening");
          resolve({ host: a.address, port: a.port });
        });
      });
    },

    close(deadlineMs = SMTP_CLOSE_DEADLINE_MS) {
      if (closed !== undefined) return closed;
      closing = true;
      log.info({ event: "smtp.closing", deadlineMs, connections: server.connections.size }, "SMTP server closing");
      server.options.closeTimeout = deadlineMs;
      closed = (async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.allSettled([...inFlight]);
        log.info({ event: "smtp.closed" }, "SMTP server closed");
      })();
      return closed;
    },
  };
}
