import { createReadStream } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { NamedError } from "../errors.js";
import { mimeForFilename } from "../fax/files.js";
import type { InboundFax, InboundState } from "../store/inbound.js";
import { cancelJob, OperatorRefusal, type CancelResult } from "../outbound/operator.js";
import type { JobState, OutboundJob } from "../store/outbound.js";
import { canSeeInbound, canSeeJob, type Identity } from "./auth.js";
import type { WebContext } from "./context.js";
import { routedTo } from "./views-data.js";

/**
 * The operations the API and the console share on jobs and received faxes,
 * each checked against what the identity may see. A fax the identity may not
 * see is reported exactly like one that does not exist.
 */

export class ActionError extends NamedError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export async function visibleJob(ctx: WebContext, who: Identity, id: string): Promise<OutboundJob> {
  const job = /^[A-Za-z0-9_-]{1,64}$/.test(id) ? await ctx.outbound.get(id) : undefined;
  if (job === undefined || !canSeeJob(who, job)) throw new ActionError(404, `no fax with id ${id}`);
  return job;
}

/** Keyset paging over what the identity may see: ids sort by time. */
export function listJobs(
  ctx: WebContext,
  who: Identity,
  opts: { state?: JobState[] | undefined; after?: string | undefined; limit: number; filter?: (j: OutboundJob) => boolean; newestFirst?: boolean },
): Promise<{ items: OutboundJob[]; next: string | null }> {
  const desc = opts.newestFirst === true;
  return visiblePages(
    (after) =>
      ctx.outbound.list({
        limit: PAGE,
        ...(opts.state !== undefined && { state: opts.state }),
        ...(after !== undefined && (desc ? { before: after, newestFirst: true } : { after })),
        ...(desc && { newestFirst: true }),
      }),
    (j) => canSeeJob(who, j) && (opts.filter?.(j) ?? true),
    opts,
  );
}

const PAGE = 200;

/** Reads store pages from `opts.after` on (at most 20) until `opts.limit` visible rows are found; `next` is the cursor for the page after. */
async function visiblePages<T extends { readonly id: string }>(
  read: (after: string | undefined) => Promise<T[]>,
  visible: (row: T) => boolean,
  opts: { after?: string | undefined; limit: number },
): Promise<{ items: T[]; next: string | null }> {
  const items: T[] = [];
  let after = opts.after;
  for (let round = 0; round < 20 && items.length < opts.limit; round++) {
    const page = await read(after);
    for (const row of page) {
      if (visible(row)) items.push(row);
      if (items.length === opts.limit) break;
    }
    if (page.length < PAGE) return { items, next: items.length === opts.limit ? (items.at(-1)?.id ?? null) : null };
    after = page.at(-1)?.id;
  }
  return { items, next: items.at(-1)?.id ?? null };
}

/**
 * Cancel one fax by the operator rules `faxbridge queue cancel` follows
 * (src/outbound/operator.ts): withdrawn when it has not gone out; a scheduled
 * fax RingCentral holds is deleted there by the worker (woken now) and the
 * answer waits for that to be confirmed. Returns the job as it then is.
 */
export async function cancelFax(ctx: WebContext, who: Identity, id: string): Promise<OutboundJob> {
  const job = await visibleJob(ctx, who, id);
  let result: CancelResult;
  try {
    result = await cancelJob(ctx.outbound, job.id, {
      by: who.user,
      removeFiles: (jobId) => ctx.spool.remove(jobId),
      onRemoveFailed: (err) => ctx.logger.warn({ event: "web.cancel_cleanup_failed", queueId: id, err }, "cancelled, but the spool files stay"),
      onRequested: () => ctx.wakeOutbound(),
      now: ctx.now,
    });
  } catch (err) {
    if (err instanceof OperatorRefusal) throw new ActionError(err.status, err.message);
    throw err;
  }
  ctx.logger.info({ event: "web.cancelled", queueId: id, by: who.user, was: job.state }, result.message);
  return visibleJob(ctx, who, id);
}

export async function visibleInbound(ctx: WebContext, who: Identity, id: string): Promise<InboundFax> {
  const fax = /^[A-Za-z0-9_-]{1,64}$/.test(id) ? await ctx.inbound.get(id) : undefined;
  if (fax === undefined || !canSeeInbound(who, routedTo(ctx.config, fax))) throw new ActionError(404, `no received fax with id ${id}`);
  return fax;
}

export function listInbound(
  ctx: WebContext,
  who: Identity,
  opts: { state?: InboundState[] | undefined; after?: string | undefined; limit: number; newestFirst?: boolean },
): Promise<{ items: InboundFax[]; next: string | null }> {
  const desc = opts.newestFirst === true;
  return visiblePages(
    (after) =>
      ctx.inbound.listInbound({
        limit: PAGE,
        ...(opts.state !== undefined && { state: opts.state }),
        ...(after !== undefined && (desc ? { before: after } : { after })),
        ...(desc && { newestFirst: true }),
      }),
    (f) => canSeeInbound(who, routedTo(ctx.config, f)),
    opts,
  );
}

/** The kept copy of a received fax's first document, if the retention rules still keep one. */
export async function localDocument(ctx: WebContext, fax: InboundFax): Promise<{ path: string; contentType: string } | undefined> {
  const dir = join(ctx.inboundDir, fax.id);
  const names = await readdir(dir).catch(() => [] as string[]);
  const local = names.filter((n) => /^\d+-/.test(n) && !n.endsWith(".part")).sort()[0];
  if (local === undefined) return undefined;
  return { path: join(dir, local), contentType: mimeForFilename(local) };
}

/** The received fax's PDF, streamed: the kept copy when there is one, else straight from RingCentral. */
export async function inboundDocument(ctx: WebContext, fax: InboundFax): Promise<{ body: Readable; contentType: string; size?: number | undefined }> {
  const local = await localDocument(ctx, fax);
  if (local !== undefined) return { body: createReadStream(local.path), contentType: local.contentType };
  const att = fax.message.attachments.find((a) => a.type === undefined || a.type === "RenderedDocument") ?? fax.message.attachments[0];
  if (att === undefined) throw new ActionError(404, `received fax ${fax.id} has no document`);
  try {
    const r = await ctx.client.downloadContent(att.uri);
    return { body: r.body, contentType: r.contentType, size: r.contentLength };
  } catch (err) {
    ctx.logger.warn({ event: "web.document_unavailable", faxId: fax.id, err }, "could not fetch a received fax from RingCentral");
    throw new ActionError(502, "the document could not be fetched from RingCentral; try again later");
  }
}

export async function redeliverInbound(ctx: WebContext, who: Identity, id: string): Promise<InboundFax> {
  await visibleInbound(ctx, who, id);
  const after = await ctx.inbound.redeliver(id, ctx.now());
  if (after === undefined) throw new ActionError(409, `received fax ${id} cannot be redelivered right now`);
  ctx.logger.info({ event: "web.redeliver", faxId: id, by: who.user }, "received fax queued for delivery again");
  ctx.wakeInbound();
  return after;
}
