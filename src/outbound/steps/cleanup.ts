/**
 * The job's files in the spool: a fresh work directory before extracting its
 * documents, and removing them once the job is done (cancelled as a
 * duplicate, or notified).
 */
import type { Logger } from "../../log.js";
import type { StepContext } from "./context.js";

/** An empty work directory for the job's extracted documents. */
export async function freshWorkDir(ctx: StepContext, id: string): Promise<string> {
  return ctx.deps.spool.freshWorkDir(id);
}

/** Remove the job's spool files (unless a retention period keeps them for the janitor). */
export async function cleanup(ctx: StepContext, id: string, log: Logger): Promise<void> {
  // With a retention period the janitor (src/ops/janitor.ts) removes them later.
  if ((ctx.deps.config.retention?.documentsHours ?? 0) > 0) return;
  try {
    await ctx.deps.spool.remove(id);
  } catch (err) {
    log.error({ event: "spool.remove_failed", err }, "could not remove the job's spool files");
  }
}
