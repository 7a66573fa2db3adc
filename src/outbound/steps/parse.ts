/**
 * received → parsed: parse the spooled mail, then the duplicate check,
 * preflight and the page budget; or failed with the refusal (the sender gets a
 * notice), or cancelled as a duplicate (no report: the usual cause is a client
 * resending after a lost 250, and the sender gets the original job's report).
 */
import { errorMessage } from "../../errors.js";
import type { FaxDocumentFile } from "../../fax/model.js";
import { mailMetaFields } from "../../fax/meta.js";
import type { Logger } from "../../log.js";
import { DuplicateJobError, recipientKey, workPrefix, type DuplicateQuery, type OutboundJob } from "../../store/ports.js";
import type { CostVerdict } from "../cost.js";
import { emptyJobData, type JobData, type MailMeta, type StoredDocument } from "../job-data.js";
import { ExtractError, parseFaxMail, type FaxRefusal } from "../parse.js";
import { preflight } from "../preflight.js";
import { cleanup, freshWorkDir } from "./cleanup.js";
import { jobData, mailMetaOf, type StepContext } from "./context.js";
import { storeDocuments } from "./documents.js";

/** Extract the job's mail into a fresh work directory (the submit step uses it too when the documents were lost). */
export async function parseMail(ctx: StepContext, job: OutboundJob, log: Logger): Promise<Awaited<ReturnType<typeof parseFaxMail>>> {
  const workDir = await freshWorkDir(ctx, job.id);
  return ctx.deps.spool.withLocalFile(job.mailKey, (rawPath) =>
    parseFaxMail({
      rawPath,
      workDir,
      envelope: job,
      config: ctx.deps.config.fax,
      timeZone: ctx.deps.config.mail.timeZone,
      now: new Date(ctx.now()),
      log,
    }),
  );
}

export async function parseStep(ctx: StepContext, job: OutboundJob): Promise<void> {
  const { store, config } = ctx.deps;
  const log = ctx.log.child({ queueId: job.id });
  let result;
  try {
    result = await parseMail(ctx, job, log);
  } catch (err) {
    if (!(err instanceof ExtractError)) throw err;
    const delay = ctx.retry.retryDelay(job.attempts + 1);
    if (delay === undefined) {
      log.error({ event: "fax.parse_failed", err }, "could not extract the mail's documents; giving up");
      await store.transition(job.id, "received", "failed", {
        errorCode: "internal",
        errorText: "the gateway could not read the stored email",
        faxRequest: emptyJobData((await mailMetaOf(ctx, job)) ?? { references: [], isReport: false }),
        nextAttemptAt: ctx.now(),
      });
      ctx.deps.metrics.faxesFailed.inc({ error_code: "internal" });
      await dropExtracted(ctx, job.id, log);
      return;
    }
    log.warn({ event: "fax.parse_deferred", err }, "could not extract the mail's documents; will retry");
    await store.reschedule(job.id, { from: "received", nextAttemptAt: ctx.now() + delay, error: errorMessage(err) });
    return;
  }
  if (!result.ok) {
    const meta = (await mailMetaOf(ctx, job)) ?? { references: [], isReport: false };
    await refuse(ctx, job, result.refusal, meta, log);
    return;
  }
  const mail = result.mail;
  const meta = mailMetaFields(mail.meta);
  // Copies of one mail (a client resending after a lost 250) can be parsed at the same time; the duplicate check
  // only sees a Message-ID once its job is parsed, so check and record one Message-ID at a time.
  const release = meta.messageId === undefined ? undefined : await ctx.lock(`${meta.messageId}\n${job.identity}\n${recipientKey(job.rcptTo.map((r) => r.e164))}`);
  try {
    const windowMs = config.fax.duplicateWindowSeconds * 1000;
    const dupQuery: DuplicateQuery | undefined =
      meta.messageId !== undefined && windowMs > 0
        ? { messageId: meta.messageId, identity: job.identity, recipients: job.rcptTo.map((r) => r.e164), since: job.receivedAt - windowMs, excludeId: job.id }
        : undefined;
    const duplicate = async (dup: OutboundJob): Promise<void> => {
      await store.transition(job.id, "received", "cancelled", { messageId: meta.messageId ?? null, errorCode: "duplicate", errorText: `duplicate of ${dup.id}` });
      log.info({ event: "job.duplicate", duplicateOf: dup.id, messageId: meta.messageId }, "same Message-ID to the same recipients already queued; not faxed again");
      await cleanup(ctx, job.id, log);
    };
    if (dupQuery !== undefined) {
      const dup = await store.findDuplicate(dupQuery);
      if (dup !== undefined) {
        await duplicate(dup);
        return;
      }
    }
    const pre = await preflight(mail.documents, mail.request);
    if (!pre.ok) {
      await refuse(ctx, job, pre.refusal, meta, log);
      return;
    }
    // Pages before money: fax.maxPages and the hourly page quotas.
    const cost = await assessCost(ctx, job, mail.documents, mail.forwardOf);
    if (cost !== undefined && !cost.ok) {
      await refuse(ctx, job, cost.refusal, meta, log);
      return;
    }
    let documents: StoredDocument[];
    try {
      documents = await storeDocuments(ctx, job.id, mail.documents);
    } catch (err) {
      if (cost?.ok === true) await cost.release();
      throw err;
    }
    const data: JobData = {
      ...emptyJobData(meta),
      request: mail.request,
      documents,
      skipped: mail.meta.skipped,
      ...(mail.forwardOf !== undefined && { forwardOf: mail.forwardOf }),
      ...(cost?.pages !== undefined && { countedPages: cost.pages }),
      ...(cost !== undefined && cost.charged > 0 && { chargedPages: cost.charged }),
    };
    try {
      // The duplicate check again, atomically with the transition: another instance may have parsed a copy meanwhile.
      await store.transition(job.id, "received", "parsed", { messageId: meta.messageId ?? null, faxRequest: data, nextAttemptAt: ctx.now() }, dupQuery === undefined ? undefined : { unlessDuplicate: dupQuery });
    } catch (err) {
      if (cost?.ok === true) await cost.release();
      if (!(err instanceof DuplicateJobError)) throw err;
      await duplicate(err.duplicate);
    }
  } finally {
    release?.();
  }
}

/** The pages of a new fax against fax.maxPages and the page quotas; a forward of a received fax is charged by RingCentral's count later. */
async function assessCost(ctx: StepContext, job: OutboundJob, documents: readonly FaxDocumentFile[], forwardOf: string | undefined): Promise<CostVerdict | undefined> {
  if (forwardOf === undefined) return ctx.pages.assess(job.identity, documents, job.rcptTo.length);
  const original = await ctx.deps.store.findSentBy(forwardOf, job.identity);
  const data = original === undefined ? undefined : jobData(ctx, original);
  const pages = data?.countedPages ?? data?.pages;
  return pages === undefined ? undefined : ctx.pages.assessKnown(job.identity, `fax ${forwardOf}`, pages, job.rcptTo.length);
}

/** The mail cannot become a fax: failed with the refusal, so the sender gets a notice. */
export async function refuse(ctx: StepContext, job: OutboundJob, refusal: FaxRefusal, meta: MailMeta, log: Logger): Promise<void> {
  const data: JobData = { ...emptyJobData(meta), refusal: { rule: refusal.rule, message: refusal.message, ...(refusal.filename !== undefined && { filename: refusal.filename }) } };
  await ctx.deps.store.transition(job.id, job.state, "failed", {
    messageId: meta.messageId ?? null,
    errorCode: refusal.rule,
    errorText: refusal.message,
    faxRequest: data,
    nextAttemptAt: ctx.now(),
  });
  ctx.deps.metrics.faxesFailed.inc({ error_code: refusal.rule });
  await dropExtracted(ctx, job.id, log);
  log.info({ event: "fax.refused", rule: refusal.rule, filename: refusal.filename }, "mail refused; the sender gets a notice");
}

/** The documents extracted for a job that will not be faxed: not needed for its notice (wherever that is sent from), removed now. */
async function dropExtracted(ctx: StepContext, id: string, log: Logger): Promise<void> {
  try {
    await ctx.deps.spool.documents.remove(workPrefix(id));
  } catch (err) {
    log.warn({ event: "spool.remove_failed", err }, "could not remove the extracted documents of a refused mail");
  }
}
