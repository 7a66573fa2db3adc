/**
 * final / failed → notified: the sender report (src/outbound/report.ts), the
 * audit line, and the job's spool files removed; plus the optional acceptance
 * notice when RingCentral took a fax (fax.notifyOnAccept).
 *
 * Reports go to the envelope sender; loop-unsafe senders get none
 * (`report.suppressed`). A temporary mail failure retries per
 * fax.retrySchedule; a permanent one (or an exhausted schedule) is logged at
 * error (`report.failed`) and the job still becomes notified, with the outcome
 * recorded in the job data.
 */
import { transmittedCopyMode } from "../../config/resolve.js";
import { errorMessage } from "../../errors.js";
import { failureOf } from "../../failure.js";
import type { Logger } from "../../log.js";
import { normaliseAddress } from "../../policy/identity.js";
import type { JobState, OutboundJob, RecipientStatus } from "../../store/outbound.js";
import { emptyJobData, type JobData, type MailMeta } from "../job-data.js";
import { redialAttempts } from "../redial.js";
import { composeReport, suppressReason, type ReportInput, type ReportKind } from "../report.js";
import { fetchTransmittedCopy, type TransmittedCopy } from "../transmitted.js";
import { cleanup } from "./cleanup.js";
import { jobData, mailMetaOf, type StepContext } from "./context.js";
import { withLocalDocuments, type LocalDocument } from "./documents.js";

function reportInput(job: OutboundJob, data: JobData | undefined, meta: MailMeta | undefined, kind: ReportKind, attached: readonly LocalDocument[] = []): ReportInput {
  const recipients: RecipientStatus[] =
    job.status !== null && job.status.length > 0 ? [...job.status] : job.rcptTo.map((r) => ({ e164: r.e164, status: kind === "accepted" ? "Queued" : "Unknown" }));
  const input: ReportInput = {
    kind,
    queueId: job.id,
    to: job.reportTo,
    recipients,
    receivedAt: job.receivedAt,
    documents: (data?.documents ?? []).map((d) => {
      const path = attached.find((a) => a.key === d.key)?.path;
      return { name: d.filename, size: d.size, contentType: d.contentType, ...(path !== undefined && { path }) };
    }),
    notFaxed: (data?.skipped ?? []).map((s) => ({ name: s.filename, reason: s.reason })),
    ...(data?.cancel?.outcome === "cancelled" && { cancelled: true }),
    original: {
      references: meta?.references ?? [],
      ...(meta?.messageId !== undefined && { messageId: meta.messageId }),
      ...(meta?.subject !== undefined && { subject: meta.subject }),
    },
    ...(job.rcMessageId !== null && { rcMessageId: job.rcMessageId }),
    ...(data?.pages !== undefined && { pages: data.pages }),
    ...(data?.submittedAt !== undefined && { submittedAt: data.submittedAt }),
    ...(data?.completedAt !== undefined && { completedAt: data.completedAt }),
    ...(data?.request?.sendTime !== undefined && { sendTime: data.request.sendTime }),
    ...(data?.forwardOf !== undefined && { forwardOf: data.forwardOf }),
    ...(data?.statusProblem !== undefined && { statusProblem: data.statusProblem }),
    ...(kind !== "accepted" && data?.redial !== undefined && { attempts: redialAttempts(job, data) ?? [] }),
  };
  if (kind === "failed") {
    const r = data?.refusal;
    if (r !== undefined) return { ...input, refusal: { rule: r.rule, message: r.message, ...(r.filename !== undefined && { filename: r.filename }) } };
    return {
      ...input,
      failure: {
        code: job.errorCode ?? "unknown",
        reason: job.errorText ?? "unknown error",
        ...(data?.failureAdvice !== undefined && { advice: data.failureAdvice }),
      },
    };
  }
  return input;
}

export async function reportStep(ctx: StepContext, job: OutboundJob): Promise<void> {
  const { store, mail, config } = ctx.deps;
  const log = ctx.log.child({ queueId: job.id });
  const from = job.state;
  const data = jobData(ctx, job);
  const meta = data?.meta ?? (await mailMetaOf(ctx, job));
  const suppressed = suppressReason(job.reportTo, meta);
  const base = data ?? emptyJobData(meta ?? { references: [], isReport: false });
  if (suppressed !== undefined) {
    log.info({ event: "report.suppressed", reason: suppressed, to: job.reportTo }, "no report for this sender (loop safety)");
    await finish(ctx, job, from, { ...base, report: { outcome: "suppressed", at: ctx.now(), detail: suppressed } }, log);
    return;
  }
  // A mail refused before any fax was sent cost nothing: its notice is rate-limited per address, so forged senders cannot aim a stream of notices at someone.
  if (from === "failed" && job.rcMessageId === null && !(await ctx.notices.reserve([normaliseAddress(job.reportTo)], 1)).ok) {
    log.warn({ event: "report.rate_limited", to: job.reportTo }, "too many notices to this address this hour; this one is not sent");
    await finish(ctx, job, from, { ...base, report: { outcome: "suppressed", at: ctx.now(), detail: "notice rate limit" } }, log);
    return;
  }
  const transmittedCopy = from === "final" ? await fetchCopy(ctx, job, data, log) : undefined;
  const compose = (attached: readonly LocalDocument[]): ReturnType<typeof composeReport> =>
    composeReport(reportInput(job, data, meta, from === "failed" ? "failed" : "final", attached), {
      from: config.mail.from,
      attachDocuments: config.fax.reportAttachDocuments,
      timeZone: config.mail.timeZone,
      ...(transmittedCopy !== undefined && { transmittedCopy }),
    });
  let composed = compose([]);
  // The documents to attach are lent as local files for the send only (temporary copies on a database backend).
  const attach = config.fax.reportAttachDocuments ? (data?.documents ?? []) : [];
  try {
    await withLocalDocuments(
      ctx,
      attach,
      async (local) => {
        composed = compose(local);
        await mail.send(composed.mail);
      },
      (d, err) => log.warn({ event: "report.document_unavailable", key: d.key, err }, "a document could not be read; the report goes without it"),
    );
  } catch (err) {
    const temporary = failureOf(err).kind === "transient";
    const delay = temporary ? ctx.retry.retryDelay(job.attempts + 1) : undefined;
    if (delay !== undefined) {
      log.warn({ event: "report.deferred", err, delayMs: delay }, "sender report not delivered; will retry");
      await store.reschedule(job.id, { from, nextAttemptAt: ctx.now() + delay, error: `report: ${errorMessage(err)}` });
      return;
    }
    log.error(
      { event: "report.failed", err, to: job.reportTo, permanent: !temporary, messageId: composed.mail.messageId },
      "sender report could not be delivered; giving up on it",
    );
    await finish(ctx, job, from, { ...base, report: { outcome: "failed", at: ctx.now(), detail: errorMessage(err) } }, log);
    return;
  }
  log.info({ event: "report.sent", to: job.reportTo, status: composed.status, messageId: composed.mail.messageId }, "sender report sent");
  await finish(ctx, job, from, { ...base, report: { outcome: "sent", at: ctx.now() } }, log);
}

/** The fax as RingCentral transmitted it, for a report of a fax that went out to someone; undefined when off or unavailable. */
async function fetchCopy(ctx: StepContext, job: OutboundJob, data: JobData | undefined, log: Logger): Promise<TransmittedCopy | undefined> {
  const { config, client } = ctx.deps;
  const mode = transmittedCopyMode(config);
  const wentOut = (job.status ?? []).some((s) => s.status === "Sent" || s.status === "Delivered");
  if (mode === "none" || job.rcMessageId === null || !wentOut || data?.cancel?.outcome === "cancelled") return undefined;
  try {
    return await fetchTransmittedCopy(client, job.rcMessageId, mode, job.rcExtensionId ?? undefined);
  } catch (err) {
    log.warn({ event: "report.transmitted_copy_failed", err }, "could not fetch the transmitted copy; the report goes without it");
    return undefined;
  }
}

/** final/failed → notified: record the outcome, write the audit line, remove the job's documents. */
async function finish(ctx: StepContext, job: OutboundJob, from: JobState, data: JobData, log: Logger): Promise<void> {
  const done = await ctx.deps.store.transition(job.id, from, "notified", { notifiedAt: ctx.now(), faxRequest: data });
  ctx.deps.audit?.record({
    type: "fax.outbound",
    queueId: done.id,
    rcMessageId: done.rcMessageId,
    sender: done.mailFrom,
    client: done.client,
    recipients: (done.status ?? done.rcptTo.map((r) => ({ e164: r.e164, status: "NotSent" }))).map((r) => ({
      number: r.e164,
      status: r.status,
      ...("faxErrorCode" in r && r.faxErrorCode !== undefined && { faxErrorCode: r.faxErrorCode }),
    })),
    pages: data.pages ?? null,
    documents: data.documents.length,
    outcome: from === "failed" ? "failed" : "final",
    errorCode: done.errorCode,
    receivedAt: new Date(done.receivedAt).toISOString(),
    report: data.report?.outcome ?? "unknown",
  });
  await cleanup(ctx, job.id, log);
}

/** The optional notice when RingCentral accepted the fax; best effort, one try. */
export async function acceptedNotice(ctx: StepContext, jobId: string): Promise<void> {
  const log = ctx.log.child({ queueId: jobId });
  try {
    const job = await ctx.deps.store.get(jobId);
    if (job === undefined) return;
    const data = jobData(ctx, job);
    const meta = data?.meta;
    const suppressed = suppressReason(job.reportTo, meta);
    if (suppressed !== undefined) {
      log.info({ event: "report.suppressed", kind: "accepted", reason: suppressed }, "no acceptance notice for this sender (loop safety)");
      return;
    }
    const composed = composeReport(reportInput(job, data, meta, "accepted"), { from: ctx.deps.config.mail.from, attachDocuments: false, timeZone: ctx.deps.config.mail.timeZone });
    await ctx.deps.mail.send(composed.mail);
    log.info({ event: "report.accepted_sent", to: job.reportTo, messageId: composed.mail.messageId }, "acceptance notice sent");
  } catch (err) {
    log.warn({ event: "report.accepted_failed", err }, "acceptance notice not delivered (the final report still follows)");
  }
}
