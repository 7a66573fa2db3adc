import type { Config } from "../config/schema.js";
import { isFailedStatus } from "../fax/status.js";
import { routeFax } from "../inbound/route.js";
import { readJobData } from "../outbound/job-data.js";
import { describeFaxError } from "../outbound/fax-errors.js";
import type { InboundFax } from "../store/inbound.js";
import type { JobState, OutboundJob } from "../store/outbound.js";

/** Job and received-fax records as the API (and the console) show them: plain words, no internals like spool paths. */

export const STATE_WORDS: Record<JobState, string> = {
  received: "accepted, waiting to be read",
  parsed: "waiting to be sent to RingCentral",
  submitting: "being handed to RingCentral",
  submitted: "accepted by RingCentral, being faxed",
  final: "done; the report is being sent",
  failed: "could not be faxed",
  notified: "done",
  cancelled: "cancelled",
};

export interface FaxView {
  id: string;
  state: JobState;
  stateText: string;
  sender: string;
  submittedBy: string | null;
  receivedAt: string;
  updatedAt: string;
  pages: number | null;
  documents: { filename: string; size: number }[];
  recipients: { number: string; status: string; error: string | null }[];
  error: string | null;
  rcMessageId: string | null;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function faxView(job: OutboundJob): FaxView {
  const parsed = readJobData(job.faxRequest);
  const data = parsed.ok ? parsed.data : undefined;
  return {
    id: job.id,
    state: job.state,
    stateText: STATE_WORDS[job.state],
    sender: job.mailFrom,
    submittedBy: job.client.user ?? null,
    receivedAt: iso(job.receivedAt),
    updatedAt: iso(job.updatedAt),
    pages: data?.pages ?? null,
    documents: (data?.documents ?? []).map((d) => ({ filename: d.filename, size: d.size })),
    recipients: job.rcptTo.map((r) => {
      const s = job.status?.find((x) => x.e164 === r.e164);
      const failed = s !== undefined && isFailedStatus(s.status);
      const settled = s !== undefined && s.status !== "Queued" && s.status !== "Unknown";
      // A job that ended before this recipient had a final status: say how it ended.
      const ended = job.state === "failed" ? "Failed" : job.state === "cancelled" || job.errorCode === "cancelled" ? "Cancelled" : undefined;
      return {
        number: r.e164,
        status: settled ? s.status : (ended ?? s?.status ?? "Queued"),
        error: failed ? describeFaxError(s.faxErrorCode).advice : null,
      };
    }),
    error: job.errorText ?? data?.refusal?.message ?? job.lastError,
    rcMessageId: job.rcMessageId,
  };
}

export interface InboundView {
  id: string;
  state: string;
  from: string;
  fromName: string | null;
  to: string[];
  pages: number | null;
  receivedAt: string;
  mailTo: string[];
  deliveredAt: string | null;
  error: string | null;
}

/** Where a received fax is (or will be) mailed: its recorded route, else the route the config gives it now. */
export function routedTo(config: Pick<Config, "inbound">, fax: InboundFax): readonly string[] {
  if (fax.route !== null) return fax.route.mailTo;
  return routeFax({ to: fax.message.to, extensions: [fax.extension], from: fax.message.from }, config.inbound.routes, config.inbound.defaultTo).mailTo;
}

export function inboundView(config: Pick<Config, "inbound">, fax: InboundFax): InboundView {
  return {
    id: fax.id,
    state: fax.state,
    from: fax.message.from,
    fromName: fax.message.fromName ?? null,
    to: [...fax.message.to],
    pages: fax.message.pages ?? null,
    receivedAt: fax.message.creationTime,
    mailTo: [...routedTo(config, fax)],
    deliveredAt: fax.deliveredAt === null ? null : iso(fax.deliveredAt),
    error: fax.lastError,
  };
}
