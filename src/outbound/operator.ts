/**
 * What an operator may do to an outbound job, and the rules for it: retry a
 * deferred or failed job, cancel (withdraw) one that has not gone out, or ask
 * the daemon to delete a scheduled fax RingCentral holds. `faxbridge queue`
 * (src/cli/queue.ts), the web console and the REST API (src/web/) all use these.
 *
 * Every change is a compare-and-set transition in the store, so a job the
 * worker moves at the same moment is refused with "it changed meanwhile",
 * never overwritten. A refusal is an OperatorRefusal with the reason in plain
 * words; callers show it as it is.
 */
import { NamedError } from "../errors.js";
import { StateConflictError, type DocumentStore, type JobState, type OutboundJob, type OutboundStore } from "../store/ports.js";
import { readJobData, type JobData } from "./job-data.js";
import { CANCEL_WAIT_MS } from "../tunables.js";

/** The operation is refused (no such job, or the job's state does not allow it); the message says why and what to do. */
export class OperatorRefusal extends NamedError {
  /** 404: no such job; 409: not in a state that allows it. */
  readonly status: 404 | 409;
  constructor(status: 404 | 409, message: string) {
    super(message);
    this.status = status;
  }
}

export type OperatorStore = Pick<OutboundStore, "get" | "transition" | "reschedule">;

/** What a state means, for an operator. */
export const STATE_WORDS: Readonly<Record<JobState, string>> = {
  received: "accepted and stored, waiting to be read",
  parsed: "read; waiting to be sent to RingCentral",
  submitting: "being sent to RingCentral (or checked after an interrupted send)",
  submitted: "accepted by RingCentral; following its status",
  final: "every recipient has a final status; the sender report is due",
  failed: "could not be faxed; the sender notice is due",
  notified: "finished; the sender was told",
  cancelled: "withdrawn",
};

/** States a job can be cancelled in (`submitting` only after its send is recorded). */
export const CANCELLABLE: readonly JobState[] = ["received", "parsed", "submitted"];

/** How long a cancel waits for the daemon to confirm a RingCentral-side cancel. */

function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

function jobData(job: OutboundJob): JobData | undefined {
  const r = readJobData(job.faxRequest);
  return r.ok ? r.data : undefined;
}

export async function getJob(store: Pick<OutboundStore, "get">, id: string): Promise<OutboundJob> {
  const job = await store.get(id);
  if (job === undefined) throw new OperatorRefusal(404, `no outbound job with id ${id} (see faxbridge queue list)`);
  return job;
}

function conflict(err: unknown, id: string): never {
  if (err instanceof StateConflictError) {
    throw new OperatorRefusal(
      409,
      err.actual === undefined ? `job ${id} no longer exists` : `job ${id} changed meanwhile (it is now ${err.actual}); look again with: faxbridge queue show ${id}`,
    );
  }
  throw err;
}

export interface RetryResult {
  id: string;
  state: JobState;
  nextAttemptAt: string | null;
  message: string;
}

/** Retry one job: a deferred job becomes due now; a failed job that has a fax request goes back to the queue with a fresh retry schedule. */
export async function retryJob(stores: { readonly outbound: OperatorStore; readonly documents: Pick<DocumentStore, "stat"> }, id: string, now = Date.now()): Promise<RetryResult> {
  const store = stores.outbound;
  const job = await getJob(store, id);
  const leased = job.leaseUntil !== null && job.leaseUntil > now;
  const done = (j: OutboundJob, message: string): RetryResult => ({ id: j.id, state: j.state, nextAttemptAt: iso(j.nextAttemptAt), message });
  const refuse = (message: string): never => {
    throw new OperatorRefusal(409, message);
  };
  switch (job.state) {
    case "received":
    case "parsed":
    case "submitting": {
      if (leased) return done(job, `job ${id} is being worked on right now (${job.state}); nothing to do`);
      if (job.nextAttemptAt <= now) return done(job, `job ${id} is already due (${job.state}); the daemon picks it up within seconds`);
      try {
        if (job.state === "parsed") {
          const moved = await store.transition(id, "parsed", "parsed", { nextAttemptAt: now });
          return done(moved, `job ${id} is due now; the daemon sends it within seconds`);
        }
        // No self-transition for these states: a reschedule to now (it counts as an attempt).
        const moved = await store.reschedule(id, { from: job.state, nextAttemptAt: now, error: job.lastError ?? "retried by the operator" });
        const what = job.state === "received" ? "reads it" : "checks with RingCentral whether the fax was already taken (it is never sent twice)";
        return done(moved, `job ${id} is due now; the daemon ${what} within seconds`);
      } catch (err) {
        return conflict(err, id);
      }
    }
    case "failed": {
      const data = jobData(job);
      if (job.rcMessageId !== null) {
        return refuse(
          `job ${id} cannot be retried: RingCentral already has this fax (message id ${job.rcMessageId}), so sending it again could deliver it twice. ` +
            "If it really must go again, send it anew (faxbridge send or a new mail).",
        );
      }
      if (data?.request === undefined) {
        const why = job.errorText ?? "its mail could not be turned into a fax";
        return refuse(`job ${id} cannot be retried: it was refused before it became a fax request (${why}). Retrying would give the same answer; fix the mail and send it again.`);
      }
      const usable = data.forwardOf !== undefined || (await stores.documents.stat(job.mailKey)) !== undefined;
      if (!usable) return refuse(`job ${id} cannot be retried: its stored mail (${job.mailKey}) is gone. Send it again.`);
      const { failureAdvice: _advice, report: _report, statusProblem: _problem, ...rest } = data;
      try {
        const moved = await store.transition(id, "failed", "parsed", {
          errorCode: null,
          errorText: null,
          submitStartedAt: null,
          faxRequest: rest,
          nextAttemptAt: now,
          attempts: 0,
        });
        return done(moved, `job ${id} is back in the queue (parsed) and will be sent within seconds, with a fresh retry schedule.`);
      } catch (err) {
        return conflict(err, id);
      }
    }
    case "submitted":
      return refuse(
        `job ${id} cannot be retried: RingCentral accepted it (message id ${job.rcMessageId ?? "?"}) and the daemon is following its status; ` +
          "sending it again could deliver it twice.",
      );
    case "final":
      return refuse(`job ${id} cannot be retried: the fax has its final status and the sender report is due. To fax it again, send it anew.`);
    case "notified":
      return refuse(
        `job ${id} cannot be retried: it is finished and the sender was told${job.errorText !== null ? ` (${job.errorText})` : ""}; its files were removed. ` +
          "Ask the sender to send it again, or use faxbridge send.",
      );
    case "cancelled":
      return refuse(`job ${id} cannot be retried: it was cancelled${job.errorText !== null ? ` (${job.errorText})` : ""}. Send it anew instead.`);
  }
}

/** Withdraw a job that has not gone out (received, parsed or submitted) → cancelled; `by` says who (e.g. "the operator"). Throws StateConflictError. */
export function withdrawJob(store: Pick<OutboundStore, "transition">, job: OutboundJob, by: string): Promise<OutboundJob> {
  return store.transition(job.id, job.state, "cancelled", { errorCode: "cancelled", errorText: `cancelled by ${by} (was ${job.state})` });
}

export interface CancelResult {
  id: string;
  state: JobState;
  previousState: JobState;
  message: string;
}

export interface CancelOptions {
  /** Remove the job's spool files once it is withdrawn (a failure is the caller's to report). */
  readonly removeFiles: (id: string) => Promise<void>;
  /** Told when the job was withdrawn but its files could not be removed. */
  readonly onRemoveFailed?: (err: unknown) => void;
  readonly now?: () => number;
  /** Between looks at a RingCentral-side cancel the daemon carries out. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Who cancels, for the job's error text ("cancelled by <by>"); default "the operator". */
  readonly by?: string;
  /** Told once a RingCentral-side cancel is recorded (the daemon wakes its worker to carry it out now). */
  readonly onRequested?: () => void;
}

/**
 * Cancel one job: withdraw it when it has not gone out; for a scheduled fax
 * RingCentral holds (send time ahead), record the request and wait up to 15 s
 * for the daemon to delete it at RingCentral (see requestRingCentralCancel).
 */
export async function cancelJob(store: OperatorStore, id: string, opts: CancelOptions): Promise<CancelResult> {
  const now = opts.now ?? Date.now;
  const job = await getJob(store, id);
  if (job.state === "submitting") {
    throw new OperatorRefusal(409, `job ${id} cannot be cancelled right now: it is being handed to RingCentral. Try again in a minute (it will then be submitted).`);
  }
  if (!CANCELLABLE.includes(job.state)) {
    throw new OperatorRefusal(409, `job ${id} cannot be cancelled: it is ${job.state} (${STATE_WORDS[job.state]}).`);
  }
  const scheduled = job.state === "submitted" ? scheduledAtRingCentral(job, now()) : undefined;
  if (scheduled !== undefined) return requestRingCentralCancel(store, job, scheduled, opts);
  let cancelled: OutboundJob;
  try {
    cancelled = await withdrawJob(store, job, opts.by ?? "the operator");
  } catch (err) {
    conflict(err, id);
  }
  // The raw mail and extracted documents are no longer needed.
  try {
    await opts.removeFiles(id);
  } catch (err) {
    opts.onRemoveFailed?.(err);
  }
  const message =
    job.state === "parsed" && job.rcMessageId !== null
      ? `job ${id} cancelled while it waited to redial busy / no-answer recipients (fax.redial): the attempts already made (last RingCentral message id ${job.rcMessageId}) stand; ` +
        "no more redials, and the sender gets no report."
      : job.state === "submitted"
      ? `job ${id} cancelled. RingCentral had already accepted it (message id ${job.rcMessageId ?? "?"}): the fax may already be on its way or delivered; ` +
        "faxbridge stops following it and sends no report."
      : `job ${id} cancelled before it was sent; no fax goes out and the sender gets no report.`;
  return { id, state: cancelled.state, previousState: job.state, message };
}

/** The job's data when RingCentral holds it as a scheduled fax whose send time is still ahead. */
function scheduledAtRingCentral(job: OutboundJob, now: number): JobData | undefined {
  const data = jobData(job);
  const sendAt = Date.parse(data?.request?.sendTime ?? "");
  return data !== undefined && job.rcMessageId !== null && Number.isFinite(sendAt) && sendAt > now ? data : undefined;
}

/**
 * A scheduled fax RingCentral holds is cancelled by deleting it from the
 * message store before its send time. The daemon's worker does that (it holds
 * the RingCentral session), confirms it, and sends the sender a "cancelled"
 * report; here the request is recorded and, when the daemon runs, awaited.
 */
async function requestRingCentralCancel(store: OperatorStore, job: OutboundJob, data: JobData, opts: CancelOptions): Promise<CancelResult> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const id = job.id;
  if (data.cancel === undefined) {
    try {
      await store.transition(id, "submitted", "submitted", { faxRequest: { ...data, cancel: { requestedAt: now() } }, nextAttemptAt: now() });
    } catch (err) {
      conflict(err, id);
    }
  }
  opts.onRequested?.();
  const deadline = now() + CANCEL_WAIT_MS;
  for (let wait = 100; now() < deadline; wait = Math.min(wait * 2, 1000)) {
    const current = await getJob(store, id);
    const read = readJobData(current.faxRequest);
    const outcome = read.ok ? read.data?.cancel?.outcome : undefined;
    if (outcome === "cancelled") {
      return { id, state: current.state, previousState: job.state, message: `job ${id} cancelled: RingCentral deleted the scheduled fax ${job.rcMessageId ?? "?"} before its send time (confirmed); the sender gets a "cancelled" report.` };
    }
    if (outcome === "too-late") {
      throw new OperatorRefusal(409, `job ${id} could not be cancelled: ${read.ok ? (read.data?.cancel?.reason ?? "too late") : "too late"}. faxbridge follows it to its final status and reports it.`);
    }
    await sleep(wait);
  }
  return {
    id,
    state: "submitted",
    previousState: job.state,
    message: `job ${id}: cancel requested. The daemon deletes the scheduled fax ${job.rcMessageId ?? "?"} from RingCentral's message store before its send time and sends the sender a "cancelled" report (run "faxbridge queue show ${id}" to see it done).`,
  };
}
