/**
 * parsed → submitting → submitted: submitStartedAt is persisted BEFORE the
 * POST (sendFax, or resendFax for a forward or a redial), the RingCentral
 * message id after it.
 *
 * A send that fails with 429, or a network error before any byte went out,
 * goes back to `parsed` and is retried per fax.retrySchedule (jitter,
 * Retry-After honoured). A 5xx, a network error after the request went out or
 * an unreadable 2xx may have created the fax: the job stays `submitting` and is
 * reconciled before any resend. 4xx fails permanently (classify.ts).
 */
import type { Logger } from "../../log.js";
import type { FaxDocument, SendFaxRequest } from "../../rc/client.js";
import { RcApiError } from "../../rc/errors.js";
import type { OutboundJob } from "../../store/outbound.js";
import { classify, describeRcError } from "../classify.js";
import type { JobData } from "../job-data.js";
import { attemptTargets, mergeStatuses, redialResend } from "../redial.js";
import { jobData, recipientStatuses, type StepContext } from "./context.js";
import { documentsPresent, storeDocuments, withLocalDocuments } from "./documents.js";
import { alertFailed, giveUp } from "./give-up.js";
import { parseMail, refuse } from "./parse.js";
import { reconcileStep } from "./reconcile.js";
import { acceptedNotice } from "./report.js";
import { tagCoverText, type JobTag } from "../tag.js";

/** The send request of a job's attempt, its cover text tagged with the job and attempt (../tag.ts). */
function toSendRequest(req: NonNullable<JobData["request"]>, tag?: JobTag): SendFaxRequest {
  const out: SendFaxRequest = {
    to: req.to.map((t) => (t.name !== undefined ? { phoneNumber: t.phoneNumber, name: t.name } : { phoneNumber: t.phoneNumber })),
    faxResolution: req.faxResolution,
  };
  if (req.coverIndex !== undefined) out.coverIndex = req.coverIndex;
  if (tag !== undefined) out.coverPageText = tagCoverText(req.coverPageText, tag);
  else if (req.coverPageText !== undefined) out.coverPageText = req.coverPageText;
  if (req.sendTime !== undefined) out.sendTime = req.sendTime;
  if (req.isoCode !== undefined) out.isoCode = req.isoCode;
  return out;
}

/** True once the claim loop found this job's lease taken over by another instance. */
function lost(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

export async function submitStep(ctx: StepContext, job: OutboundJob): Promise<void> {
  const { store, client } = ctx.deps;
  const log = ctx.log.child({ queueId: job.id });
  let data = jobData(ctx, job);
  if (data?.request === undefined) {
    await store.transition(job.id, "parsed", "failed", { errorCode: "internal", errorText: "the gateway lost the fax request", nextAttemptAt: ctx.now() });
    return;
  }
  if (data.forwardOf === undefined && data.redial === undefined && !(await documentsPresent(ctx, data.documents))) {
    // The work directory was lost (e.g. a restored volume): extract again from the raw message.
    log.warn({ event: "fax.documents_missing" }, "extracted documents missing; parsing the mail again");
    const again = await parseMail(ctx, job, log);
    if (!again.ok) {
      await refuse(ctx, job, again.refusal, data.meta, log);
      return;
    }
    data = { ...data, request: again.mail.request, documents: await storeDocuments(ctx, job.id, again.mail.documents) };
  }
  const request = data.request;
  if (request === undefined) return;
  const startedAt = ctx.now();
  const submitting = await store.transition(job.id, "parsed", "submitting", {
    submitStartedAt: startedAt,
    faxRequest: data,
    leaseMs: ctx.tuning.submitLeaseMs,
  });
  log.info({ event: "fax.submitting", attempt: job.attempts + 1, redial: data.redial?.round, recipients: attemptTargets(job, data).length, documents: data.documents.length, forwardOf: data.forwardOf }, "sending fax");
  let res;
  const redial = redialResend(data);
  const signal = ctx.signal;
  // Another instance took the job over (this one stalled past its lease): it reconciles and sends; we must not.
  if (lost(signal)) return;
  try {
    if (redial !== undefined) {
      res = await client.resendFax({ ...redial, ...(job.rcExtensionId !== null && { extensionId: job.rcExtensionId }) });
    } else if (data.forwardOf !== undefined) {
      res = await client.resendFax({
        originalMessageId: data.forwardOf,
        to: toSendRequest(request).to,
        ...(request.sendTime !== undefined && { sendTime: request.sendTime }),
      });
    } else {
      // Streamed from local files (temporary copies on a database backend), given back whatever happens.
      res = await withLocalDocuments(ctx, data.documents, (local) => {
        const documents: FaxDocument[] = local.map((d) => ({ path: d.path, filename: d.filename, contentType: d.contentType, size: d.size }));
        return client.sendFax(toSendRequest(request, { jobId: job.id, attempt: job.attempts + 1 }), documents, signal !== undefined ? { signal } : {});
      });
    }
  } catch (err) {
    // The upload was cut because the lease was lost: the new holder reconciles (by the tag) and finishes the job.
    if (lost(signal)) return;
    await submitFailed(ctx, submitting, data, err, log);
    return;
  }
  const now = ctx.now();
  const statuses = mergeStatuses(job, data, recipientStatuses(attemptTargets(job, data), res));
  try {
    await store.transition(job.id, "submitting", "submitted", {
      lastError: null,
      rcMessageId: res.id,
      rcExtensionId: res.extensionId ?? null,
      status: statuses,
      faxRequest: { ...data, submittedAt: now },
      nextAttemptAt: ctx.retry.firstPollAt(now, request.sendTime),
    });
  } catch (err) {
    log.error(
      { event: "fax.record_failed", rcMessageId: res.id, err },
      "RingCentral accepted the fax but recording it failed; it stays submitting and will be reconciled (not resent)",
    );
    return;
  }
  ctx.deps.metrics.faxesSubmitted.inc();
  log.info({ event: "fax.submitted", rcMessageId: res.id, messageStatus: res.messageStatus, sendTime: request.sendTime }, "fax accepted by RingCentral");
  // A redial is not news to the sender: the acceptance notice went with the first attempt.
  if (ctx.deps.config.fax.notifyOnAccept && redial === undefined) ctx.track(acceptedNotice(ctx, job.id));
}

async function submitFailed(ctx: StepContext, job: OutboundJob, data: JobData, err: unknown, log: Logger): Promise<void> {
  const { store, metrics } = ctx.deps;
  const c = classify(err);
  const now = ctx.now();
  if (c.kind === "permanent") {
    const parameterName = err instanceof RcApiError ? err.parameterName : undefined;
    log.warn({ event: "fax.rejected", code: c.code, reason: c.reason, err }, "RingCentral refused the fax permanently");
    await store.transition(job.id, "submitting", "failed", {
      errorCode: c.code,
      errorText: c.reason,
      faxRequest: { ...data, failureAdvice: describeRcError(c.code, parameterName).advice },
      nextAttemptAt: now,
    });
    metrics.faxesFailed.inc({ error_code: c.code });
    alertFailed(ctx, job, c.code, c.reason);
    return;
  }
  const delay = ctx.retry.retryDelay(job.attempts + 1, c);
  if (delay === undefined) {
    if (c.maybeSent) {
      log.warn({ event: "fax.retries_exhausted", code: c.code }, "retries exhausted; checking RingCentral for the fax before giving up");
      await reconcileStep(ctx, job, "failed", c);
      return;
    }
    await giveUp(ctx, job, c, log);
    return;
  }
  log.warn(
    { event: "fax.deferred", code: c.code, reason: c.reason, maybeSent: c.maybeSent, delayMs: delay, attempt: job.attempts + 1, err },
    c.maybeSent ? "fax send failed in a way RingCentral may have processed; will reconcile before resending" : "fax send failed; will retry",
  );
  await store.reschedule(job.id, {
    from: "submitting",
    to: c.maybeSent ? "submitting" : "parsed",
    nextAttemptAt: now + delay,
    error: `${c.code}: ${c.reason}`,
  });
}
