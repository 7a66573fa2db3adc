/**
 * `faxbridge queue list|show|retry|cancel`: the outbound (email → fax) jobs.
 *
 * These open the database directly; the daemon may be running. The rules for
 * retry and cancel live in src/outbound/operator.ts (the web console and API
 * use them too); every change is a compare-and-set transition in the store.
 */
import { errorMessage } from "../errors.js";
import { silentLogger } from "../log.js";
import { describeFaxError } from "../outbound/fax-errors.js";
import { readJobData, type JobData } from "../outbound/job-data.js";
import {
  cancelJob as cancelOutboundJob,
  getJob as getOutboundJob,
  OperatorRefusal,
  retryJob as retryOutboundJob,
  STATE_WORDS,
  type CancelResult,
  type RetryResult,
} from "../outbound/operator.js";
import { Spool } from "../spool/spool.js";
import { JOB_STATES, type JobState, type OutboundJob } from "../store/outbound.js";
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
  runSubcommand,
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

export function cmdQueue(argv: string[]): Promise<number> {
  return runSubcommand(argv, { list: queueList, show: queueShow, retry: queueRetry, cancel: queueCancel }, QUEUE_USAGE);
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

/** Run an operator rule (src/outbound/operator.ts); its refusal is this command's error. */
async function operator<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof OperatorRefusal) throw new CommandError(err.message);
    throw err;
  }
}

function getJob(stores: Pick<Stores, "outbound">, id: string): Promise<OutboundJob> {
  return operator(() => getOutboundJob(stores.outbound, id));
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

export type { RetryResult };

/** What `queue retry` does to one job (the rules: src/outbound/operator.ts). */
export function retryJob(stores: Pick<Stores, "outbound" | "documents">, id: string, now = Date.now()): Promise<RetryResult> {
  return operator(() => retryOutboundJob(stores, id, now));
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

export type { CancelResult };

/** What `queue cancel` does to one job (the rules: src/outbound/operator.ts). */
export function cancelJob(stores: Stores, id: string): Promise<CancelResult> {
  return operator(() =>
    cancelOutboundJob(stores.outbound, id, {
      removeFiles: (jobId) => new Spool({ documents: stores.documents, logger: silentLogger() }).remove(jobId),
      onRemoveFailed: (err) => process.stderr.write(`faxbridge queue cancel: job cancelled, but its spool files could not be removed: ${errorMessage(err)}\n`),
    }),
  );
}

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
