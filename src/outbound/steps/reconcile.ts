/**
 * submitting (found after a crash, or after an answer that may have been
 * processed): find the fax the job may have created and adopt it
 * (→ submitted), or, when RingCentral has none, move on (`parsed` for a fresh
 * attempt, or `failed`).
 *
 * Reconciliation looks for an outbound fax to the same recipient set created
 * after submitStartedAt minus `reconcileSkewMs` that no other job owns. Every
 * POST carries the job's tag (../tag.ts): a fax tagged with this job is
 * adopted first, a fax tagged with another job never (another instance may be
 * sending to the same numbers at the same time). Only faxes without any tag
 * (sent before tags existed) fall back to the oldest unowned fax to these
 * recipients with the same cover text. On start every interrupted submission
 * is reconciled before the first send.
 */
import { errorMessage } from "../../errors.js";
import type { MessageInfo } from "../../rc/client.js";
import { recipientKey, type OutboundJob } from "../../store/outbound.js";
import { classify, type Classification } from "../classify.js";
import type { JobData } from "../job-data.js";
import { attemptTargets, isEarlierAttempt, mergeStatuses } from "../redial.js";
import { isoTime, jobData, normaliseNumber, recipientStatuses, type StepContext } from "./context.js";
import { giveUp } from "./give-up.js";
import { tagOf } from "../tag.js";

/** Reconcile every submission a crash interrupted (on start, before the first send). */
export async function reconcileInterrupted(ctx: StepContext, onFailure: (job: OutboundJob, err: unknown) => Promise<void>): Promise<void> {
  const jobs = await ctx.deps.store.findInterruptedSubmissions(ctx.now());
  if (jobs.length > 0) ctx.log.warn({ event: "worker.interrupted_submissions", count: jobs.length }, "reconciling interrupted fax submissions");
  for (const job of jobs) {
    if (ctx.stopping) return;
    try {
      await reconcileStep(ctx, job, "parsed");
    } catch (err) {
      await onFailure(job, err);
    }
  }
}

export async function reconcileStep(ctx: StepContext, job: OutboundJob, notFound: "parsed" | "failed", cause?: Classification): Promise<void> {
  const { store } = ctx.deps;
  const log = ctx.log.child({ queueId: job.id });
  const key = recipientKey(attemptTargets(job, jobData(ctx, job)));
  if (ctx.sendingTo(key, job.id)) {
    // A send to the same numbers is in flight here: its fax could be mistaken for ours. Look again shortly.
    await store.reschedule(job.id, { from: "submitting", nextAttemptAt: ctx.now() + ctx.tuning.idlePollMs, error: "reconcile: waiting for a send to the same numbers" });
    return;
  }
  const data = jobData(ctx, job);
  const since = (job.submitStartedAt ?? job.receivedAt) - ctx.tuning.reconcileSkewMs;
  let found: MessageInfo | undefined;
  try {
    found = await findFax(ctx, job, key, since, data);
  } catch (err) {
    const delay = ctx.retry.backoff(job.attempts + 1);
    log.warn({ event: "fax.reconcile_deferred", err, delayMs: delay }, "could not search RingCentral's message store; will try again (never resending blindly)");
    await store.reschedule(job.id, { from: "submitting", nextAttemptAt: ctx.now() + delay, error: `reconcile: ${errorMessage(err)}` });
    return;
  }
  const now = ctx.now();
  if (found !== undefined) {
    const created = Date.parse(found.creationTime ?? "");
    const statuses = mergeStatuses(job, data, recipientStatuses(attemptTargets(job, data), found));
    await store.transition(job.id, "submitting", "submitted", {
      lastError: null,
      rcMessageId: found.id,
      rcExtensionId: found.extensionId ?? null,
      status: statuses,
      ...(data !== undefined && { faxRequest: { ...data, submittedAt: Number.isFinite(created) ? created : now } }),
      nextAttemptAt: now,
    });
    ctx.deps.metrics.faxesSubmitted.inc();
    log.info({ event: "fax.reconciled", outcome: "adopted", rcMessageId: found.id }, "found the fax at RingCentral; adopted it");
    return;
  }
  if (notFound === "parsed") {
    await store.transition(job.id, "submitting", "parsed", { submitStartedAt: null, nextAttemptAt: now });
    log.info({ event: "fax.reconciled", outcome: "not_found" }, "RingCentral has no such fax; it will be sent again");
    ctx.wake();
    return;
  }
  await giveUp(ctx, job, cause ?? classify(undefined), log);
}

async function findFax(ctx: StepContext, job: OutboundJob, key: string, since: number, data: JobData | undefined): Promise<MessageInfo | undefined> {
  /** Faxes tagged with this job (the POST carried the tag): ours, whatever else is sent to these numbers. */
  const tagged: Candidate[] = [];
  /** Faxes without a tag (sent before tags, or a resend of an untagged fax): the old heuristic. */
  const untaggedFaxes: Candidate[] = [];
  const ours = await ownTags(ctx, job, data);
  for await (const m of ctx.deps.client.listMessages({ messageType: ["Fax"], direction: ["Outbound"], dateFrom: isoTime(since), perPage: 250 })) {
    if (m.direction !== undefined && m.direction !== "Outbound") continue;
    if (m.type !== undefined && m.type !== "Fax") continue;
    if (isEarlierAttempt(data, m.id)) continue;
    const created = Date.parse(m.creationTime ?? "");
    if (Number.isFinite(created) && created < since) continue;
    if (recipientKey((m.to ?? []).map((t) => normaliseNumber(t.phoneNumber))) !== key) continue;
    const candidate = { info: m, created: Number.isFinite(created) ? created : Number.MAX_SAFE_INTEGER };
    const tag = tagOf(m.coverPageText);
    if (tag !== undefined) {
      // Never a fax tagged for another job (another instance's send to the same numbers).
      if (ours.has(tag.jobId)) tagged.push(candidate);
      continue;
    }
    const cover = data?.request?.coverPageText;
    if (cover !== undefined && m.coverPageText !== undefined && m.coverPageText !== cover) continue;
    untaggedFaxes.push(candidate);
  }
  for (const list of [tagged, untaggedFaxes]) {
    list.sort((a, b) => a.created - b.created);
    for (const c of list) {
      const owner = await ownerOf(ctx, c.info.id);
      if (owner === undefined || owner === job.id) return c.info;
    }
  }
  return undefined;
}

interface Candidate {
  readonly info: MessageInfo;
  readonly created: number;
}

/**
 * The job ids a fax of this job may be tagged with: its own, and for a
 * forward (X-Fax-Forward-Of) the job that sent the original, whose cover
 * text, tag included, RingCentral copies into the resend.
 */
async function ownTags(ctx: StepContext, job: OutboundJob, data: JobData | undefined): Promise<Set<string>> {
  const ids = new Set([job.id]);
  if (data?.forwardOf !== undefined) {
    const original = await ctx.deps.store.findByRcMessageId(data.forwardOf);
    if (original !== undefined) ids.add(original.id);
  }
  return ids;
}

/** The job that recorded this RingCentral message id, if any (an index lookup in the store). */
async function ownerOf(ctx: StepContext, rcMessageId: string): Promise<string | undefined> {
  return (await ctx.deps.store.findByRcMessageId(rcMessageId, ["submitted", "final", "notified", "failed"]))?.id;
}
