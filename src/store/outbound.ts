/**
 * The outbound (email → fax) job store.
 *
 * A job is one accepted SMTP message. Its life is a persisted state machine;
 * every transition is one transaction that compares-and-sets the current
 * state, so two workers can never both move a job, and a transition from the
 * wrong state fails loudly (StateConflictError):
 *
 *     received ──► parsed ──► submitting ──► submitted ──► final ──► notified
 *        │           │  ▲         │              │
 *        │           │  └─────────┘ (attempt failed before RingCentral took it: back to parsed, rescheduled)
 *        ├───────────┴────────────┴──────────────┴──► failed ──► notified
 *        └───────────┴──────────────────────────┴──► cancelled
 *
 * - received:   spooled and fsynced, not yet parsed (the SMTP 250 was sent after this row committed).
 * - parsed:     the fax request (recipients, options, documents) is in `faxRequest`.
 * - submitting: a submission attempt started at `submitStartedAt`. A job found here after a
 *               crash may or may not have reached RingCentral: reconcile, never blindly resubmit
 *               (see findInterruptedSubmissions).
 * - submitted:  RingCentral accepted it; `rcMessageId` is its message id. Status polling patches `status`.
 *               Back to parsed when busy / no-answer recipients are redialled (fax.redial).
 * - final:      every recipient has a final status (Sent/Delivered/SendingFailed/DeliveryFailed).
 * - failed:     permanent failure before/without a fax (`errorCode` + `errorText`); the sender still gets a notice.
 * - notified:   the sender report was sent (`notifiedAt`). Terminal.
 * - cancelled:  withdrawn by an operator. Terminal.
 *
 * A worker claims due jobs (`nextAttemptAt <= now`) with an expiring lease
 * (`leaseUntil`, timed by the store's clock) held by the claiming store's
 * owner; a transition or a reschedule releases the lease. A store whose lease
 * on a job was taken over by another owner cannot move it any more
 * (LeaseLostError). Every state change is logged with a stable event name
 * `job.<state>`.
 */
// The outbound job model shared by every backend; the store interface is in ./ports.ts.

export const JOB_STATES = ["received", "parsed", "submitting", "submitted", "final", "notified", "failed", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];

/** Which states each state may move to. A state listed as its own successor can be patched in place. */
export const TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  received: ["parsed", "failed", "cancelled"],
  parsed: ["parsed", "submitting", "failed", "cancelled"],
  submitting: ["submitted", "parsed", "failed"],
  // submitted → parsed: a redial of busy / no-answer recipients (src/outbound/redial.ts).
  submitted: ["submitted", "final", "failed", "cancelled", "parsed"],
  final: ["notified"],
  failed: ["notified", "parsed"],
  notified: [],
  cancelled: [],
};

import type { JobRecipient } from "../fax/model.js";
import type { RecipientStatus } from "../fax/status.js";
export type { JobRecipient, RecipientOptions } from "../fax/model.js";

export interface JobClient {
  readonly ip: string;
  /** SMTP AUTH user, when the client authenticated. */
  readonly user?: string;
}

export type { FinalFaxStatus, RecipientStatus } from "../fax/status.js";

/** What a new job needs; the rest is filled in as the job moves. */
export interface NewJob {
  readonly id: string;
  readonly mailFrom: string;
  readonly rcptTo: readonly JobRecipient[];
  /** The raw message's key in the document store (e.g. "msg/<id>.eml"; never an absolute path). */
  readonly mailKey: string;
  readonly size: number;
  readonly client: JobClient;
  /** The sender identity decided at SMTP time (src/policy/identity.ts); defaults to the one the SMTP user or envelope sender gives. */
  readonly identity?: string;
  /** The one address reports and notices go to; defaults to the envelope sender. */
  readonly reportTo?: string;
  /** Defaults to now. */
  readonly receivedAt?: number;
}

export interface OutboundJob {
  readonly id: string;
  readonly state: JobState;
  /** Envelope sender; "" for the null sender <>. */
  readonly mailFrom: string;
  readonly rcptTo: readonly JobRecipient[];
  readonly messageId: string | null;
  /** The raw message's key in the document store (src/store/ports.ts DocumentStore). */
  readonly mailKey: string;
  readonly size: number;
  /** Epoch milliseconds, as are all times here. */
  readonly receivedAt: number;
  readonly client: JobClient;
  /** Who sent it (src/policy/identity.ts): keys quotas, forwarding rights and duplicate suppression. */
  readonly identity: string;
  /** The one address reports and notices go to ("" = none: the null sender). */
  readonly reportTo: string;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly leaseUntil: number | null;
  /** The store owner holding the lease (null when not leased). */
  readonly leaseOwner?: string | null;
  readonly rcMessageId: string | null;
  /** The RingCentral extension (pool member) that sent the fax; null: the first (or only) one. */
  readonly rcExtensionId: string | null;
  readonly submitStartedAt: number | null;
  /** JSON-serialisable fax request (recipients, options, documents), set when parsed. */
  readonly faxRequest: unknown;
  /** Per-recipient status, set while submitted and when final. */
  readonly status: readonly RecipientStatus[] | null;
  readonly errorCode: string | null;
  readonly errorText: string | null;
  /** The last transient error, kept across reschedules for operators. */
  readonly lastError: string | null;
  readonly notifiedAt: number | null;
  readonly updatedAt: number;
}

/** Fields a transition may set. `null` clears a field. */
export interface JobPatch {
  messageId?: string | null;
  rcMessageId?: string | null;
  rcExtensionId?: string | null;
  submitStartedAt?: number | null;
  faxRequest?: unknown;
  status?: readonly RecipientStatus[] | null;
  errorCode?: string | null;
  errorText?: string | null;
  /** The last transient error; cleared (null) once a later attempt succeeds. */
  lastError?: string | null;
  notifiedAt?: number | null;
  nextAttemptAt?: number;
  /** Keep (or take) a lease of this many ms from the store's clock through the transition; by default a transition releases it. */
  leaseMs?: number;
  /** Deprecated form of leaseMs: an absolute lease end (epoch ms); null releases. Prefer leaseMs (the store's clock). */
  leaseUntil?: number | null;
  /** Reset the attempt count (an operator's retry starts the retry schedule afresh). */
  attempts?: number;
}

export interface ClaimOptions {
  readonly limit: number;
  /** The lease runs this long from the store's clock. */
  readonly leaseMs: number;
  /**
   * Claim as of this time: what is due, and whose lease has expired (tests, a
   * deliberately shifted clock). Default, and what production callers should
   * use: the store's clock. The new lease always runs from the store's clock.
   */
  readonly now?: number;
}

/** What transition() may additionally check in the same transaction. */
export interface TransitionOptions {
  /**
   * Refuse the transition with DuplicateJobError when a live job matching this
   * query exists (check and transition in one transaction, so two concurrent
   * copies of one mail cannot both pass).
   */
  readonly unlessDuplicate?: DuplicateQuery;
}

export interface RescheduleOptions {
  /** The state the job must be in (compare-and-set). */
  readonly from: JobState;
  /** Move to this state at the same time (e.g. submitting → parsed after a failed attempt). */
  readonly to?: JobState;
  readonly nextAttemptAt: number;
  readonly error: string;
}

export interface DuplicateQuery {
  readonly messageId: string;
  /** Only the same sender's mails are duplicates: whoever learns a Message-ID cannot cancel someone else's fax. */
  readonly identity: string;
  readonly recipients: readonly string[];
  /** Only jobs received at or after this time count. */
  readonly since: number;
  /** The job asking, which is not its own duplicate. */
  readonly excludeId?: string;
}

export interface ListOptions {
  readonly state?: JobState | readonly JobState[];
  readonly limit?: number;
  /** Keyset paging: ids sort by creation time; pass the last id of the previous page. */
  readonly after?: string;
  /** Newest first (the web console); page with `before` = the last id of the previous page. */
  readonly newestFirst?: boolean;
  readonly before?: string;
}

export class StateConflictError extends Error {
  readonly jobId: string;
  readonly expected: JobState;
  /** The state found, or undefined when the job does not exist. */
  readonly actual: JobState | undefined;
  constructor(jobId: string, expected: JobState, actual: JobState | undefined) {
    super(actual === undefined ? `job ${jobId} does not exist` : `job ${jobId} is ${actual}, expected ${expected}`);
    this.name = "StateConflictError";
    this.jobId = jobId;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * A store tried to move a job whose lease it held, but another owner has
 * taken the job over since (its lease expired): the work must stop. A
 * StateConflictError, so callers that give up on a conflict give up here too.
 */
export class LeaseLostError extends StateConflictError {
  readonly owner: string;
  readonly holder: string | null;
  constructor(jobId: string, state: JobState, owner: string, holder: string | null) {
    super(jobId, state, state);
    this.message = `job ${jobId}: the lease of ${owner} was lost${holder === null ? "" : ` (now held by ${holder})`}; not moved`;
    this.name = "LeaseLostError";
    this.owner = owner;
    this.holder = holder;
  }
}

/** transition() with `unlessDuplicate` found a live job of the same mail. */
export class DuplicateJobError extends Error {
  readonly jobId: string;
  readonly duplicate: OutboundJob;
  constructor(jobId: string, duplicate: OutboundJob) {
    super(`job ${jobId} is a duplicate of ${duplicate.id}`);
    this.name = "DuplicateJobError";
    this.jobId = jobId;
    this.duplicate = duplicate;
  }
}

export class InvalidTransitionError extends Error {
  constructor(from: JobState, to: JobState) {
    super(`a job cannot move from ${from} to ${to}`);
    this.name = "InvalidTransitionError";
  }
}

/** The recipient set as one comparable string: sorted, unique E.164 numbers. */
export function recipientKey(e164s: readonly string[]): string {
  return [...new Set(e164s)].sort().join(",");
}
