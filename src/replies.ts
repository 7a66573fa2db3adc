import { SmtpReply, type SmtpReplyCode } from "./errors.js";
import type { LogEvent } from "./log-events.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";

/**
 * The SMTP reply catalogue: every reply faxbridge answers a mail, recipient,
 * login or connection with (code, enhanced status code, human text), and the
 * one `refuse()` that builds a refusal, counts it in
 * faxbridge_mails_refused_total and logs it. The SMTP server, the security
 * policy, the shared intake and the web and CLI intakes (which show the same
 * words) build their replies here.
 *
 * An enhanced status code given here goes out as it is (src/smtp/enhanced.ts);
 * without one, smtp-server derives it from the basic code.
 */

/** A reply text that starts with its own enhanced status code (RFC 3463: class.subject.detail). */
export const OWN_ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;

/** What a reply says: its basic code, an enhanced status code when the derived one would be wrong, and the words. */
export interface ReplySpec {
  readonly code: SmtpReplyCode;
  readonly enhanced?: string;
  readonly text: string;
}

const spec = (code: SmtpReplyCode, text: string, enhanced?: string): ReplySpec => (enhanced === undefined ? { code, text } : { code, text, enhanced });

/** The one answer for a sender that is not exactly one mailbox: our policy's, and smtp-server's own syntax refusal rewritten to it. */
export const BAD_SENDER: ReplySpec = spec(553, "the sender address must be exactly one valid mailbox", "5.1.7");

/** The reply line of a spec: the enhanced code, when it has its own, in front of the text. */
export function replyLine(s: ReplySpec): string {
  return s.enhanced === undefined ? s.text : `${s.enhanced} ${s.text}`;
}

/** Every reply, by name. */
export const REPLIES = {
  // connection and session
  shutdown: () => spec(421, "Server shutting down, try again later"),
  connectionsPerIp: (ip: string, max: number) => spec(421, `too many open connections from ${ip} (at most ${max}), try again later`, "4.7.0"),
  connectionRate: (ip: string) => spec(421, `too many connections from ${ip}, try again in a minute`, "4.7.0"),
  noProgress: () => spec(421, "too many commands without progress, closing connection", "4.7.0"),
  // AUTH
  authNeedsTls: (tlsOffered: boolean) => spec(538, tlsOffered ? "Must issue a STARTTLS command first" : "Authentication requires TLS, which this server does not offer"),
  authFailed: () => spec(535, "Authentication credentials invalid"),
  authTemporary: () => spec(454, "Temporary authentication failure"),
  authLocked: (ip: string, until: string) => spec(454, `too many failed logins from ${ip}; AUTH refused until ${until}`),
  // MAIL FROM
  authRequired: () => spec(530, "Authentication required"),
  badSender: () => BAD_SENDER,
  userSenderMismatch: (user: string, from: string) => spec(550, `user ${user} may not send as ${from}`),
  // RCPT TO
  malformedAddress: () => spec(553, "malformed address"),
  notFaxDomain: (domain: string) => spec(550, `relay not permitted: ${domain} is not a fax domain`),
  badNumber: (reason: string) => spec(550, reason),
  tooManyRecipients: () => spec(452, "too many recipients"),
  authRequiredForDomain: (domain: string) => spec(530, `authentication required to fax via ${domain}`),
  senderNotAllowed: (from: string, domain: string) => spec(550, `sender ${from} is not allowed to fax via ${domain}`),
  destinationRefused: (message: string) => spec(550, message),
  quotaSender: (limit: number, who: string, when: string) => spec(452, `hourly fax quota of ${limit} for ${who} reached; ${when}`),
  quotaClient: (limit: number, ip: string, when: string) => spec(452, `hourly fax quota of ${limit} for unauthenticated mail from ${ip} reached; ${when}`),
  quotaGlobal: (limit: number, when: string) => spec(452, `this gateway's hourly fax quota of ${limit} is reached; ${when}`),
  // DATA and the end of DATA
  transactionLost: () => spec(451, "Transaction state lost, start again with MAIL FROM"),
  tooBig: (maxBytes: number) => spec(552, `message exceeds fixed maximum message size ${maxBytes}`),
  noSpace: () => spec(452, "insufficient system storage"),
  diskFloor: () => spec(452, "insufficient system storage, try again later", "4.3.1"),
  incomplete: () => spec(451, "Message incomplete"),
  localError: () => spec(451, "Local error in processing, try again later"),
  fromRules: (why: string) => spec(550, `${why}; the sender rules need exactly one From address`, "5.7.1"),
  verifyUnavailable: () => spec(451, "could not verify the sender, try again later"),
  senderUnverified: (message: string, temporary: boolean, ambiguous: boolean) => spec(temporary ? 451 : 550, message, ambiguous ? "5.7.1" : undefined),
  forwardNotAllowed: (why: string) => spec(550, why, "5.7.1"),
} as const satisfies Readonly<Record<string, (...args: never[]) => ReplySpec>>;

/** Why writing a message into the spool failed (src/spool SpoolError kinds, "io" for any other error). */
export type SpoolFailureKind = "too_big" | "no_space" | "aborted" | "io";

/** The refusal for a failed spool write, by kind: reason, reply, and how it is logged. */
export function spoolFailure(kind: SpoolFailureKind, maxBytes: number): { reason: SmtpRefusalReason; reply: ReplySpec; log: RefusalLog & { msg: string } } {
  switch (kind) {
    case "too_big":
      return { reason: "too_big", reply: REPLIES.tooBig(maxBytes), log: { event: "smtp.too_big", msg: "message over the size limit refused", fields: { limit: maxBytes } } };
    case "no_space":
      return { reason: "no_space", reply: REPLIES.noSpace(), log: { event: "spool.no_space", level: "error", msg: "spool out of space; answering 452" } };
    case "aborted":
      return { reason: "aborted", reply: REPLIES.incomplete(), log: { event: "smtp.aborted", msg: "client went away during DATA" } };
    case "io":
      return { reason: "local_error", reply: REPLIES.localError(), log: { event: "spool.write_failed", level: "error", msg: "spool write failed; answering 451" } };
  }
}

/** Build the SmtpReply of a spec (the error smtp-server reads `responseCode` from). */
export function smtpReply(s: ReplySpec, cause?: unknown): SmtpReply {
  const options: ErrorOptions & { enhanced?: string } = {};
  if (s.enhanced !== undefined) options.enhanced = s.enhanced;
  if (cause !== undefined) options.cause = cause;
  return new SmtpReply(s.code, s.text, options);
}

/** Refusals the SMTP server makes itself. */
export type SmtpRefusalReason =
  | "shutdown"
  | "auth_required"
  | "auth_failed"
  | "auth_needs_tls"
  | "malformed_address"
  | "not_fax_domain"
  | "bad_number"
  | "too_many_recipients"
  | "too_big"
  | "no_space"
  | "disk_floor"
  | "no_progress"
  | "aborted"
  | "local_error";

/** Refusals of the security policy (src/policy). */
export type PolicyRefusalReason =
  | "connection_rate"
  | "connections_per_ip"
  | "auth_locked"
  | "auth_required_for_domain"
  | "user_sender_mismatch"
  | "sender_not_allowed"
  | "sender_unverified"
  | "verify_unavailable"
  | "destination_denied"
  | "destination_type"
  | "destination_international"
  | "quota_sender"
  | "quota_client"
  | "quota_global"
  | "bad_sender_address"
  | "from_ambiguous"
  | "forward_not_allowed";

/** Why a mail, recipient, login or connection was refused: the closed label set of faxbridge_mails_refused_total. */
export type RefusalReason = SmtpRefusalReason | PolicyRefusalReason;

/** Where refusals are counted and logged. */
export interface RefusalSink {
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
}

/** How a refusal is logged: its event, level, message and fields. */
export interface RefusalLog {
  readonly event: LogEvent;
  readonly level?: "info" | "warn" | "error";
  /** The log message; default: the reply's code and text. */
  readonly msg?: string;
  readonly fields?: Record<string, unknown>;
  readonly cause?: unknown;
}

/** Count a refusal once (by reason), log it once, and give the reply to answer with. */
export function refuse(sink: RefusalSink, reason: RefusalReason, s: ReplySpec, log: RefusalLog): SmtpReply {
  const reply = smtpReply(s, log.cause);
  countRefusal(sink, reason, { ...log, msg: log.msg ?? `${reply.responseCode} ${reply.message}` });
  return reply;
}

/** Count a refusal once (by reason) and log it once; for a reply sent elsewhere (the session guard's), or built by refuse(). */
export function countRefusal(sink: RefusalSink, reason: RefusalReason, log: RefusalLog & { readonly msg: string }): void {
  sink.metrics?.mailsRefused.inc({ reason });
  sink.logger[log.level ?? "info"]({ event: log.event, ...log.fields }, log.msg);
}
