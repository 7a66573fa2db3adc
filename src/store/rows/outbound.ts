/**
 * Backend-neutral pieces of the outbound_jobs table shared by the SQLite
 * (../sqlite/outbound.ts) and PostgreSQL (../pg/outbound.ts) stores: the row
 * as either driver returns it, its mapping to the job model, and which model
 * fields a JobPatch writes to which column. Where the backends differ the row
 * keeps the wider type (SQLite rows from before mail_key, identity and
 * report_to were stored have NULL there; PostgreSQL's columns are NOT NULL).
 */
import type { Logger } from "../../log.js";
import { senderIdentity } from "../../policy/identity.js";
import { InvalidTransitionError, TRANSITIONS, mailKey, type JobPatch, type RescheduleOptions, type JobRecipient, type JobState, type OutboundJob, type RecipientStatus } from "../ports.js";

export interface OutboundRow {
  id: string;
  state: JobState;
  mail_from: string;
  rcpt_to: string;
  rcpt_key: string;
  message_id: string | null;
  mail_key: string | null;
  size: number;
  received_at: number;
  client_ip: string;
  client_user: string | null;
  identity: string | null;
  report_to: string | null;
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
  lease_owner: string | null;
  rc_message_id: string | null;
  rc_extension_id: string | null;
  submit_started_at: number | null;
  fax_request: string | null;
  status: string | null;
  error_code: string | null;
  error_text: string | null;
  last_error: string | null;
  notified_at: number | null;
  updated_at: number;
}

export function outboundFromRow(r: OutboundRow): OutboundJob {
  return {
    id: r.id,
    state: r.state,
    mailFrom: r.mail_from,
    rcptTo: JSON.parse(r.rcpt_to) as JobRecipient[],
    messageId: r.message_id,
    mailKey: r.mail_key ?? mailKey(r.id),
    size: r.size,
    receivedAt: r.received_at,
    client: r.client_user === null ? { ip: r.client_ip } : { ip: r.client_ip, user: r.client_user },
    // Rows from before identities were stored: the identity their SMTP user or envelope sender gives.
    identity: r.identity ?? senderIdentity({ user: r.client_user ?? undefined, mailFrom: r.mail_from }).key,
    reportTo: r.report_to ?? r.mail_from,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    leaseUntil: r.lease_until,
    leaseOwner: r.lease_until === null ? null : r.lease_owner,
    rcMessageId: r.rc_message_id,
    rcExtensionId: r.rc_extension_id ?? null,
    submitStartedAt: r.submit_started_at,
    faxRequest: r.fax_request === null ? null : (JSON.parse(r.fax_request) as unknown),
    status: r.status === null ? null : (JSON.parse(r.status) as RecipientStatus[]),
    errorCode: r.error_code,
    errorText: r.error_text,
    lastError: r.last_error,
    notifiedAt: r.notified_at,
    updatedAt: r.updated_at,
  };
}

export type JobPatchColumn = Exclude<keyof JobPatch, "leaseMs" | "leaseUntil">;
export const JOB_PATCH_COLUMNS: { readonly [K in JobPatchColumn]-?: { column: string; json: boolean } } = {
  messageId: { column: "message_id", json: false },
  rcMessageId: { column: "rc_message_id", json: false },
  rcExtensionId: { column: "rc_extension_id", json: false },
  submitStartedAt: { column: "submit_started_at", json: false },
  faxRequest: { column: "fax_request", json: true },
  status: { column: "status", json: true },
  errorCode: { column: "error_code", json: false },
  errorText: { column: "error_text", json: false },
  lastError: { column: "last_error", json: false },
  notifiedAt: { column: "notified_at", json: false },
  nextAttemptAt: { column: "next_attempt_at", json: false },
  attempts: { column: "attempts", json: false },
};

/** The columns a patch writes (its lease fields apart), each with its value as stored: JSON columns serialised. */
export function patchAssignments(patch: JobPatch): { column: string; value: string | number | null }[] {
  const out: { column: string; value: string | number | null }[] = [];
  for (const key of Object.keys(patch) as (keyof JobPatch)[]) {
    if (key === "leaseMs" || key === "leaseUntil") continue;
    const spec = (JOB_PATCH_COLUMNS as { readonly [key: string]: { column: string; json: boolean } | undefined })[key];
    const value = patch[key];
    if (value === undefined) continue;
    if (spec === undefined) throw new Error(`unknown job field ${key}`);
    out.push({ column: spec.column, value: spec.json ? (value === null ? null : JSON.stringify(value)) : (value as string | number | null) });
  }
  return out;
}

/** The state a reschedule leaves the job in (its own unless `to` says otherwise); throws InvalidTransitionError for a move the state machine does not allow. */
export function rescheduleTarget(opts: RescheduleOptions): JobState {
  const to = opts.to ?? opts.from;
  if (to !== opts.from && !TRANSITIONS[opts.from].includes(to)) throw new InvalidTransitionError(opts.from, to);
  return to;
}

/** The `job.<state>` line every backend logs for a transition. */
export function logTransition(log: Logger, job: OutboundJob, from: JobState, to: JobState): void {
  log.info(
    { event: `job.${to}`, queueId: job.id, from, ...(job.rcMessageId !== null && { rcMessageId: job.rcMessageId }), ...(job.errorCode !== null && to === "failed" && { errorCode: job.errorCode }) },
    `job ${to}`,
  );
}

/** The `job.deferred` line every backend logs for a reschedule. */
export function logDeferred(log: Logger, job: OutboundJob, opts: RescheduleOptions): void {
  log.info(
    { event: "job.deferred", queueId: job.id, state: job.state, attempts: job.attempts, nextAttemptAt: new Date(opts.nextAttemptAt).toISOString(), error: opts.error },
    "job deferred",
  );
}
