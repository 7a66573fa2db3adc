import type { SMTPServerSession } from "smtp-server";
import type { DNSResolver } from "mailauth";
import { policyProblems } from "../config/resolve.js";
import type { Config } from "../config/schema.js";
import type { SmtpReply} from "../errors.js";
import { ConfigError, errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { createCidrMatcher, type AddressMatcher } from "../net/cidr.js";
import { REPLIES, refuse as refuseReply, type PolicyRefusalReason, type ReplySpec } from "../replies.js";
import type { OutboundStore, QuotaStore } from "../store/ports.js";
import { AuthLockout, ConnectionRate } from "./abuse.js";
import { createDestinationPolicy, type DestinationPolicy } from "./destination.js";
import { fromAddress, readHeaders, type Header } from "./headers.js";
import { identityLabel, isSingleMailbox, senderIdentity, type SenderIdentity } from "./identity.js";
import { QuotaTracker, type QuotaReservation, type QuotaVerdict } from "./quota.js";
import type { IntakeContext, IntakePolicy, IntakeSender } from "../intake/accept.js";
import { SenderRules, type CompiledRule } from "./senders.js";
import { createSenderVerifier, type SenderVerifier } from "./verify.js";

/**
 * The SMTP security policy: who may fax, to where, how much, and abuse
 * limits. The SMTP server calls it from its hooks; every refusal is an
 * SmtpReply, logged as `policy.refused` and counted in
 * faxbridge_mails_refused_total with one of the reasons below.
 *
 *   connect    open connections and connection rate per client IP 421
 *   AUTH       lockout after repeated failures, delayed failures  454 / 535
 *   MAIL FROM  not exactly one valid mailbox                         553 5.1.7
 *              a bound SMTP user's envelope sender                550
 *   RCPT       fax domain sender rule (auth, allowlist),          530 / 550
 *              destination rules, hourly quotas                   550 / 452
 *   end of DATA (after the spool write, before the job is recorded)
 *              From address rules, sender verification            550 / 451
 *              (DMARC, SPF+DKIM, trusted Authentication-Results),
 *              From read differently by the verifier, DMARC
 *              for another domain                                 550 5.7.1
 *              forwarding a fax that is not the sender's          550 5.7.1
 *              quota reservation                                  452
 *
 * The sender identity (./identity.ts) is decided here once per mail and
 * handed back with the reservation; the server stores it on the job row.
 */

export type { PolicyRefusalReason } from "../replies.js";

export interface SmtpPolicy extends IntakePolicy {
  /** At connect, with how many connections this client IP has open including this one; a reply refuses the connection. */
  checkConnect(session: SMTPServerSession, openFromIp?: number): SmtpReply | undefined;
  /**
   * Before a password is checked; a reply refuses AUTH (lockout). Otherwise
   * the attempt is counted as a failure right away (a successful login then
   * clears the IP's failures unless it is locked out), so parallel attempts
   * cannot all start before the first failure is recorded.
   */
  checkAuth(session: SMTPServerSession): SmtpReply | undefined;
  /** After a failed password check: milliseconds to hold the 535. */
  authFailed(session: SMTPServerSession): number;
  authSucceeded(session: SMTPServerSession): void;
  /** At MAIL FROM (after the server's own AUTH rule). */
  checkMailFrom(session: SMTPServerSession, mailFrom: string): SmtpReply | undefined;
  /** At RCPT, for a parsed fax number about to be accepted; on success it is counted for the transaction. */
  checkRecipient(session: SMTPServerSession, rcpt: { readonly domain: string; readonly e164: string }): Promise<SmtpReply | undefined>;
  /**
   * After the message is spooled, before its job is recorded: the From
   * rules, sender verification and the quota. Rejects with an SmtpReply;
   * on success the quota is taken: call `release()` if the job is not recorded.
   */
  beforeCommit(session: SMTPServerSession, message: { readonly path: string }): Promise<CommitDecision>;
}

/** What the policy decided for an accepted mail: who sent it, where reports go, and the quota taken. */
export interface CommitDecision extends QuotaReservation {
  readonly identity: SenderIdentity;
  /** The one address reports and notices go to: the verified From when there is one, else the envelope sender. */
  readonly reportTo: string;
}

export interface SmtpPolicyDeps {
  readonly config: Pick<Config, "policy" | "smtp" | "fax">;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Accepted jobs of the last hour are counted against the quotas once, when the quota ledger is new. */
  readonly store?: Pick<OutboundStore, "receivedSince" | "findSentBy">;
  /** The quota ledger shared by every instance on the database (Stores.quota). */
  readonly quota: QuotaStore;
  /** Forwarding rights for received faxes: was RingCentral message `rcMessageId` mailed to `address` by inbound routing? */
  readonly receivedBy?: (rcMessageId: string, address: string) => Promise<boolean>;
  /** DNS for sender verification (tests answer from a table); default: the system resolver. */
  readonly resolver?: DNSResolver;
  /** Clock, for tests. */
  readonly now?: () => number;
}

interface TxState {
  readonly mailFrom: string;
  readonly user: string | undefined;
  /** Quota keys before the From is read: the identity so far, and the client IP when it is unauthenticated and not a trusted relay. */
  readonly keys: readonly [string, ...string[]];
  /** Accepted fax numbers → their fax domain. */
  readonly recipients: Map<string, string>;
}

function cidrs(list: readonly string[], path: string): AddressMatcher {
  try {
    return createCidrMatcher(list);
  } catch (err) {
    throw new ConfigError([{ path, source: "config", message: errorMessage(err) }]);
  }
}

function clock(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`;
}

function minutesUntil(ms: number, now: number): string {
  const m = Math.max(1, Math.ceil((ms - now) / 60_000));
  return `${m} minute${m === 1 ? "" : "s"}`;
}

export async function createSmtpPolicy(deps: SmtpPolicyDeps): Promise<SmtpPolicy> {
  const { config } = deps;
  const p = config.policy;
  const now = deps.now ?? Date.now;
  const log = deps.logger.child({ component: "policy" });
  const rules = new SenderRules(p);
  // loadConfig checks the same (src/config/resolve.ts); a config built in code gets the same answer here.
  const problems = policyProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  const trustedRelay = cidrs(p.trustedRelays, "policy.trustedRelays");
  const exempt = cidrs(p.abuse.exempt, "policy.abuse.exempt");
  const destinations: DestinationPolicy = createDestinationPolicy(p.destinations, config.fax.defaultCountry);
  const connections = new ConnectionRate(p.abuse.connectionsPerMinute, { now });
  const auth = new AuthLockout({
    maxFailures: p.abuse.authMaxFailures,
    windowMs: p.abuse.authFailureWindowSeconds * 1000,
    lockoutMs: p.abuse.authLockoutSeconds * 1000,
    baseDelayMs: p.abuse.authFailureDelayMs,
    now,
  });
  const quotas = new QuotaTracker(deps.quota, "fax", p.quotas, { now });
  // Unauthenticated clients outside the trusted relays: one more quota per client IP, whatever senders it names.
  const clientQuotas = new QuotaTracker(deps.quota, "client", { perSenderPerHour: p.quotas.perClientIpPerHour, globalPerHour: 0 }, { now });
  const clientKey = (user: string | undefined, ip: string): string[] => (user === undefined && !trustedRelay(ip) ? [`ip:${ip}`] : []);
  if (deps.store !== undefined) {
    const loaded = await quotas.load(deps.store, (job) => ({ keys: [job.identity], n: job.rcptTo.length }));
    await clientQuotas.load(deps.store, (job) => ({ keys: clientKey(job.client.user, job.client.ip), n: job.rcptTo.length }));
    if (loaded > 0) log.info({ event: "policy.quotas_loaded", jobs: loaded }, "hourly quotas rebuilt from the jobs of the last hour");
  }
  const verify: SenderVerifier = createSenderVerifier({
    authservIds: p.authservIds,
    mta: config.smtp.hostname,
    timeoutMs: p.verifyTimeoutMs,
    ...(deps.resolver !== undefined && { resolver: deps.resolver }),
  });
  const transactions = new WeakMap<object, TxState>();
  /** The failure delay of each session's AUTH attempt in flight (counted when it started). */
  const authDelays = new WeakMap<object, number>();

  function refuse(session: SMTPServerSession, reason: PolicyRefusalReason, reply: ReplySpec, extra: Record<string, unknown> = {}, cause?: unknown): SmtpReply {
    return refuseIntake({ queueId: "", sessionId: session.id, client: session.remoteAddress }, reason, reply, extra, cause);
  }

  function refuseIntake(context: IntakeContext, reason: PolicyRefusalReason, reply: ReplySpec, extra: Record<string, unknown> = {}, cause?: unknown): SmtpReply {
    const fields = {
      reason,
      code: reply.code,
      ...(context.sessionId !== undefined && { sessionId: context.sessionId }),
      ...(context.queueId !== "" && { queueId: context.queueId }),
      client: context.client,
      ...extra,
    };
    return refuseReply({ logger: log, metrics: deps.metrics }, reason, reply, { event: "policy.refused", fields, cause });
  }

  function userOf(session: SMTPServerSession): string | undefined {
    const user: unknown = session.user;
    return typeof user === "string" ? user : undefined;
  }

  function txOf(session: SMTPServerSession): TxState {
    let tx = transactions.get(session.envelope);
    if (tx === undefined) {
      const mailFrom = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address;
      const user = userOf(session);
      const identity = senderIdentity({ user, mailFrom }).key;
      tx = { mailFrom, user, keys: [identity, ...clientKey(user, session.remoteAddress)], recipients: new Map() };
      transactions.set(session.envelope, tx);
    }
    return tx;
  }

  function quotaReply(keys: readonly string[], v: Exclude<QuotaVerdict, { ok: true }>): ReplySpec {
    const t = now();
    const when = `try again in ${minutesUntil(v.freeAt, t)} (after ${clock(v.freeAt)})`;
    if (v.scope === "sender") return REPLIES.quotaSender(v.limit, identityLabel(keys[0] ?? ""), when);
    if (v.scope === "client") return REPLIES.quotaClient(v.limit, keys[1]?.slice(3) ?? "this client", when);
    return REPLIES.quotaGlobal(v.limit, when);
  }

  function quotaRefusal(session: SMTPServerSession, keys: readonly string[], v: Exclude<QuotaVerdict, { ok: true }>): SmtpReply {
    const reason = v.scope === "sender" ? "quota_sender" : v.scope === "client" ? "quota_client" : "quota_global";
    return refuse(session, reason, quotaReply(keys, v), { sender: identityLabel(keys[0] ?? "") });
  }

  /** The quota keys of an intake sender: its identity, and its client IP when unauthenticated outside the trusted relays. */
  function intakeKeys(sender: IntakeSender): [string, ...string[]] {
    return [sender.key, ...clientKey(sender.user, sender.ip)];
  }

  function intakeQuotaRefusal(context: IntakeContext, keys: readonly string[], v: Exclude<QuotaVerdict, { ok: true }>): SmtpReply {
    const reason = v.scope === "sender" ? "quota_sender" : v.scope === "client" ? "quota_client" : "quota_global";
    return refuseIntake(context, reason, quotaReply(keys, v), { sender: identityLabel(keys[0] ?? "") });
  }

  function shown(address: string): string {
    return address === "" ? "<>" : address;
  }

  /**
   * Forwarding rights (X-Fax-Forward-Of): only a fax this gateway sent for the
   * same sender identity, or a received fax inbound routing mailed to the
   * sender's own mailbox. Decided from our own stores, never by asking
   * RingCentral about a guessable id.
   */
  async function checkForward(session: SMTPServerSession, headers: readonly Header[], identity: SenderIdentity, reportTo: string): Promise<void> {
    const id = headers.length === 1 ? (headers[0] as Header).value.trim() : "";
    const deny = (why: string): SmtpReply =>
      refuse(session, "forward_not_allowed", REPLIES.forwardNotAllowed(why), { forwardOf: id.slice(0, 40), sender: identityLabel(identity.key) });
    if (!/^\d{1,20}$/.test(id)) throw deny("X-Fax-Forward-Of must appear once and name the numeric id of a fax you sent or received");
    const sent = await deps.store?.findSentBy(id, identity.key);
    if (sent !== undefined) return;
    const mailbox = identity.source === "user" ? reportTo : identity.key;
    if (mailbox !== "" && mailbox !== "<>" && deps.receivedBy !== undefined && (await deps.receivedBy(id, mailbox))) return;
    throw deny(`you may forward only faxes this gateway sent for you or received faxes mailed to you; fax ${id} is neither`);
  }

  return {
    checkConnect(session, openFromIp = 1) {
      if (exempt(session.remoteAddress)) return undefined;
      const max = p.abuse.maxConnectionsPerIp;
      if (max > 0 && openFromIp > max) {
        return refuse(
          session,
          "connections_per_ip",
          REPLIES.connectionsPerIp(session.remoteAddress, max),
        );
      }
      if (connections.admit(session.remoteAddress)) return undefined;
      return refuse(session, "connection_rate", REPLIES.connectionRate(session.remoteAddress));
    },

    checkAuth(session) {
      const until = auth.lockedUntil(session.remoteAddress);
      if (until !== undefined) {
        return refuse(session, "auth_locked", REPLIES.authLocked(session.remoteAddress, clock(until)));
      }
      const r = auth.failed(session.remoteAddress);
      if (r.locked) {
        log.warn({ event: "policy.auth_lockout", client: session.remoteAddress, failures: r.failures, lockoutSeconds: p.abuse.authLockoutSeconds }, "AUTH locked out for this client");
      }
      authDelays.set(session, r.delayMs);
      return undefined;
    },

    authFailed(session) {
      return authDelays.get(session) ?? 0;
    },

    authSucceeded(session) {
      auth.succeeded(session.remoteAddress);
    },

    checkMailFrom(session, mailFrom) {
      // Reports go to the envelope sender: a list or anything but one mailbox would make one mail several reports.
      if (mailFrom !== "" && !isSingleMailbox(mailFrom)) {
        return refuse(session, "bad_sender_address", REPLIES.badSender(), {
          from: mailFrom.slice(0, 300),
        });
      }
      const user = userOf(session);
      if (user === undefined) return undefined;
      const binding = rules.userBinding(user);
      if (binding === undefined || binding(mailFrom)) return undefined;
      return refuse(session, "user_sender_mismatch", REPLIES.userSenderMismatch(user, shown(mailFrom)), { user, from: mailFrom });
    },

    async checkRecipient(session, rcpt) {
      const tx = txOf(session);
      if (tx.recipients.has(rcpt.e164)) return undefined;
      const rule = rules.forDomain(rcpt.domain);
      if (rule.requireAuth && tx.user === undefined) {
        return refuse(session, "auth_required_for_domain", REPLIES.authRequiredForDomain(rcpt.domain), { domain: rcpt.domain });
      }
      if (rule.restricted && !rule.matches(tx.mailFrom)) {
        return refuse(session, "sender_not_allowed", REPLIES.senderNotAllowed(shown(tx.mailFrom), rcpt.domain), {
          from: tx.mailFrom,
          domain: rcpt.domain,
        });
      }
      const dest = destinations(rcpt.e164);
      if (!dest.ok) return refuse(session, dest.reason, REPLIES.destinationRefused(dest.message), { to: rcpt.e164 });
      const q = await quotas.check(tx.keys.slice(0, 1), tx.recipients.size);
      if (!q.ok) return quotaRefusal(session, tx.keys, q);
      const c = await clientQuotas.check(tx.keys.slice(1), tx.recipients.size);
      if (!c.ok) return quotaRefusal(session, tx.keys, c);
      tx.recipients.set(rcpt.e164, rcpt.domain);
      return undefined;
    },

    async beforeCommit(session, message) {
      const tx = txOf(session);
      const domainRules = new Map<string, CompiledRule>();
      for (const domain of new Set(tx.recipients.values())) domainRules.set(domain, rules.forDomain(domain));
      const restricted = [...domainRules].filter(([, r]) => r.restricted);
      const binding = tx.user === undefined ? undefined : rules.userBinding(tx.user);
      const headers: Header[] = await readHeaders(message.path);
      let verifiedFrom: string | undefined;

      if (restricted.length > 0 || binding !== undefined) {
        const from = fromAddress(headers);
        if (!from.ok) {
          const reason = binding !== undefined ? "user_sender_mismatch" : "sender_not_allowed";
          throw refuse(session, reason, REPLIES.fromRules(from.reason));
        }
        if (binding !== undefined && tx.user !== undefined && !binding(from.address)) {
          throw refuse(session, "user_sender_mismatch", REPLIES.userSenderMismatch(tx.user, from.address), { user: tx.user, from: from.address });
        }
        for (const [domain, rule] of restricted) {
          if (!rule.matches(from.address)) {
            throw refuse(session, "sender_not_allowed", REPLIES.senderNotAllowed(from.address, domain), { from: from.address, domain });
          }
        }
        // SMTP AUTH proves the sender; only unauthenticated mail on an allowlist needs verifying.
        if (tx.user === undefined) {
          const modes = new Set(restricted.map(([, r]) => r.verifySender));
          modes.delete("none");
          for (const mode of modes) {
            if (mode === "none") continue;
            let outcome;
            try {
              outcome = await verify({
                mode,
                path: message.path,
                headers,
                from: from.address,
                mailFrom: tx.mailFrom,
                ip: session.remoteAddress,
                helo: session.hostNameAppearsAs,
                trustedRelay: trustedRelay(session.remoteAddress),
              });
            } catch (err) {
              log.error({ event: "policy.verify_error", sessionId: session.id, err }, "sender verification failed with an error");
              throw refuse(session, "verify_unavailable", REPLIES.verifyUnavailable(), {}, err);
            }
            if (!outcome.ok) {
              throw refuse(
                session,
                outcome.ambiguous === true ? "from_ambiguous" : outcome.temporary ? "verify_unavailable" : "sender_unverified",
                REPLIES.senderUnverified(outcome.message, outcome.temporary, outcome.ambiguous === true),
                { from: from.address, mode },
              );
            }
            log.debug({ event: "policy.sender_verified", sessionId: session.id, from: from.address, method: outcome.method }, "sender verified");
          }
          if (modes.size > 0) verifiedFrom = from.address;
        }
      }

      const identity = senderIdentity({ user: tx.user, verifiedFrom, mailFrom: tx.mailFrom });
      const reportTo = verifiedFrom ?? tx.mailFrom;
      const forwardOf = headers.filter((h) => h.name === "x-fax-forward-of");
      if (forwardOf.length > 0) await checkForward(session, forwardOf, identity, reportTo);

      const client = clientKey(tx.user, session.remoteAddress);
      const keys = [identity.key, ...client];
      const reserved = await quotas.reserve([identity.key], tx.recipients.size);
      if (!reserved.ok) throw quotaRefusal(session, keys, reserved);
      const byClient = await clientQuotas.reserve(client, tx.recipients.size);
      if (!byClient.ok) {
        await reserved.reservation?.release();
        throw quotaRefusal(session, keys, byClient);
      }
      const release = async (): Promise<void> => {
        await reserved.reservation?.release();
        await byClient.reservation?.release();
      };
      return { release, identity, reportTo };
    },

    // The intake (src/intake/accept.ts) for paths without an SMTP session (faxbridge send), and its early check for SMTP too.
    async checkRecipients(sender: IntakeSender, recipients, context) {
      for (const r of recipients) {
        const dest = destinations(r.e164);
        if (!dest.ok) return refuseIntake(context, dest.reason, REPLIES.destinationRefused(dest.message), { to: r.e164 });
      }
      const keys = intakeKeys(sender);
      const q = await quotas.check(keys.slice(0, 1), 0, recipients.length);
      if (!q.ok) return intakeQuotaRefusal(context, keys, q);
      const c = await clientQuotas.check(keys.slice(1), 0, recipients.length);
      if (!c.ok) return intakeQuotaRefusal(context, keys, c);
      return undefined;
    },

    async reserve(sender, n, context) {
      const keys = intakeKeys(sender);
      const reserved = await quotas.reserve(keys.slice(0, 1), n);
      if (!reserved.ok) throw intakeQuotaRefusal(context, keys, reserved);
      const byClient = await clientQuotas.reserve(keys.slice(1), n);
      if (!byClient.ok) {
        await reserved.reservation?.release();
        throw intakeQuotaRefusal(context, keys, byClient);
      }
      return {
        release: async () => {
          await reserved.reservation?.release();
          await byClient.reservation?.release();
        },
      };
    },
  };
}
