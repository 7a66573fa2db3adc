/**
 * What every outbound step gets: the worker's dependencies, its clock and
 * tuning, the retry policy, the page budgets, and a few helpers they share
 * (reading a job's data and its mail's headers, removing its spool files, the
 * per-recipient status of a RingCentral message).
 */
import type { Config } from "../../config/schema.js";
import { faxStatusOf, isFailedStatus } from "../../fax/status.js";
import type { Logger } from "../../log.js";
import type { MailSender } from "../../mail/transport.js";
import type { Metrics } from "../../metrics.js";
import type { AlertSink } from "../../ops/alerts.js";
import type { AuditSink } from "../../ops/audit.js";
import type { QuotaTracker } from "../../policy/quota.js";
import type { MessageInfo } from "../../rc/client.js";
import type { Spool } from "../../spool/spool.js";
import { LEASE_MS } from "../../tunables.js";
import { recipientKey, type OutboundJob, type OutboundStore, type QuotaStore, type RecipientStatus } from "../../store/ports.js";
import type { PageBudget } from "../cost.js";
import { readJobData, type JobData, type MailMeta } from "../job-data.js";
import { readMailMeta } from "../mail-meta.js";
import type { RetryPolicy } from "../retry-policy.js";
import type { FaxApi } from "./fax-api.js";

export interface WorkerTuning {
  /** How often the queue is looked at when nothing wakes the worker. */
  idlePollMs: number;
  /** Lease of a claimed job; the claim loop renews it every third of this while the job's step runs. */
  leaseMs: number;
  /** The lease a job gets as it enters `submitting` (renewed like any other, by leaseMs). */
  submitLeaseMs: number;
  /** Fax sends in flight at once per sending extension: a pool of k extensions runs k × this many. */
  sendConcurrency: number;
  /** Parse, reconcile and report steps in flight at once. */
  workConcurrency: number;
  /** Status polls in flight at once (each also waits for a Light slot, so it is claimed only when one is free). */
  pollConcurrency: number;
  /** Reconciliation looks this far before submitStartedAt (clock skew between us and RingCentral). */
  reconcileSkewMs: number;
  /** Retry delays are drawn from [d·(1−jitter), d]. */
  jitter: number;
  /** How often the queue-depth gauge is refreshed. */
  gaugeIntervalMs: number;
}

export const DEFAULT_TUNING: WorkerTuning = {
  idlePollMs: 1000,
  leaseMs: LEASE_MS,
  submitLeaseMs: LEASE_MS,
  sendConcurrency: 2,
  workConcurrency: 4,
  pollConcurrency: 4,
  reconcileSkewMs: 2 * 60_000,
  jitter: 0.2,
  gaugeIntervalMs: 5000,
};

export interface OutboundWorkerDeps {
  readonly config: Pick<Config, "fax" | "mail"> &
    Partial<Pick<Config, "retention" | "inbound">> & {
      readonly policy?: {
        readonly abuse: Pick<Config["policy"]["abuse"], "noticesPerAddressPerHour">;
        readonly quotas: Pick<Config["policy"]["quotas"], "pagesPerSenderPerHour" | "pagesGlobalPerHour">;
      };
    };
  readonly store: OutboundStore;
  /** The hourly quota ledger shared by every instance (page quotas, notice rate limits). */
  readonly quota: QuotaStore;
  readonly spool: Spool;
  readonly client: FaxApi;
  readonly mail: MailSender;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly tuning?: Partial<WorkerTuning>;
  /** Where finished jobs are recorded (ids, numbers, pages, outcome; never contents). */
  readonly audit?: AuditSink;
  /** Told when a job fails for good (mail.adminTo). */
  readonly alerts?: AlertSink;
}

/** The worker as its steps see it. */
export interface StepContext {
  readonly deps: OutboundWorkerDeps;
  /** The worker's logger (component "outbound"). */
  readonly log: Logger;
  readonly now: () => number;
  readonly tuning: WorkerTuning;
  readonly retry: RetryPolicy;
  /** fax.maxPages and the hourly page quotas. */
  readonly pages: PageBudget;
  /** Notices for mails that cost nothing, per recipient address per hour (policy.abuse.noticesPerAddressPerHour). */
  readonly notices: QuotaTracker;
  /** True while another job of this process sends to the recipient set `key`. */
  sendingTo(key: string, exceptId: string): boolean;
  /** Wait for the key to be free and take it; call the returned function to give it back. */
  lock(key: string): Promise<() => void>;
  /** Look at the queue now. */
  wake(): void;
  /** Await this side task (a notice) when the worker stops. */
  track(task: Promise<void>): void;
  /** True once the worker is stopping. */
  readonly stopping: boolean;
  /**
   * Fires when the job's lease was lost to another instance (the claim loop's
   * heartbeat found it taken over): stop touching the job, above all send
   * nothing. Present while a claimed job's step runs.
   */
  readonly signal?: AbortSignal;
}

/** "+1 (555) 123-4567", "15551234567" → "+15551234567" for comparing RingCentral's numbers with ours. */
export function normaliseNumber(n: string | undefined): string {
  const digits = (n ?? "").replace(/\D/g, "");
  return digits === "" ? "" : `+${digits}`;
}

/** Per-recipient status of a job from a message-store record. */
export function recipientStatuses(e164s: readonly string[], info: Pick<MessageInfo, "messageStatus" | "to">): RecipientStatus[] {
  const byNumber = new Map<string, { messageStatus?: string | undefined; faxErrorCode?: string | undefined }>();
  for (const t of info.to ?? []) byNumber.set(normaliseNumber(t.phoneNumber), t);
  return e164s.map((e164) => {
    const entry = byNumber.get(normaliseNumber(e164));
    const raw = entry?.messageStatus ?? info.messageStatus ?? "Queued";
    const status = faxStatusOf(raw);
    const code = entry?.faxErrorCode;
    return code !== undefined && code !== "" && isFailedStatus(status) ? { e164, status, faxErrorCode: code } : { e164, status };
  });
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** The job's recipient set as one key (sends to the same set are told apart by reconciliation). */
export function jobKey(job: OutboundJob): string {
  return recipientKey(job.rcptTo.map((r) => r.e164));
}

/** The job's data, or undefined (logged) when it is unreadable. */
export function jobData(ctx: StepContext, job: OutboundJob): JobData | undefined {
  const r = readJobData(job.faxRequest);
  if (!r.ok) {
    ctx.log.error({ event: "job.data_invalid", queueId: job.id, error: r.error }, "job data unreadable; treating it as missing");
    return undefined;
  }
  return r.data;
}

/** The original mail's headers from the spool, or undefined (logged) when they cannot be read. */
export async function mailMetaOf(ctx: StepContext, job: OutboundJob): Promise<MailMeta | undefined> {
  try {
    return await ctx.deps.spool.withLocalFile(job.mailKey, readMailMeta);
  } catch (err) {
    ctx.log.warn({ event: "job.meta_unreadable", queueId: job.id, err }, "could not read the original mail's headers");
    return undefined;
  }
}
