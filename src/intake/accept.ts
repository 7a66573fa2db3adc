import { statfs } from "node:fs/promises";
import { NamedError, SmtpReply } from "../errors.js";
import { REPLIES, smtpReply } from "../replies.js";
import type { Logger } from "../log.js";
import type { QuotaReservation } from "../policy/quota.js";
import type { MessageStream, Spool, SpooledMessage } from "../spool/spool.js";
import { mailKey, type JobRecipient, type NewJob, type OutboundStore } from "../store/ports.js";

/**
 * The one way a fax job comes into being, whoever asks: SMTP (at the end of
 * DATA) and `faxbridge send` both call `accept`. In order:
 *
 *   0. the disk floor (smtp.minFreeBytes) of the data directory
 *   1. destination rules and quotas for the recipients (before any byte is stored)
 *   2. the message streamed into the spool (fsynced)
 *   3. the caller's checks on the stored message (SMTP: From rules, sender
 *      verification, and there the quota is taken for the identity they prove)
 *   4. otherwise the quota taken for the recipients (one atomic check-and-count in the store)
 *   5. the `received` job row committed
 *
 * Nothing is recorded unless every step passes; a refused or failed intake
 * leaves no spool file and no quota use behind. Refusals are SmtpReply (code,
 * enhanced status, reason in words), which the SMTP server sends as they
 * are and the CLI prints; a spool failure is the SpoolError itself, so each
 * caller can word it for its own user.
 */

/** Who is sending, as the caller's path decided it. */
export interface IntakeSender {
  /** The sender identity (src/policy/identity.ts): what quotas, forwarding rights and duplicate suppression are keyed on. */
  readonly key: string;
  /** The envelope sender: where reports go ("" = none). */
  readonly mailFrom: string;
  /** The authenticated SMTP user, or "cli:<login>" for `faxbridge send`. */
  readonly user?: string | undefined;
  /** The client's IP address, "local" for the CLI. */
  readonly ip: string;
}

/** The policy steps of an intake (implemented by createSmtpPolicy). */
export interface IntakePolicy {
  /** Destination rules and a quota check for these recipients; a reply refuses the whole intake. */
  checkRecipients(sender: IntakeSender, recipients: readonly JobRecipient[], context: IntakeContext): Promise<SmtpReply | undefined>;
  /** Check and count the quota for `recipients` fax recipients at once (atomic across instances); rejects with an SmtpReply when over. */
  reserve(sender: IntakeSender, recipients: number, context: IntakeContext): Promise<QuotaReservation>;
}

/** Where an intake comes from, for logs. */
export interface IntakeContext {
  readonly queueId: string;
  /** The SMTP session id, when there is one. */
  readonly sessionId?: string | undefined;
  readonly client: string;
}

export interface IntakeDeps {
  readonly spool: Spool;
  readonly store: Pick<OutboundStore, "insertReceived">;
  /** Without a policy only the size limit applies (tests of the spool and store). */
  readonly policy?: IntakePolicy | undefined;
  readonly maxMessageBytes: number;
  /** New intakes are refused (452 4.3.1) while `dir` has less than `minFreeBytes` free; 0 = no floor. */
  readonly diskFloor?: { readonly dir: string; readonly minFreeBytes: number } | undefined;
  readonly logger: Logger;
  /** Called after a job is durably recorded (wakes the worker); its errors are logged, not thrown. */
  readonly onAccepted?: ((jobId: string) => void) | undefined;
}

export interface IntakeRequest {
  readonly id: string;
  readonly sender: IntakeSender;
  readonly recipients: readonly JobRecipient[];
  readonly message: MessageStream;
  readonly sessionId?: string | undefined;
  /**
   * Checks only the caller's path can make on the stored message, before
   * anything is recorded (SMTP: From rules and sender verification). It may
   * return the sender the message proves (used from then on for the job) and
   * the quota it took for that sender; or throw an SmtpReply to refuse.
   */
  readonly checkMessage?: ((message: SpooledMessage) => Promise<MessageDecision | undefined>) | undefined;
}

/** What the caller's check on the stored message decided. */
export interface MessageDecision {
  readonly sender?: IntakeSender | undefined;
  /** The quota the check took; without it the intake takes it through IntakePolicy.reserve. */
  readonly reservation?: QuotaReservation | undefined;
  /** More of the job row that the check decided (e.g. the sender identity it proved). */
  readonly job?: Partial<Omit<NewJob, "id" | "rcptTo" | "mailKey" | "size">> | undefined;
}

/** A refusal's reason in words, without its enhanced status code (for the CLI). */
export function refusalText(reply: SmtpReply): string {
  return reply.message.replace(/^[245]\.\d{1,3}\.\d{1,3} /, "");
}

/** A step after the spool write failed for a reason other than a refusal (the job was not recorded). */
export class IntakeError extends NamedError {
  readonly step: "check" | "store";
  constructor(step: "check" | "store", message: string, options?: ErrorOptions) {
    super(message, options);
    this.step = step;
  }
}

export interface Accepted {
  readonly id: string;
  readonly size: number;
  readonly sender: IntakeSender;
}

/**
 * The disk floor: a 452 4.3.1 reply while `dir` has less than `minFreeBytes`
 * free (one statfs call), else undefined. SMTP also asks at MAIL FROM, so a
 * client learns it before sending the message.
 */
export async function diskFloorReply(floor: IntakeDeps["diskFloor"]): Promise<SmtpReply | undefined> {
  return (await belowDiskFloor(floor)) ? smtpReply(REPLIES.diskFloor()) : undefined;
}

/** True while `dir` has less than `minFreeBytes` free (one statfs call); false without a floor. */
export async function belowDiskFloor(floor: IntakeDeps["diskFloor"]): Promise<boolean> {
  if (floor === undefined || floor.minFreeBytes <= 0) return false;
  const fs = await statfs(floor.dir, { bigint: true });
  return fs.bavail * fs.bsize < BigInt(floor.minFreeBytes);
}

/** Run one intake; resolves once the job row is committed. Throws SmtpReply (refused), SpoolError or IntakeError. */
export async function accept(deps: IntakeDeps, req: IntakeRequest): Promise<Accepted> {
  const log = deps.logger.child({ queueId: req.id, ...(req.sessionId !== undefined && { sessionId: req.sessionId }) });
  const context: IntakeContext = { queueId: req.id, sessionId: req.sessionId, client: req.sender.ip };
  const full = await diskFloorReply(deps.diskFloor).catch((err: unknown) => {
    throw new IntakeError("check", "cannot read the free space of the data directory", { cause: err });
  });
  if (full !== undefined) {
    log.warn({ event: "intake.disk_floor", minFreeBytes: deps.diskFloor?.minFreeBytes }, "data directory below smtp.minFreeBytes; refused");
    req.message.resume();
    throw full;
  }
  let early: SmtpReply | undefined;
  try {
    early = await deps.policy?.checkRecipients(req.sender, req.recipients, context);
  } catch (err) {
    req.message.resume();
    log.error({ event: "intake.check_failed", err }, "checking the recipients failed");
    throw new IntakeError("check", "checking the recipients failed", { cause: err });
  }
  if (early !== undefined) {
    req.message.resume();
    throw early;
  }

  const spooled = await deps.spool.receive(req.id, req.message, deps.maxMessageBytes);
  const discard = async (): Promise<void> => {
    await deps.spool.remove(req.id).catch((err: unknown) => log.error({ event: "spool.remove_failed", err }, "could not remove the spool file of a refused intake"));
  };

  let sender = req.sender;
  let reservation: QuotaReservation | undefined;
  let decision: MessageDecision | undefined;
  try {
    decision = req.checkMessage === undefined ? undefined : await req.checkMessage(spooled);
    sender = decision?.sender ?? sender;
    reservation = decision?.reservation ?? (await deps.policy?.reserve(sender, req.recipients.length, context));
  } catch (err) {
    await discard();
    if (err instanceof SmtpReply) throw err;
    log.error({ event: "intake.check_failed", err }, "checking the message failed");
    throw new IntakeError("check", "checking the message failed", { cause: err });
  } finally {
    // The local file was for the checks only (a temporary copy on a database backend).
    await spooled.release();
  }

  try {
    await deps.store.insertReceived({
      id: req.id,
      mailFrom: sender.mailFrom,
      rcptTo: req.recipients,
      mailKey: mailKey(req.id),
      size: spooled.size,
      client: sender.user === undefined ? { ip: sender.ip } : { ip: sender.ip, user: sender.user },
      // The identity quotas were counted by is the one stored: it keys reports, forwarding and duplicates.
      identity: sender.key,
      ...decision?.job,
    });
  } catch (err) {
    log.error({ event: "intake.store_failed", err }, "could not record the job");
    await reservation?.release().catch((e: unknown) => log.error({ event: "intake.release_failed", err: e }, "could not give back the quota of an unrecorded job; it counts until the hour is over"));
    await discard();
    throw new IntakeError("store", "could not record the job", { cause: err });
  }

  try {
    deps.onAccepted?.(req.id);
  } catch (err) {
    log.error({ event: "intake.on_accepted_failed", err }, "onAccepted hook threw; the job is queued and the worker will find it");
  }
  return { id: req.id, size: spooled.size, sender };
}
