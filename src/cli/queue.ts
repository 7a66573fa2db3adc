/**
 * `faxbridge queue list|show|retry|cancel`: the outbound (email → fax) jobs.
 *
 * These open the database directly; the daemon may be running. Every change
 * is a compare-and-set transition in the store, so a job the worker moves at
 * the same moment is refused with "it changed meanwhile", never overwritten.
 */
import { errorMessage } from "../errors.js";
import { silentLogger } from "../log.js";
import { describeFaxError } from "../outbound/fax-errors.js";
import { readJobData, type JobData } from "../outbound/job-data.js";
import { Spool } from "../spool/spool.js";
import { JOB_STATES, StateConflictError, type JobState, type OutboundJob } from "../store/outbound.js";
import {
  cell,
  COMMON_OPTIONS,
  CommandError,
  iso,
  loadConfigFrom,
  oneOf,
  out,
  parse,
  positiveInt,
  printJson,
  relative,
  table,
  UsageError,
  when,
  withStores,
  type Stores,
} from "./common.js";


/**
 * Tries to hand the fax to RingCentral: the store counts the ones that were
 * rescheduled; the last try, which RingCentral took or which failed the job
 * for good, is not rescheduled and counts once more.
 */
function sendAttempts(job: OutboundJob): number {
  const lastTry = job.rcMessageId !== null || (job.state === "failed" && job.submitStartedAt !== null);
  return job.attempts + (lastTry ? 1 : 0);
}
export const QUEUE_USAGE = `usage: faxbridge queue <list|show|retry|cancel> [options]

  queue list [--state S[,S...]] [--limit N] [--after ID]
        outbound jobs, oldest first (page on with --after <last id>)
        states: ${JOB_STATES.join(", ")}
  queue show ID       everything about one job: recipients and their status, documents, errors
  queue retry ID      a deferred job: try it now; a failed job that has a fax request
                      (e.g. gave up during a RingCentral outage): send it again
  queue cancel ID     withdraw a job that is received, parsed or submitted

options:
  --config PATH   YAML config file (default: $FAXBRIDGE_CONFIG, else built-in defaults)
  --json          machine-readable output
  -h, --help      this text
`;

export async function cmdQueue(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "list":
      return queueList(rest);
    case "show":
      return queueShow(rest);
    case "retry":
      return queueRetry(rest);
    case "cancel":
      return queueCancel(rest);
    case undefined:
    case "-h":
    case "--help":
    case "help":
      process.stdout.write(QUEUE_USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}" (use list, show, retry or cancel)`);
  }
}

function helpRequested(values: { help?: boolean | undefined }): boolean {
  if (values.help === true) {
    process.stdout.write(QUEUE_USAGE);
    return true;
  }
  return false;
}

function oneId(positionals: string[], what: string): string {
  if (positionals.length !== 1 || positionals[0] === undefined || positionals[0] === "") throw new UsageError(`${what} takes exactly one job id`);
  return positionals[0];
}

// ---------------------------------------------------------------- list

export interface JobSummary {
  id: string;
  state: JobState;
  from: string;
  to: string[];
  receivedAt: string | null;
  attempts: number;
  nextAttemptAt: string | null;
  rcMessageId: string | null;
  error: string | null;
}

function summary(job: OutboundJob): JobSummary {
  return {
    id: job.id,
    state: job.state,
    from: job.mailFrom,
    to: job.rcptTo.map((r) => r.e164),
    receivedAt: iso(job.receivedAt),
    attempts: sendAttempts(job),
    nextAttemptAt: isWaiting(job) ? iso(job.nextAttemptAt) : null,
    rcMessageId: job.rcMessageId,
    error: job.errorText ?? job.lastError,
  };
}

/** States in which the worker will still act on the job at nextAttemptAt. */
function isWaiting(job: OutboundJob): boolean {
  return job.state !== "notified" && job.state !== "cancelled";
}

async function queueList(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...COMMON_OPTIONS, state: { type: "string" }, limit: { type: "string" }, after: { type: "string" } });
  if (helpRequested(values)) return 0;
  const states = values.state?.split(",").map((s) => oneOf("state", s.trim(), JOB_STATES));
  const limit = positiveInt("limit", values.limit, 50);
  const config = loadConfigFrom(values.config);
  const jobs = await withStores(config, (s) =>
    s.outbound.list({ limit, ...(states !== undefined && { state: states }), ...(values.after !== undefined && { after: values.after }) }),
  );
  if (values.json === true) {
    printJson(jobs.map(summary));
    return 0;
  }
  if (jobs.length === 0) {
    out(states === undefined ? "no outbound jobs" : `no outbound jobs in state ${states.join(" or ")}`);
    return 0;
  }
  const now = Date.now();
  const rows = jobs.map((j) => [
    j.id,
    j.state,
    cell(j.mailFrom === "" ? "<>" : j.mailFrom, 30),
    cell(j.rcptTo.map((r) => r.e164).join(","), 34),
    when(j.receivedAt),
    String(sendAttempts(j)),
    isWaiting(j) ? (j.nextAttemptAt > now ? relative(j.nextAttemptAt, now) : "due") : "-",
    j.rcMessageId ?? "-",
    cell(j.errorText ?? j.lastError, 60),
  ]);
  process.stdout.write(table(["ID", "STATE", "FROM", "TO", "RECEIVED", "ATT", "NEXT", "RC ID", "ERROR"], rows));
  if (jobs.length === limit) out(`(first ${limit}; more with --after ${jobs.at(-1)?.id ?? ""})`);
  return 0;
}

// ---------------------------------------------------------------- show

function jobData(job: OutboundJob): JobData | undefined {
  const r = readJobData(job.faxRequest);
  return r.ok ? r.data : undefined;
}

/** What a state means, for an operator. */
const STATE_WORDS: Record<JobState, string> = {
  received: "accepted and stored, waiting to be read",
  parsed: "read; waiting to be sent to RingCentral",
  submitting: "being sent to RingCentral (or checked after an interrupted send)",
  submitted: "accepted by RingCentral; following its status",
  final: "every recipient has a final status; the sender report is due",
  failed: "could not be faxed; the sender notice is due",
  notified: "finished; the sender was told",
  cancelled: "withdrawn",
};

export function jobDetails(job: OutboundJob): Record<string, unknown> {
  const data = jobData(job);
  return {
    ...summary(job),
    meaning: STATE_WORDS[job.state],
    messageId: job.messageId,
    size: job.size,
    client: job.client,
    recipients: job.rcptTo.map((r) => {
      const status = job.status?.find((s) => s.e164 === r.e164);
      return {
        address: r.address,
        e164: r.e164,
        ...r.options,
        status: status?.status ?? null,
        faxErrorCode: status?.faxErrorCode ?? null,
        faxError: status?.faxErrorCode !== undefined ? describeFaxError(status.faxErrorCode).advice : null,
      };
    }),
    errorCode: job.errorCode,
    errorText: job.errorText,
    lastError: job.lastError,
    advice: data?.failureAdvice ?? null,
    refusal: data?.refusal ?? null,
    subject: data?.meta.subject ?? null,
    request: data?.request ?? null,
    forwardOf: data?.forwardOf ?? null,
    documents: (data?.documents ?? []).map((d) => ({ filename: d.filename, contentType: d.contentType, size: d.size })),
    skipped: data?.skipped ?? [],
    submitStartedAt: iso(job.submitStartedAt),
    submittedAt: iso(data?.submittedAt),
    statusPolls: data?.polls ?? 0,
    statusProblem: data?.statusProblem ?? null,
    report: data?.report === undefined ? null : { ...data.report, at: iso(data.report.at) },
    notifiedAt: iso(job.notifiedAt),
    leaseUntil: iso(job.leaseUntil),
    updatedAt: iso(job.updatedAt),
    mailKey: job.mailKey,
  };
}

async function getJob(stores: Pick<Stores, "outbound">, id: string): Promise<OutboundJob> {
  const job = await stores.outbound.get(id);
  if (job === undefined) throw new CommandError(`no outbound job with id ${id} (see faxbridge queue list)`);
  return job;
}

async function queueShow(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON_OPTIONS, true);
  if (helpRequested(values)) return 0;
  const id = oneId(positionals, "queue show");
  const config = loadConfigFrom(values.config);
  const job = await withStores(config, (s) => getJob(s, id));
  const d = jobDetails(job);
  if (values.json === true) {
    printJson(d);
    return 0;
  }
  const data = jobData(job);
  const lines: string[] = [];
  const add = (label: string, value: string | null | undefined): void => {
    if (value !== null && value !== undefined && value !== "") lines.push(`${`${label}:`.padEnd(16)}${value}`);
  };
  add("job", job.id);
  add("state", `${job.state} (${STATE_WORDS[job.state]})`);
  add("from", job.mailFrom === "" ? "<> (no report)" : job.mailFrom);
  add("subject", data?.meta.subject);
  add("received", `${when(job.receivedAt)} from ${job.client.ip}${job.client.user !== undefined ? ` as ${job.client.user}` : ""}, ${job.size} bytes`);
  add("attempts", String(sendAttempts(job)));
  if (isWaiting(job)) add("next attempt", `${when(job.nextAttemptAt)} (${job.nextAttemptAt > Date.now() ? relative(job.nextAttemptAt) : "due now"})`);
  if (job.leaseUntil !== null && job.leaseUntil > Date.now()) add("worked on", `the daemon holds this job until ${when(job.leaseUntil)}`);
  add("RingCentral id", job.rcMessageId);
  if (data?.submittedAt !== undefined) add("submitted", when(data.submittedAt));
  if (data?.request?.sendTime !== undefined) add("send time", data.request.sendTime);
  if (data?.forwardOf !== undefined) add("resends", `RingCentral fax ${data.forwardOf}`);
  if (job.errorText !== null) add("error", `${job.errorText}${job.errorCode !== null ? ` [${job.errorCode}]` : ""}`);
  add("what to do", data?.failureAdvice);
  if (job.lastError !== null && job.lastError !== job.errorText) add("last problem", job.lastError);
  add("status note", data?.statusProblem);
  lines.push("recipients:");
  for (const r of job.rcptTo) {
    const st = job.status?.find((s) => s.e164 === r.e164);
    const err = st?.faxErrorCode !== undefined ? ` - ${describeFaxError(st.faxErrorCode).short} (${st.faxErrorCode})` : "";
    lines.push(`  ${r.e164.padEnd(16)} ${st?.status ?? "-"}${err}${r.options.name !== undefined ? `  [${r.options.name}]` : ""}`);
  }
  if (data !== undefined && data.documents.length > 0) {
    lines.push("documents:");
    for (const doc of data.documents) lines.push(`  ${doc.filename} (${doc.contentType}, ${doc.size} bytes)`);
  }
  for (const s of data?.skipped ?? []) lines.push(`  skipped ${s.filename}: ${s.reason}`);
  if (data?.report !== undefined) add("report", `${data.report.outcome} at ${when(data.report.at)}${data.report.detail !== undefined ? `: ${data.report.detail}` : ""}`);
  add("notified", job.notifiedAt !== null ? when(job.notifiedAt) : undefined);
  out(lines.join("\n"));
  return 0;
}

// ---------------------------------------------------------------- retry

function conflict(err: unknown, id: string): never {
  if (err instanceof StateConflictError) {
    throw new CommandError(
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

/** What `queue retry` does to one job; exported for tests of the rules. */
export async function retryJob(stores: Pick<Stores, "outbound" | "documents">, id: string, now = Date.now()): Promise<RetryResult> {
  const job = await getJob(stores, id);
  const store = stores.outbound;
  const leased = job.leaseUntil !== null && job.leaseUntil > now;
  const done = (j: OutboundJob, message: string): RetryResult => ({ id: j.id, state: j.state, nextAttemptAt: iso(j.nextAttemptAt), message });
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
        throw new CommandError(
          `job ${id} cannot be retried: RingCentral already has this fax (message id ${job.rcMessageId}), so sending it again could deliver it twice. ` +
            "If it really must go again, send it anew (faxbridge send or a new mail).",
        );
      }
      if (data?.request === undefined) {
        const why = job.errorText ?? "its mail could not be turned into a fax";
        throw new CommandError(
          `job ${id} cannot be retried: it was refused before it became a fax request (${why}). Retrying would give the same answer; fix the mail and send it again.`,
        );
      }
      const usable = data.forwardOf !== undefined || (await stores.documents.stat(job.mailKey)) !== undefined;
      if (!usable) throw new CommandError(`job ${id} cannot be retried: its stored mail (${job.mailKey}) is gone. Send it again.`);
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
      throw new CommandError(
        `job ${id} cannot be retried: RingCentral accepted it (message id ${job.rcMessageId ?? "?"}) and the daemon is following its status; ` +
          "sending it again could deliver it twice.",
      );
    case "final":
      throw new CommandError(`job ${id} cannot be retried: the fax has its final status and the sender report is due. To fax it again, send it anew.`);
    case "notified":
      throw new CommandError(
        `job ${id} cannot be retried: it is finished and the sender was told${job.errorText !== null ? ` (${job.errorText})` : ""}; its files were removed. ` +
          "Ask the sender to send it again, or use faxbridge send.",
      );
    case "cancelled":
      throw new CommandError(`job ${id} cannot be retried: it was cancelled${job.errorText !== null ? ` (${job.errorText})` : ""}. Send it anew instead.`);
  }
}

async function queueRetry(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON_OPTIONS, true);
  if (helpRequested(values)) return 0;
  const id = oneId(positionals, "queue retry");
  const config = loadConfigFrom(values.config);
  const r = await withStores(config, (s) => retryJob(s, id));
  if (values.json === true) printJson(r);
  else out(r.message);
  return 0;
}

// ---------------------------------------------------------------- cancel

export interface CancelResult {
  id: string;
  state: JobState;
  previousState: JobState;
  message: string;
}

const CANCELLABLE: readonly JobState[] = ["received", "parsed", "submitted"];

export async function cancelJob(stores: Stores, id: string): Promise<CancelResult> {
  const job = await getJob(stores, id);
  if (job.state === "submitting") {
    throw new CommandError(`job ${id} cannot be cancelled right now: it is being handed to RingCentral. Try again in a minute (it will then be submitted).`);
  }
  if (!CANCELLABLE.includes(job.state)) {
    throw new CommandError(`job ${id} cannot be cancelled: it is ${job.state} (${STATE_WORDS[job.state]}).`);
  }
  const scheduled = job.state === "submitted" ? scheduledAtRingCentral(job) : undefined;
  if (scheduled !== undefined) return requestRingCentralCancel(stores, job, scheduled);
  let cancelled: OutboundJob;
  try {
    cancelled = await stores.outbound.transition(id, job.state, "cancelled", {
      errorCode: "cancelled",
      errorText: `cancelled by the operator (was ${job.state})`,
    });
  } catch (err) {
    conflict(err, id);
  }
  // The raw mail and extracted documents are no longer needed.
  try {
    await new Spool({ documents: stores.documents, logger: silentLogger() }).remove(id);
  } catch (err) {
    process.stderr.write(`faxbridge queue cancel: job cancelled, but its spool files could not be removed: ${errorMessage(err)}\n`);
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
function scheduledAtRingCentral(job: OutboundJob): JobData | undefined {
  const read = readJobData(job.faxRequest);
  const data = read.ok ? read.data : undefined;
  const sendAt = Date.parse(data?.request?.sendTime ?? "");
  return data !== undefined && job.rcMessageId !== null && Number.isFinite(sendAt) && sendAt > Date.now() ? data : undefined;
}

/**
 * A scheduled fax RingCentral holds is cancelled by deleting it from the
 * message store before its send time. The daemon's worker does that (it holds
 * the RingCentral session), confirms it, and sends the sender a "cancelled"
 * report; here the request is recorded and, when the daemon runs, awaited.
 */
async function requestRingCentralCancel(stores: Stores, job: OutboundJob, data: JobData): Promise<CancelResult> {
  const id = job.id;
  if (data.cancel === undefined) {
    try {
      await stores.outbound.transition(id, "submitted", "submitted", { faxRequest: { ...data, cancel: { requestedAt: Date.now() } }, nextAttemptAt: Date.now() });
    } catch (err) {
      conflict(err, id);
    }
  }
  const deadline = Date.now() + CANCEL_WAIT_MS;
  for (let wait = 100; Date.now() < deadline; wait = Math.min(wait * 2, 1000)) {
    const now = await getJob(stores, id);
    const read = readJobData(now.faxRequest);
    const outcome = read.ok ? read.data?.cancel?.outcome : undefined;
    if (outcome === "cancelled") {
      return { id, state: now.state, previousState: job.state, message: `job ${id} cancelled: RingCentral deleted the scheduled fax ${job.rcMessageId ?? "?"} before its send time (confirmed); the sender gets a "cancelled" report.` };
    }
    if (outcome === "too-late") {
      throw new CommandError(`job ${id} could not be cancelled: ${read.ok ? (read.data?.cancel?.reason ?? "too late") : "too late"}. faxbridge follows it to its final status and reports it.`);
    }
    await new Promise((r) => setTimeout(r, wait));
  }
  return {
    id,
    state: "submitted",
    previousState: job.state,
    message: `job ${id}: cancel requested. The daemon deletes the scheduled fax ${job.rcMessageId ?? "?"} from RingCentral's message store before its send time and sends the sender a "cancelled" report (run "faxbridge queue show ${id}" to see it done).`,
  };
}

/** How long `queue cancel` waits for the daemon to confirm a RingCentral-side cancel. */
const CANCEL_WAIT_MS = 15_000;

async function queueCancel(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON_OPTIONS, true);
  if (helpRequested(values)) return 0;
  const id = oneId(positionals, "queue cancel");
  const config = loadConfigFrom(values.config);
  const r = await withStores(config, (s) => cancelJob(s, id));
  if (values.json === true) printJson(r);
  else out(r.message);
  return 0;
}
