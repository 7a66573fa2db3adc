/**
 * A send that will not be retried: the job fails for good with the error in
 * words, counted, and the operator is told (mail.adminTo).
 */
import type { Logger } from "../../log.js";
import type { OutboundJob } from "../../store/outbound.js";
import type { Classification } from "../classify.js";
import type { StepContext } from "./context.js";

/** submitting → failed once the retry schedule is exhausted. */
export async function giveUp(ctx: StepContext, job: OutboundJob, c: Classification, log: Logger): Promise<void> {
  log.error({ event: "fax.gave_up", code: c.code, attempts: job.attempts + 1 }, "fax retries exhausted");
  await ctx.deps.store.transition(job.id, "submitting", "failed", {
    errorCode: c.code,
    errorText: `${c.reason} (gave up after ${job.attempts + 1} attempts)`,
    nextAttemptAt: ctx.now(),
  });
  ctx.deps.metrics.faxesFailed.inc({ error_code: c.code });
  alertFailed(ctx, job, c.code, `${c.reason} (gave up after ${job.attempts + 1} attempts)`);
}

/** Tell the operator a job failed for good. */
export function alertFailed(ctx: StepContext, job: OutboundJob, code: string, reason: string): void {
  ctx.deps.alerts?.({
    kind: "job_failed",
    summary: `fax job ${job.id} failed for good`,
    details: { job: job.id, to: job.rcptTo.map((r) => r.e164).join(", "), sender: job.mailFrom, code, reason },
  });
}
