/**
 * submitted → final: poll getMessage per fax.statusPollSchedule until every
 * recipient has a final status, or back to parsed to redial busy / no-answer
 * recipients (redial.ts); an operator's cancel of a scheduled fax is carried
 * out here (cancel.ts).
 *
 * Final status per recipient: every status but Queued. RingCentral reports a
 * fax that went through as `Sent` and one that did not as `SendingFailed` (the
 * spec's MessageStatusEnum, RingCentral's fax FAQ); nothing follows `Sent`, so
 * it is final at once (Delivered and DeliveryFailed are final too should they
 * appear). After fax.statusTimeoutHours (counted from the later of submission
 * and sendTime) a fax still Queued is final with what is known.
 */
import { errorMessage } from "../../errors.js";
import { isFinalStatus } from "../../fax/status.js";
import type { Logger } from "../../log.js";
import type { MessageInfo } from "../../rc/client.js";
import { RcApiError } from "../../rc/errors.js";
import type { OutboundJob, RecipientStatus } from "../../store/outbound.js";
import { cancelScheduledFax } from "../cancel.js";
import { emptyJobData, type JobData } from "../job-data.js";
import { attemptTargets, mergeStatuses, planRedial } from "../redial.js";
import { isoTime, jobData, recipientStatuses, type StepContext } from "./context.js";

export async function pollStep(ctx: StepContext, job: OutboundJob): Promise<void> {
  const { store, client, config } = ctx.deps;
  const log = ctx.log.child({ queueId: job.id, rcMessageId: job.rcMessageId });
  const data = jobData(ctx, job) ?? emptyJobData({ references: [], isReport: false });
  const rcId = job.rcMessageId;
  const e164s = attemptTargets(job, data);
  if (rcId === null) {
    await store.transition(job.id, "submitted", "failed", { errorCode: "internal", errorText: "the gateway lost the RingCentral message id", nextAttemptAt: ctx.now() });
    return;
  }
  if (data.cancel !== undefined && data.cancel.outcome === undefined) {
    await cancelAtRingCentral(ctx, job, data, rcId, log);
    return;
  }
  const polls = data.polls + 1;
  let info: MessageInfo;
  try {
    info = await client.getMessage(rcId, job.rcExtensionId ?? undefined);
  } catch (err) {
    const now = ctx.now();
    if (err instanceof RcApiError && err.status === 404) {
      log.warn({ event: "fax.vanished" }, "the fax is no longer in RingCentral's message store");
      await finalize(ctx, job, { ...data, polls, statusProblem: "the fax was deleted from RingCentral's message store" }, e164s.map((e164) => ({ e164, status: "Unknown" as const })), log);
      return;
    }
    const delay = ctx.retry.pollDelay(polls);
    log.warn({ event: "fax.poll_failed", err, delayMs: delay }, "status poll failed; will poll again");
    await store.transition(job.id, "submitted", "submitted", { faxRequest: { ...data, polls }, nextAttemptAt: now + delay });
    return;
  }
  const now = ctx.now();
  const statuses = mergeStatuses(job, data, recipientStatuses(e164s, info));
  // Pages not counted before sending (other types, forwards) are charged when RingCentral reports them.
  // RingCentral says 0 pages while the fax is still being rendered: only a positive count is the fax's page count.
  const pageCount = info.faxPageCount !== undefined && info.faxPageCount > 0 ? info.faxPageCount : undefined;
  const reported = pageCount !== undefined && data.countedPages === undefined && data.pagesSettled !== true ? pageCount * e164s.length : undefined;
  const extra = reported === undefined ? 0 : Math.max(0, reported - (data.chargedPages ?? 0));
  const charged = reported === undefined ? 0 : await ctx.pages.chargeReported(job.identity, extra);
  const next: JobData = {
    ...data,
    polls,
    ...(pageCount !== undefined && { pages: pageCount }),
    ...(reported !== undefined && { pagesSettled: true, chargedPages: (data.chargedPages ?? 0) + charged }),
  };
  const allFinal = statuses.every((s) => isFinalStatus(s.status));
  if (allFinal) {
    await finalize(ctx, job, next, statuses, log);
    return;
  }
  const sendAt = Date.parse(data.request?.sendTime ?? "");
  const from = Math.max(data.submittedAt ?? job.submitStartedAt ?? job.receivedAt, Number.isFinite(sendAt) ? sendAt : 0);
  const timeoutMs = config.fax.statusTimeoutHours * 3_600_000;
  if (now - from >= timeoutMs) {
    log.warn({ event: "fax.status_timeout", statuses }, "no final status in time; reporting what is known");
    await finalize(ctx, job, { ...next, statusProblem: `no final status after ${config.fax.statusTimeoutHours} hours` }, statuses, log);
    return;
  }
  let nextAt = now + ctx.retry.pollDelay(polls + 1);
  if (Number.isFinite(sendAt) && sendAt > now) nextAt = Math.max(nextAt, sendAt + ctx.retry.pollDelay(1));
  const changed = JSON.stringify(statuses) !== JSON.stringify(job.status);
  if (changed) log.info({ event: "fax.status", messageStatus: info.messageStatus, statuses }, "fax status changed");
  await store.transition(job.id, "submitted", "submitted", { status: statuses, faxRequest: next, nextAttemptAt: Math.max(nextAt, now + 1) });
}

/** An operator cancelled a scheduled fax RingCentral holds: delete it there (src/outbound/cancel.ts), then report. */
async function cancelAtRingCentral(ctx: StepContext, job: OutboundJob, data: JobData, rcId: string, log: Logger): Promise<void> {
  const { store } = ctx.deps;
  const cancel = data.cancel ?? { requestedAt: ctx.now() };
  let outcome;
  try {
    outcome = await cancelScheduledFax(ctx.deps.client, rcId, job.rcExtensionId ?? undefined);
  } catch (err) {
    const delay = ctx.retry.pollDelay(1);
    log.warn({ event: "fax.cancel_failed", err, delayMs: delay }, "could not cancel the scheduled fax at RingCentral yet; will try again");
    await store.transition(job.id, "submitted", "submitted", { lastError: `cancel: ${errorMessage(err)}`, nextAttemptAt: ctx.now() + delay });
    return;
  }
  if (outcome.cancelled) {
    log.info({ event: "fax.cancelled" }, "scheduled fax deleted from RingCentral's message store before its send time");
    const now = ctx.now();
    await store.transition(job.id, "submitted", "final", {
      status: job.rcptTo.map((r) => ({ e164: r.e164, status: "Unknown" as const })),
      faxRequest: { ...data, cancel: { ...cancel, outcome: "cancelled" }, completedAt: now },
      errorCode: "cancelled",
      errorText: "cancelled by the operator before its send time",
      nextAttemptAt: now,
    });
    return;
  }
  log.warn({ event: "fax.cancel_too_late", reason: outcome.reason }, "the scheduled fax could not be cancelled; following it to its final status");
  await store.transition(job.id, "submitted", "submitted", {
    faxRequest: { ...data, cancel: { ...cancel, outcome: "too-late", reason: outcome.reason } },
    nextAttemptAt: ctx.now(),
  });
}

/** Every recipient has a final status: redial the busy / no-answer ones (back to parsed), or final. */
async function finalize(ctx: StepContext, job: OutboundJob, given: JobData, current: RecipientStatus[], log: Logger): Promise<void> {
  const { store, metrics } = ctx.deps;
  const now = ctx.now();
  const statuses = mergeStatuses(job, given, current);
  const plan = await planRedial({ schedule: ctx.retry.redial, job, data: given, statuses, pages: ctx.pages, now });
  if (plan.redial) {
    await store.transition(job.id, "submitted", "parsed", { status: statuses, faxRequest: plan.data, nextAttemptAt: plan.at });
    log.info({ event: "fax.redial_scheduled", numbers: plan.numbers, round: plan.data.redial?.round, at: isoTime(plan.at) }, "redialling busy / no-answer recipients");
    return;
  }
  const data = plan.data;
  await store.transition(job.id, "submitted", "final", {
    status: statuses,
    faxRequest: { ...data, completedAt: now },
    nextAttemptAt: now,
  });
  for (const s of statuses) metrics.faxesFinal.inc({ status: s.status, error_code: s.faxErrorCode ?? "none" });
  metrics.faxDeliverySeconds.observe(Math.max(0, now - job.receivedAt) / 1000);
  log.info({ event: "fax.final", statuses, pages: data.pages, statusProblem: data.statusProblem }, "fax reached its final status");
}
