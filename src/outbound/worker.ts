/**
 * The outbound engine: takes accepted mails from the durable queue, turns
 * them into faxes, sends them through RingCentral at the allowed rate,
 * follows each to its final status and tells the sender how it went.
 *
 * One step per claim, each ending in a persisted transition (the store logs
 * `job.<state>`; this module adds `fax.*` and `report.*` events):
 *
 *   received   → parse the spooled mail → duplicate check → preflight → parsed
 *                (or failed with the refusal; or cancelled as a duplicate)
 *   parsed     → submitting (submitStartedAt persisted BEFORE the POST)
 *                → sendFax / resendFax → submitted (RingCentral message id)
 *   submitting → (found after a crash, or after an answer that may have been
 *                processed) reconcile with the message store → submitted, or
 *                back to parsed when RingCentral has no such fax
 *   submitted  → poll getMessage per fax.statusPollSchedule → final, or back
 *                to parsed to redial busy / no-answer recipients (redial.ts)
 *   final / failed → sender report → notified (spool files removed)
 *
 * Decisions worth knowing:
 * - Duplicates (same Message-ID and recipient set within
 *   fax.duplicateWindowSeconds of an earlier live job) are cancelled with
 *   errorCode "duplicate" and errorText "duplicate of <id>", logged as
 *   `job.duplicate`, and get no report: the usual cause is a client resending
 *   after a lost 250, and the sender gets the original job's report.
 * - Pacing comes from the client's Heavy limiter. The send lane only claims a
 *   parsed job when the limiter has a free slot and is not held, and runs at
 *   most `sendConcurrency` sends, so a burst waits in the queue (state
 *   parsed), not inside a POST with a job stuck in `submitting`. Status polls
 *   have their own lane gated the same way on the Light group, so a backlog of
 *   polls never holds up parsing and reports.
 * - A send that fails with 429, or a network error before any byte went out,
 *   goes back to `parsed` and is retried per fax.retrySchedule (jitter,
 *   Retry-After honoured). A 5xx, a network error after the request went out
 *   or an unreadable 2xx may have created the fax: the job stays `submitting`
 *   and is reconciled before any resend. 4xx fails permanently (classify.ts).
 * - Reconciliation looks for an outbound fax to the same recipient set created
 *   after submitStartedAt minus `reconcileSkewMs` that no other job owns, and
 *   adopts the oldest; otherwise the job returns to `parsed`. On start every
 *   interrupted submission is reconciled before the first send.
 * - Final status per recipient: every status but Queued. RingCentral reports
 *   a fax that went through as `Sent` and one that did not as `SendingFailed`
 *   (the spec's MessageStatusEnum, RingCentral's fax FAQ); nothing follows
 *   `Sent`, so it is final at once (Delivered and DeliveryFailed are final
 *   too should they appear). After fax.statusTimeoutHours (counted from the
 *   later of submission and sendTime) a fax still Queued is final with what
 *   is known.
 * - Reports go to the envelope sender (see report.ts); loop-unsafe senders
 *   get none (`report.suppressed`). A temporary mail failure retries per
 *   fax.retrySchedule; a permanent one (or an exhausted schedule) is logged
 *   at error (`report.failed`) and the job still becomes notified, with the
 *   outcome recorded in the job data.
 * - One worker per store: leases protect against a second process, but
 *   reconciliation assumes no other process sends for the same store.
 */
import type { AlertSink } from "../ops/alerts.js";
import { access } from "node:fs/promises";
import type { Config } from "../config/schema.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { AuditSink } from "../ops/audit.js";
import { MailDeliveryError, type MailSender } from "../mail/transport.js";
import type { Metrics } from "../metrics.js";
import { normaliseAddress } from "../policy/identity.js";
import { QuotaTracker } from "../policy/quota.js";
import { PageBudget, type CostVerdict } from "./cost.js";
import type { FaxDocument, MessageInfo, RingCentralClient, SendFaxRequest } from "../rc/client.js";
import { fetchTransmittedCopy, type TransmittedCopy } from "./transmitted.js";
import { cancelScheduledFax } from "./cancel.js";
import { RcApiError } from "../rc/errors.js";
import type { Spool } from "../spool/spool.js";
import { DuplicateJobError, StateConflictError, recipientKey, type DuplicateQuery, type JobState, type OutboundJob, type OutboundStore, type RecipientStatus } from "../store/ports.js";
import { delayFor, parseSchedule, pollDelay } from "../util/schedule.js";
import { classify, describeRcError, type Classification } from "./classify.js";
import { emptyJobData, readJobData, type JobData, type MailMeta } from "./job-data.js";
import { readMailMeta } from "./mail-meta.js";
import { ExtractError, parseFaxMail, type FaxRefusal, type ParsedFaxMail } from "./parse.js";
import { preflight } from "./preflight.js";
import { composeReport, suppressReason, type ReportInput, type ReportKind } from "./report.js";
import { attemptTargets, isEarlierAttempt, mergeStatuses, planRedial, redialAttempts, redialResend, redialSchedule } from "./redial.js";

type Lane = "work" | "send" | "poll";

/** The RingCentral calls the worker makes (RingCentralClient satisfies it). */
export type FaxApi = Pick<RingCentralClient, "sendFax" | "resendFax" | "getMessage" | "listMessages" | "rateLimitState" | "deleteMessage" | "downloadContent">;

export interface WorkerTuning {
  /** How often the queue is looked at when nothing wakes the worker. */
  idlePollMs: number;
  /** Lease for parse, poll, reconcile and report steps. */
  leaseMs: number;
  /** Lease while a job is submitting (covers a slot wait and a 50 MB upload). */
  submitLeaseMs: number;
  /** Fax sends in flight at once. */
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
  leaseMs: 5 * 60_000,
  submitLeaseMs: 15 * 60_000,
  sendConcurrency: 2,
  workConcurrency: 4,
  pollConcurrency: 4,
  reconcileSkewMs: 2 * 60_000,
  jitter: 0.2,
  gaugeIntervalMs: 5000,
};

export interface WorkerHooks {
  /** Runs after RingCentral accepted a fax and before the id is recorded; a throw simulates a crash there (tests). */
  beforeRecordSubmit?: (jobId: string, rcMessageId: string) => Promise<void> | void;
}

export interface OutboundWorkerDeps {
  readonly config: Pick<Config, "fax" | "mail"> &
    Partial<Pick<Config, "retention" | "inbound">> & {
      readonly policy?: {
        readonly abuse: Pick<Config["policy"]["abuse"], "noticesPerAddressPerHour">;
        readonly quotas: Pick<Config["policy"]["quotas"], "pagesPerSenderPerHour" | "pagesGlobalPerHour">;
      };
    };
  readonly store: OutboundStore;
  readonly spool: Spool;
  readonly client: FaxApi;
  readonly mail: MailSender;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly tuning?: Partial<WorkerTuning>;
  readonly hooks?: WorkerHooks;
  /** Where finished jobs are recorded (ids, numbers, pages, outcome; never contents). */
  readonly audit?: AuditSink;
  /** Told when a job fails for good (mail.adminTo). */
  readonly alerts?: AlertSink;
}

const WORK_STATES: readonly JobState[] = ["received", "submitting", "final", "failed"];
const FINAL_STATUSES = new Set(["Sent", "Delivered", "SendingFailed", "DeliveryFailed"]);
const KNOWN_STATUSES = new Set(["Queued", "Sent", "Delivered", "SendingFailed", "DeliveryFailed"]);

/** "+1 (555) 123-4567", "15551234567" → "+15551234567" for comparing RingCentral's numbers with ours. */
function normaliseNumber(n: string | undefined): string {
  const digits = (n ?? "").replace(/\D/g, "");
  return digits === "" ? "" : `+${digits}`;
}

function toSendRequest(req: NonNullable<JobData["request"]>): SendFaxRequest {
  const out: SendFaxRequest = {
    to: req.to.map((t) => (t.name !== undefined ? { phoneNumber: t.phoneNumber, name: t.name } : { phoneNumber: t.phoneNumber })),
    faxResolution: req.faxResolution,
  };
  if (req.coverIndex !== undefined) out.coverIndex = req.coverIndex;
  if (req.coverPageText !== undefined) out.coverPageText = req.coverPageText;
  if (req.sendTime !== undefined) out.sendTime = req.sendTime;
  if (req.isoCode !== undefined) out.isoCode = req.isoCode;
  return out;
}

function metaFromParsed(mail: ParsedFaxMail): MailMeta {
  const m = mail.meta;
  const meta: MailMeta = { references: m.references, isReport: m.isReport };
  if (m.messageId !== undefined) meta.messageId = m.messageId;
  if (m.subject !== undefined) meta.subject = m.subject;
  if (m.from !== undefined) meta.from = m.from;
  if (m.autoSubmitted !== undefined) meta.autoSubmitted = m.autoSubmitted;
  if (m.precedence !== undefined) meta.precedence = m.precedence;
  if (m.xAutoResponseSuppress !== undefined) meta.xAutoResponseSuppress = m.xAutoResponseSuppress;
  return meta;
}

/** Per-recipient status of a job from a message-store record. */
export function recipientStatuses(e164s: readonly string[], info: Pick<MessageInfo, "messageStatus" | "to">): RecipientStatus[] {
  const byNumber = new Map<string, { messageStatus?: string | undefined; faxErrorCode?: string | undefined }>();
  for (const t of info.to ?? []) byNumber.set(normaliseNumber(t.phoneNumber), t);
  return e164s.map((e164) => {
    const entry = byNumber.get(normaliseNumber(e164));
    const raw = entry?.messageStatus ?? info.messageStatus ?? "Queued";
    const status = (KNOWN_STATUSES.has(raw) ? raw : "Unknown") as RecipientStatus["status"];
    const code = entry?.faxErrorCode;
    return code !== undefined && code !== "" && (status === "SendingFailed" || status === "DeliveryFailed") ? { e164, status, faxErrorCode: code } : { e164, status };
  });
}

function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

export class OutboundWorker {
  readonly #deps: OutboundWorkerDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #tuning: WorkerTuning;
  readonly #retrySchedule: readonly number[];
  readonly #pollSchedule: readonly number[];
  readonly #redialSchedule: readonly number[];
  /** Jobs being worked on in this process, by id, with their recipient key. */
  readonly #inFlight = new Map<string, { promise: Promise<void>; lane: Lane; key: string }>();
  /** Jobs whose failed step could not be rescheduled (database unwritable), still leased to this process. */
  readonly #stranded = new Map<string, { from: JobState; error: string }>();
  /** Per-key mutexes (see #lock). */
  readonly #locks = new Map<string, Promise<void>>();
  /** Side tasks (acceptance notices, follow-ups) to await on stop. */
  readonly #side = new Set<Promise<void>>();
  /** Jobs claimed again while their previous step was still finishing (see #launch). */
  readonly #followUps = new Set<string>();
  #started = false;
  #stopping = false;
  #startup: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;
  #lastGauge = 0;
  /** Notices for mails that cost nothing, per recipient address per hour (policy.abuse.noticesPerAddressPerHour). */
  readonly #notices: QuotaTracker;
  /** fax.maxPages and the hourly page quotas. */
  readonly #pages: PageBudget;

  constructor(deps: OutboundWorkerDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: "outbound" });
    this.#now = deps.now ?? Date.now;
    this.#random = deps.random ?? Math.random;
    this.#tuning = { ...DEFAULT_TUNING, ...(deps.tuning ?? {}) };
    this.#retrySchedule = parseSchedule(deps.config.fax.retrySchedule);
    this.#pollSchedule = parseSchedule(deps.config.fax.statusPollSchedule);
    this.#redialSchedule = redialSchedule(deps.config.fax.redial);
    this.#pages = new PageBudget(deps.config, this.#now);
    this.#notices = new QuotaTracker({ perSenderPerHour: deps.config.policy?.abuse.noticesPerAddressPerHour ?? 0, globalPerHour: 0 }, { now: this.#now });
  }

  /** Reconcile interrupted submissions, then start the loop. Resolves when reconciliation is done. */
  start(): Promise<void> {
    if (this.#started) return this.#startup ?? Promise.resolve();
    this.#started = true;
    this.#log.info({ event: "worker.starting" }, "outbound worker starting");
    // The hour's page usage first, so a restart does not reset the page quotas.
    const loaded = this.#pages.load(this.#deps.store).then(
      (jobs) => this.#log.info({ event: "worker.page_quotas_loaded", jobs }, "hourly page quotas rebuilt from the jobs of the last hour"),
      (err: unknown) => this.#log.error({ event: "worker.page_quotas_failed", err }, "could not rebuild the hourly page quotas; counting from now"),
    );
    this.#startup = loaded.then(() => this.#reconcileInterrupted()).then(
      () => {
        this.#log.info({ event: "worker.started" }, "outbound worker started");
        this.wake();
      },
      (err: unknown) => {
        // The loop reconciles leftovers itself (it claims `submitting` jobs), so keep going.
        this.#log.error({ event: "worker.reconcile_failed", err }, "reconciling interrupted submissions failed; the loop will retry them");
        this.wake();
      },
    );
    return this.#startup;
  }

  /** Look at the queue now (called when the SMTP server accepted a mail). */
  wake(): void {
    if (!this.#started || this.#stopping) return;
    if (this.#ticking !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tick();
    }, 0);
  }

  /** Stop claiming, and wait for in-flight API calls, transitions and notices. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#startup;
    await this.#ticking;
    await Promise.allSettled([...this.#inFlight.values()].map((f) => f.promise));
    await Promise.allSettled([...this.#side]);
    this.#log.info({ event: "worker.stopped" }, "outbound worker stopped");
  }

  // ------------------------------------------------------------------ loop

  #tick(): void {
    const run = this.#claimAndRun().catch((err: unknown) => {
      this.#log.error({ event: "worker.tick_failed", err }, "claiming jobs failed");
    });
    this.#ticking = run.finally(() => {
      this.#ticking = undefined;
      if (this.#stopping) return;
      if (this.#again) {
        this.#again = false;
        this.wake();
        return;
      }
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#tick();
      }, this.#nextTickDelay());
    });
  }

  /** The idle poll interval, or less when a held rate-limit group opens sooner (so a backlog resumes on time). */
  #nextTickDelay(): number {
    const now = this.#now();
    const limits = this.#deps.client.rateLimitState();
    let delay = this.#tuning.idlePollMs;
    for (const g of [limits.Heavy, limits.Light]) if (g.heldUntil > now) delay = Math.min(delay, g.heldUntil - now + 1);
    return Math.max(1, delay);
  }

  async #claimAndRun(): Promise<void> {
    const { store } = this.#deps;
    const t = this.#tuning;
    if (this.#stranded.size > 0) await this.#rescheduleStranded();
    const now = this.#now();
    await this.#refreshGauge(now);
    const busy: Record<Lane, number> = { work: 0, send: 0, poll: 0 };
    for (const f of this.#inFlight.values()) busy[f.lane]++;
    const limits = this.#deps.client.rateLimitState();
    const free = (group: "Heavy" | "Light"): number => (limits[group].heldUntil > now ? 0 : limits[group].remaining);
    const lanes: [Lane, readonly JobState[], number][] = [
      ["work", WORK_STATES, t.workConcurrency - busy.work],
      // Claim only what the rate limit lets through now: a burst waits in the queue, not in the limiter.
      ["send", ["parsed"], Math.min(t.sendConcurrency - busy.send, free("Heavy"))],
      ["poll", ["submitted"], Math.min(t.pollConcurrency - busy.poll, free("Light"))],
    ];
    for (const [lane, states, limit] of lanes) {
      if (limit <= 0) continue;
      const jobs = await store.claimDue(states, { limit, leaseMs: t.leaseMs, now });
      for (const job of jobs) this.#launch(job, lane);
    }
  }

  async #refreshGauge(now: number): Promise<void> {
    if (now - this.#lastGauge < this.#tuning.gaugeIntervalMs) return;
    this.#lastGauge = now;
    const counts = await this.#deps.store.countByState();
    for (const [state, n] of Object.entries(counts)) this.#deps.metrics.queueDepth.set({ state }, n);
  }

  #launch(job: OutboundJob, lane: Lane): void {
    if (this.#inFlight.has(job.id)) {
      // The step still running here made the job due (its transition committed) and this tick
      // claimed it again before the step returned. That claim holds a lease nobody else will
      // honour-and-run, so run the next step as soon as the current one is done.
      this.#followUps.add(job.id);
      return;
    }
    const key = recipientKey(job.rcptTo.map((r) => r.e164));
    const promise = this.#step(job)
      .catch((err: unknown) => this.#stepFailed(job, err))
      .finally(() => {
        this.#inFlight.delete(job.id);
        if (this.#followUps.delete(job.id)) {
          const follow: Promise<void> = this.#followUp(job.id, lane).finally(() => this.#side.delete(follow));
          this.#side.add(follow);
        }
        this.wake();
      });
    this.#inFlight.set(job.id, { promise, lane, key });
  }

  /** Run the step a re-claim asked for (see #launch), on the job as it is now. */
  async #followUp(id: string, lane: Lane): Promise<void> {
    try {
      const job = await this.#deps.store.get(id);
      if (job !== undefined && !this.#stopping) this.#launch(job, lane);
    } catch (err) {
      this.#log.error({ event: "worker.follow_up_failed", queueId: id, err }, "could not resume a re-claimed job; its lease will expire");
    }
  }

  async #step(job: OutboundJob): Promise<void> {
    switch (job.state) {
      case "received":
        return this.#parse(job);
      case "parsed":
        return this.#submit(job);
      case "submitting":
        return this.#reconcile(job, "parsed");
      case "submitted":
        return this.#poll(job);
      case "final":
      case "failed":
        return this.#report(job);
      case "notified":
      case "cancelled":
        return;
    }
  }

  async #stepFailed(job: OutboundJob, err: unknown): Promise<void> {
    const log = this.#log.child({ queueId: job.id });
    if (err instanceof StateConflictError) {
      log.warn({ event: "job.conflict", expected: err.expected, actual: err.actual }, "job moved by someone else; step dropped");
      return;
    }
    log.error({ event: "worker.step_failed", state: job.state, err }, "job step failed; will retry");
    const delay = pollDelay(this.#retrySchedule, job.attempts + 1);
    try {
      await this.#deps.store.reschedule(job.id, { from: job.state, nextAttemptAt: this.#now() + delay, error: `internal: ${errorMessage(err)}` });
    } catch (e) {
      // E.g. the disk is full: the job keeps the lease this process took. Nothing works on it here any more,
      // so release it from the loop as soon as the database takes writes again, not when the lease runs out.
      log.error({ event: "worker.reschedule_failed", err: e }, "could not reschedule the job; retrying on the next tick");
      this.#stranded.set(job.id, { from: job.state, error: `internal: ${errorMessage(err)}` });
    }
  }

  /** Wait for the key to be free and take it; call the returned function to give it back. */
  async #lock(key: string): Promise<() => void> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    let unlock: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => (unlock = resolve));
    const tail = previous.then(() => mine);
    this.#locks.set(key, tail);
    await previous;
    return () => {
      unlock();
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    };
  }

  /** Reschedule jobs whose failed step could not be rescheduled (see #stepFailed). */
  async #rescheduleStranded(): Promise<void> {
    for (const [id, s] of this.#stranded) {
      if (this.#inFlight.has(id)) continue;
      try {
        await this.#deps.store.reschedule(id, { from: s.from, nextAttemptAt: this.#now(), error: s.error });
        this.#stranded.delete(id);
        this.#log.info({ event: "worker.reschedule_recovered", queueId: id }, "stranded job rescheduled");
      } catch (err) {
        if (err instanceof StateConflictError) {
          this.#stranded.delete(id);
          continue;
        }
        this.#log.warn({ event: "worker.reschedule_failed", queueId: id, err }, "could not reschedule the job yet; retrying on the next tick");
        return;
      }
    }
  }

  #retryDelay(attempt: number, c?: Classification): number | undefined {
    const d = delayFor(this.#retrySchedule, attempt, this.#tuning.jitter, this.#random);
    if (d === undefined) return undefined;
    return Math.max(d, c?.retryAfterMs ?? 0);
  }

  #data(job: OutboundJob): JobData | undefined {
    const r = readJobData(job.faxRequest);
    if (!r.ok) {
      this.#log.error({ event: "job.data_invalid", queueId: job.id, error: r.error }, "job data unreadable; treating it as missing");
      return undefined;
    }
    return r.data;
  }

  async #metaOf(job: OutboundJob): Promise<MailMeta | undefined> {
    try {
      return await this.#deps.spool.withLocalFile(job.mailKey, readMailMeta);
    } catch (err) {
      this.#log.warn({ event: "job.meta_unreadable", queueId: job.id, err }, "could not read the original mail's headers");
      return undefined;
    }
  }

  async #freshWorkDir(id: string): Promise<string> {
    return this.#deps.spool.freshWorkDir(id);
  }

  async #parseMail(job: OutboundJob, log: Logger): Promise<Awaited<ReturnType<typeof parseFaxMail>>> {
    const workDir = await this.#freshWorkDir(job.id);
    return this.#deps.spool.withLocalFile(job.mailKey, (rawPath) => parseFaxMail({
      rawPath,
      workDir,
      envelope: job,
      config: this.#deps.config.fax,
      timeZone: this.#deps.config.mail.timeZone,
      now: new Date(this.#now()),
      log,
    }));
  }

  // ------------------------------------------------------------------ received → parsed

  async #parse(job: OutboundJob): Promise<void> {
    const { store, config } = this.#deps;
    const log = this.#log.child({ queueId: job.id });
    let result;
    try {
      result = await this.#parseMail(job, log);
    } catch (err) {
      if (!(err instanceof ExtractError)) throw err;
      const delay = this.#retryDelay(job.attempts + 1);
      if (delay === undefined) {
        log.error({ event: "fax.parse_failed", err }, "could not extract the mail's documents; giving up");
        await store.transition(job.id, "received", "failed", {
          errorCode: "internal",
          errorText: "the gateway could not read the stored email",
          faxRequest: emptyJobData((await this.#metaOf(job)) ?? { references: [], isReport: false }),
          nextAttemptAt: this.#now(),
        });
        this.#deps.metrics.faxesFailed.inc({ error_code: "internal" });
        return;
      }
      log.warn({ event: "fax.parse_deferred", err }, "could not extract the mail's documents; will retry");
      await store.reschedule(job.id, { from: "received", nextAttemptAt: this.#now() + delay, error: errorMessage(err) });
      return;
    }
    if (!result.ok) {
      const meta = (await this.#metaOf(job)) ?? { references: [], isReport: false };
      await this.#refuse(job, result.refusal, meta, log);
      return;
    }
    const mail = result.mail;
    const meta = metaFromParsed(mail);
    // Copies of one mail (a client resending after a lost 250) can be parsed at the same time; the duplicate check
    // only sees a Message-ID once its job is parsed, so check and record one Message-ID at a time.
    const release = meta.messageId === undefined ? undefined : await this.#lock(`${meta.messageId}\n${job.identity}\n${recipientKey(job.rcptTo.map((r) => r.e164))}`);
    try {
      const windowMs = config.fax.duplicateWindowSeconds * 1000;
      const dupQuery: DuplicateQuery | undefined =
        meta.messageId !== undefined && windowMs > 0
          ? { messageId: meta.messageId, identity: job.identity, recipients: job.rcptTo.map((r) => r.e164), since: job.receivedAt - windowMs, excludeId: job.id }
          : undefined;
      const duplicate = async (dup: OutboundJob): Promise<void> => {
        await store.transition(job.id, "received", "cancelled", { messageId: meta.messageId ?? null, errorCode: "duplicate", errorText: `duplicate of ${dup.id}` });
        log.info({ event: "job.duplicate", duplicateOf: dup.id, messageId: meta.messageId }, "same Message-ID to the same recipients already queued; not faxed again");
        await this.#cleanup(job.id, log);
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
        await this.#refuse(job, pre.refusal, meta, log);
        return;
      }
      // Pages before money: fax.maxPages and the hourly page quotas.
      const cost = await this.#cost(job, mail.documents, mail.forwardOf);
      if (cost !== undefined && !cost.ok) {
        await this.#refuse(job, cost.refusal, meta, log);
        return;
      }
      const data: JobData = {
        ...emptyJobData(meta),
        request: mail.request,
        documents: mail.documents,
        skipped: mail.meta.skipped,
        ...(mail.forwardOf !== undefined && { forwardOf: mail.forwardOf }),
        ...(cost?.pages !== undefined && { countedPages: cost.pages }),
        ...(cost !== undefined && cost.charged > 0 && { chargedPages: cost.charged }),
      };
      try {
        // The duplicate check again, atomically with the transition: another instance may have parsed a copy meanwhile.
        await store.transition(job.id, "received", "parsed", { messageId: meta.messageId ?? null, faxRequest: data, nextAttemptAt: this.#now() }, dupQuery === undefined ? undefined : { unlessDuplicate: dupQuery });
      } catch (err) {
        if (cost?.ok === true) cost.release();
        if (!(err instanceof DuplicateJobError)) throw err;
        await duplicate(err.duplicate);
      }
    } finally {
      release?.();
    }
  }

  /** The pages of a new fax against fax.maxPages and the page quotas; a forward of a received fax is charged by RingCentral's count later. */
  async #cost(job: OutboundJob, documents: JobData["documents"], forwardOf: string | undefined): Promise<CostVerdict | undefined> {
    if (forwardOf === undefined) return this.#pages.assess(job.identity, documents, job.rcptTo.length);
    const original = await this.#deps.store.findSentBy(forwardOf, job.identity);
    const data = original === undefined ? undefined : this.#data(original);
    const pages = data?.countedPages ?? data?.pages;
    return pages === undefined ? undefined : this.#pages.assessKnown(job.identity, `fax ${forwardOf}`, pages, job.rcptTo.length);
  }

  async #refuse(job: OutboundJob, refusal: FaxRefusal, meta: MailMeta, log: Logger): Promise<void> {
    const data: JobData = { ...emptyJobData(meta), refusal: { rule: refusal.rule, message: refusal.message, ...(refusal.filename !== undefined && { filename: refusal.filename }) } };
    await this.#deps.store.transition(job.id, job.state, "failed", {
      messageId: meta.messageId ?? null,
      errorCode: refusal.rule,
      errorText: refusal.message,
      faxRequest: data,
      nextAttemptAt: this.#now(),
    });
    this.#deps.metrics.faxesFailed.inc({ error_code: refusal.rule });
    log.info({ event: "fax.refused", rule: refusal.rule, filename: refusal.filename }, "mail refused; the sender gets a notice");
  }

  // ------------------------------------------------------------------ parsed → submitting → submitted

  async #submit(job: OutboundJob): Promise<void> {
    const { store, client, hooks } = this.#deps;
    const log = this.#log.child({ queueId: job.id });
    let data = this.#data(job);
    if (data?.request === undefined) {
      await store.transition(job.id, "parsed", "failed", { errorCode: "internal", errorText: "the gateway lost the fax request", nextAttemptAt: this.#now() });
      return;
    }
    if (data.forwardOf === undefined && data.redial === undefined && !(await this.#documentsPresent(data))) {
      // The work directory was lost (e.g. a restored volume): extract again from the raw message.
      log.warn({ event: "fax.documents_missing" }, "extracted documents missing; parsing the mail again");
      const again = await this.#parseMail(job, log);
      if (!again.ok) {
        await this.#refuse(job, again.refusal, data.meta, log);
        return;
      }
      data = { ...data, request: again.mail.request, documents: again.mail.documents };
    }
    const request = data.request;
    if (request === undefined) return;
    const startedAt = this.#now();
    const submitting = await store.transition(job.id, "parsed", "submitting", {
      submitStartedAt: startedAt,
      faxRequest: data,
      leaseMs: this.#tuning.submitLeaseMs,
    });
    log.info({ event: "fax.submitting", attempt: job.attempts + 1, redial: data.redial?.round, recipients: attemptTargets(job, data).length, documents: data.documents.length, forwardOf: data.forwardOf }, "sending fax");
    let res;
    const redial = redialResend(data);
    try {
      if (redial !== undefined) {
        res = await client.resendFax(redial);
      } else if (data.forwardOf !== undefined) {
        res = await client.resendFax({
          originalMessageId: data.forwardOf,
          to: toSendRequest(request).to,
          ...(request.sendTime !== undefined && { sendTime: request.sendTime }),
        });
      } else {
        const documents: FaxDocument[] = data.documents.map((d) => ({ path: d.path, filename: d.filename, contentType: d.contentType, size: d.size }));
        res = await client.sendFax(toSendRequest(request), documents);
      }
    } catch (err) {
      await this.#submitFailed(submitting, data, err, log);
      return;
    }
    const now = this.#now();
    const statuses = mergeStatuses(job, data, recipientStatuses(attemptTargets(job, data), res));
    try {
      await hooks?.beforeRecordSubmit?.(job.id, res.id);
      await store.transition(job.id, "submitting", "submitted", {
        lastError: null,
        rcMessageId: res.id,
        status: statuses,
        faxRequest: { ...data, submittedAt: now },
        nextAttemptAt: this.#firstPollAt(now, request.sendTime),
      });
    } catch (err) {
      log.error(
        { event: "fax.record_failed", rcMessageId: res.id, err },
        "RingCentral accepted the fax but recording it failed; it stays submitting and will be reconciled (not resent)",
      );
      return;
    }
    this.#deps.metrics.faxesSubmitted.inc();
    log.info({ event: "fax.submitted", rcMessageId: res.id, messageStatus: res.messageStatus, sendTime: request.sendTime }, "fax accepted by RingCentral");
    // A redial is not news to the sender: the acceptance notice went with the first attempt.
    if (this.#deps.config.fax.notifyOnAccept && redial === undefined) {
      const notice = this.#acceptedNotice(job.id).finally(() => this.#side.delete(notice));
      this.#side.add(notice);
    }
  }

  async #documentsPresent(data: JobData): Promise<boolean> {
    try {
      for (const d of data.documents) await access(d.path);
      return true;
    } catch {
      // ENOENT or unreadable: the caller re-extracts them
      return false;
    }
  }

  #firstPollAt(now: number, sendTime: string | undefined): number {
    const first = pollDelay(this.#pollSchedule, 1);
    const at = sendTime !== undefined ? Date.parse(sendTime) : NaN;
    return Number.isFinite(at) && at > now ? at + first : now + first;
  }

  async #submitFailed(job: OutboundJob, data: JobData, err: unknown, log: Logger): Promise<void> {
    const { store, metrics } = this.#deps;
    const c = classify(err);
    const now = this.#now();
    if (c.action === "fail") {
      const parameterName = err instanceof RcApiError ? err.parameterName : undefined;
      log.warn({ event: "fax.rejected", code: c.code, reason: c.reason, err }, "RingCentral refused the fax permanently");
      await store.transition(job.id, "submitting", "failed", {
        errorCode: c.code,
        errorText: c.reason,
        faxRequest: { ...data, failureAdvice: describeRcError(c.code, parameterName).advice },
        nextAttemptAt: now,
      });
      metrics.faxesFailed.inc({ error_code: c.code });
      this.#alertFailed(job, c.code, c.reason);
      return;
    }
    const delay = this.#retryDelay(job.attempts + 1, c);
    if (delay === undefined) {
      if (c.maybeSent) {
        log.warn({ event: "fax.retries_exhausted", code: c.code }, "retries exhausted; checking RingCentral for the fax before giving up");
        await this.#reconcile(job, "failed", c);
        return;
      }
      await this.#giveUp(job, c, log);
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

  async #giveUp(job: OutboundJob, c: Classification, log: Logger): Promise<void> {
    log.error({ event: "fax.gave_up", code: c.code, attempts: job.attempts + 1 }, "fax retries exhausted");
    await this.#deps.store.transition(job.id, "submitting", "failed", {
      errorCode: c.code,
      errorText: `${c.reason} (gave up after ${job.attempts + 1} attempts)`,
      nextAttemptAt: this.#now(),
    });
    this.#deps.metrics.faxesFailed.inc({ error_code: c.code });
    this.#alertFailed(job, c.code, `${c.reason} (gave up after ${job.attempts + 1} attempts)`);
  }

  #alertFailed(job: OutboundJob, code: string, reason: string): void {
    this.#deps.alerts?.({
      kind: "job_failed",
      summary: `fax job ${job.id} failed for good`,
      details: { job: job.id, to: job.rcptTo.map((r) => r.e164).join(", "), sender: job.mailFrom, code, reason },
    });
  }

  // ------------------------------------------------------------------ submitting: reconcile

  async #reconcileInterrupted(): Promise<void> {
    const jobs = await this.#deps.store.findInterruptedSubmissions(this.#now());
    if (jobs.length > 0) this.#log.warn({ event: "worker.interrupted_submissions", count: jobs.length }, "reconciling interrupted fax submissions");
    for (const job of jobs) {
      if (this.#stopping) return;
      try {
        await this.#reconcile(job, "parsed");
      } catch (err) {
        await this.#stepFailed(job, err);
      }
    }
  }

  /**
   * Find the fax a `submitting` job may have created; adopt it (→ submitted) or,
   * when RingCentral has none, move on (`parsed` for a fresh attempt, or `failed`).
   */
  async #reconcile(job: OutboundJob, notFound: "parsed" | "failed", cause?: Classification): Promise<void> {
    const { store } = this.#deps;
    const log = this.#log.child({ queueId: job.id });
    const key = recipientKey(attemptTargets(job, this.#data(job)));
    for (const [id, f] of this.#inFlight) {
      if (id !== job.id && f.lane === "send" && f.key === key) {
        // A send to the same numbers is in flight here: its fax could be mistaken for ours. Look again shortly.
        await store.reschedule(job.id, { from: "submitting", nextAttemptAt: this.#now() + this.#tuning.idlePollMs, error: "reconcile: waiting for a send to the same numbers" });
        return;
      }
    }
    const data = this.#data(job);
    const since = (job.submitStartedAt ?? job.receivedAt) - this.#tuning.reconcileSkewMs;
    let found: MessageInfo | undefined;
    try {
      found = await this.#findFax(job, key, since, data);
    } catch (err) {
      const delay = pollDelay(this.#retrySchedule, job.attempts + 1);
      log.warn({ event: "fax.reconcile_deferred", err, delayMs: delay }, "could not search RingCentral's message store; will try again (never resending blindly)");
      await store.reschedule(job.id, { from: "submitting", nextAttemptAt: this.#now() + delay, error: `reconcile: ${errorMessage(err)}` });
      return;
    }
    const now = this.#now();
    if (found !== undefined) {
      const created = Date.parse(found.creationTime ?? "");
      const statuses = mergeStatuses(job, data, recipientStatuses(attemptTargets(job, data), found));
      await store.transition(job.id, "submitting", "submitted", {
        lastError: null,
        rcMessageId: found.id,
        status: statuses,
        ...(data !== undefined && { faxRequest: { ...data, submittedAt: Number.isFinite(created) ? created : now } }),
        nextAttemptAt: now,
      });
      this.#deps.metrics.faxesSubmitted.inc();
      log.info({ event: "fax.reconciled", outcome: "adopted", rcMessageId: found.id }, "found the fax at RingCentral; adopted it");
      return;
    }
    if (notFound === "parsed") {
      await store.transition(job.id, "submitting", "parsed", { submitStartedAt: null, nextAttemptAt: now });
      log.info({ event: "fax.reconciled", outcome: "not_found" }, "RingCentral has no such fax; it will be sent again");
      this.wake();
      return;
    }
    await this.#giveUp(job, cause ?? classify(undefined), log);
  }

  async #findFax(job: OutboundJob, key: string, since: number, data: JobData | undefined): Promise<MessageInfo | undefined> {
    const candidates: { info: MessageInfo; created: number }[] = [];
    for await (const m of this.#deps.client.listMessages({ messageType: ["Fax"], direction: ["Outbound"], dateFrom: isoTime(since), perPage: 250 })) {
      if (m.direction !== undefined && m.direction !== "Outbound") continue;
      if (m.type !== undefined && m.type !== "Fax") continue;
      if (isEarlierAttempt(data, m.id)) continue;
      const created = Date.parse(m.creationTime ?? "");
      if (Number.isFinite(created) && created < since) continue;
      if (recipientKey((m.to ?? []).map((t) => normaliseNumber(t.phoneNumber))) !== key) continue;
      const cover = data?.request?.coverPageText;
      if (cover !== undefined && m.coverPageText !== undefined && m.coverPageText !== cover) continue;
      candidates.push({ info: m, created: Number.isFinite(created) ? created : Number.MAX_SAFE_INTEGER });
    }
    candidates.sort((a, b) => a.created - b.created);
    for (const c of candidates) {
      const owner = await this.#ownerOf(c.info.id);
      if (owner === undefined || owner === job.id) return c.info;
    }
    return undefined;
  }

  /** The job that recorded this RingCentral message id, if any (an index lookup in the store). */
  async #ownerOf(rcMessageId: string): Promise<string | undefined> {
    return (await this.#deps.store.findByRcMessageId(rcMessageId, ["submitted", "final", "notified", "failed"]))?.id;
  }

  // ------------------------------------------------------------------ submitted → final

  async #poll(job: OutboundJob): Promise<void> {
    const { store, client } = this.#deps;
    const log = this.#log.child({ queueId: job.id, rcMessageId: job.rcMessageId });
    const data = this.#data(job) ?? emptyJobData({ references: [], isReport: false });
    const rcId = job.rcMessageId;
    const e164s = attemptTargets(job, data);
    if (rcId === null) {
      await store.transition(job.id, "submitted", "failed", { errorCode: "internal", errorText: "the gateway lost the RingCentral message id", nextAttemptAt: this.#now() });
      return;
    }
    if (data.cancel !== undefined && data.cancel.outcome === undefined) {
      await this.#cancelAtRingCentral(job, data, rcId, log);
      return;
    }
    const polls = data.polls + 1;
    let info: MessageInfo;
    try {
      info = await client.getMessage(rcId);
    } catch (err) {
      const now = this.#now();
      if (err instanceof RcApiError && err.status === 404) {
        log.warn({ event: "fax.vanished" }, "the fax is no longer in RingCentral's message store");
        await this.#finalize(job, { ...data, polls, statusProblem: "the fax was deleted from RingCentral's message store" }, e164s.map((e164) => ({ e164, status: "Unknown" as const })), log);
        return;
      }
      const delay = pollDelay(this.#pollSchedule, polls);
      log.warn({ event: "fax.poll_failed", err, delayMs: delay }, "status poll failed; will poll again");
      await store.transition(job.id, "submitted", "submitted", { faxRequest: { ...data, polls }, nextAttemptAt: now + delay });
      return;
    }
    const now = this.#now();
    const statuses = mergeStatuses(job, data, recipientStatuses(e164s, info));
    // Pages not counted before sending (other types, forwards) are charged when RingCentral reports them.
    // RingCentral says 0 pages while the fax is still being rendered: only a positive count is the fax's page count.
    const pageCount = info.faxPageCount !== undefined && info.faxPageCount > 0 ? info.faxPageCount : undefined;
    const reported = pageCount !== undefined && data.countedPages === undefined && data.pagesSettled !== true ? pageCount * e164s.length : undefined;
    const extra = reported === undefined ? 0 : Math.max(0, reported - (data.chargedPages ?? 0));
    const next: JobData = {
      ...data,
      polls,
      ...(pageCount !== undefined && { pages: pageCount }),
      ...(reported !== undefined && { pagesSettled: true, chargedPages: (data.chargedPages ?? 0) + this.#pages.chargeReported(job.identity, extra) }),
    };
    const allFinal = statuses.every((s) => FINAL_STATUSES.has(s.status));
    if (allFinal) {
      await this.#finalize(job, next, statuses, log);
      return;
    }
    const sendAt = Date.parse(data.request?.sendTime ?? "");
    const from = Math.max(data.submittedAt ?? job.submitStartedAt ?? job.receivedAt, Number.isFinite(sendAt) ? sendAt : 0);
    const timeoutMs = this.#deps.config.fax.statusTimeoutHours * 3_600_000;
    if (now - from >= timeoutMs) {
      log.warn({ event: "fax.status_timeout", statuses }, "no final status in time; reporting what is known");
      await this.#finalize(job, { ...next, statusProblem: `no final status after ${this.#deps.config.fax.statusTimeoutHours} hours` }, statuses, log);
      return;
    }
    let nextAt = now + pollDelay(this.#pollSchedule, polls + 1);
    if (Number.isFinite(sendAt) && sendAt > now) nextAt = Math.max(nextAt, sendAt + pollDelay(this.#pollSchedule, 1));
    const changed = JSON.stringify(statuses) !== JSON.stringify(job.status);
    if (changed) log.info({ event: "fax.status", messageStatus: info.messageStatus, statuses }, "fax status changed");
    await store.transition(job.id, "submitted", "submitted", { status: statuses, faxRequest: next, nextAttemptAt: Math.max(nextAt, now + 1) });
  }

  /** An operator cancelled a scheduled fax RingCentral holds: delete it there (src/outbound/cancel.ts), then report. */
  async #cancelAtRingCentral(job: OutboundJob, data: JobData, rcId: string, log: Logger): Promise<void> {
    const cancel = data.cancel ?? { requestedAt: this.#now() };
    let outcome;
    try {
      outcome = await cancelScheduledFax(this.#deps.client, rcId);
    } catch (err) {
      const delay = pollDelay(this.#pollSchedule, 1);
      log.warn({ event: "fax.cancel_failed", err, delayMs: delay }, "could not cancel the scheduled fax at RingCentral yet; will try again");
      await this.#deps.store.transition(job.id, "submitted", "submitted", { lastError: `cancel: ${errorMessage(err)}`, nextAttemptAt: this.#now() + delay });
      return;
    }
    if (outcome.cancelled) {
      log.info({ event: "fax.cancelled" }, "scheduled fax deleted from RingCentral's message store before its send time");
      const now = this.#now();
      await this.#deps.store.transition(job.id, "submitted", "final", {
        status: job.rcptTo.map((r) => ({ e164: r.e164, status: "Unknown" as const })),
        faxRequest: { ...data, cancel: { ...cancel, outcome: "cancelled" }, completedAt: now },
        errorCode: "cancelled",
        errorText: "cancelled by the operator before its send time",
        nextAttemptAt: now,
      });
      return;
    }
    log.warn({ event: "fax.cancel_too_late", reason: outcome.reason }, "the scheduled fax could not be cancelled; following it to its final status");
    await this.#deps.store.transition(job.id, "submitted", "submitted", {
      faxRequest: { ...data, cancel: { ...cancel, outcome: "too-late", reason: outcome.reason } },
      nextAttemptAt: this.#now(),
    });
  }

  async #finalize(job: OutboundJob, given: JobData, current: RecipientStatus[], log: Logger): Promise<void> {
    const now = this.#now();
    const statuses = mergeStatuses(job, given, current);
    const plan = planRedial({ schedule: this.#redialSchedule, job, data: given, statuses, pages: this.#pages, now });
    if (plan.redial) {
      await this.#deps.store.transition(job.id, "submitted", "parsed", { status: statuses, faxRequest: plan.data, nextAttemptAt: plan.at });
      log.info({ event: "fax.redial_scheduled", numbers: plan.numbers, round: plan.data.redial?.round, at: isoTime(plan.at) }, "redialling busy / no-answer recipients");
      return;
    }
    const data = plan.data;
    await this.#deps.store.transition(job.id, "submitted", "final", {
      status: statuses,
      faxRequest: { ...data, completedAt: now },
      nextAttemptAt: now,
    });
    for (const s of statuses) this.#deps.metrics.faxesFinal.inc({ status: s.status, error_code: s.faxErrorCode ?? "none" });
    this.#deps.metrics.faxDeliverySeconds.observe(Math.max(0, now - job.receivedAt) / 1000);
    log.info({ event: "fax.final", statuses, pages: data.pages, statusProblem: data.statusProblem }, "fax reached its final status");
  }

  // ------------------------------------------------------------------ final/failed → notified

  #reportInput(job: OutboundJob, data: JobData | undefined, meta: MailMeta | undefined, kind: ReportKind): ReportInput {
    const recipients: RecipientStatus[] =
      job.status !== null && job.status.length > 0 ? [...job.status] : job.rcptTo.map((r) => ({ e164: r.e164, status: kind === "accepted" ? "Queued" : "Unknown" }));
    const input: ReportInput = {
      kind,
      queueId: job.id,
      to: job.reportTo,
      recipients,
      receivedAt: job.receivedAt,
      documents: (data?.documents ?? []).map((d) => ({ name: d.originalFilename ?? d.filename, size: d.size, path: d.path, contentType: d.contentType })),
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

  async #report(job: OutboundJob): Promise<void> {
    const { store, mail, config } = this.#deps;
    const log = this.#log.child({ queueId: job.id });
    const from = job.state;
    const data = this.#data(job);
    const meta = data?.meta ?? (await this.#metaOf(job));
    const suppressed = suppressReason(job.reportTo, meta);
    const base = data ?? emptyJobData(meta ?? { references: [], isReport: false });
    if (suppressed !== undefined) {
      log.info({ event: "report.suppressed", reason: suppressed, to: job.reportTo }, "no report for this sender (loop safety)");
      await this.#finish(job, from, { ...base, report: { outcome: "suppressed", at: this.#now(), detail: suppressed } }, log);
      return;
    }
    // A mail refused before any fax was sent cost nothing: its notice is rate-limited per address, so forged senders cannot aim a stream of notices at someone.
    if (from === "failed" && job.rcMessageId === null && !this.#notices.reserve([normaliseAddress(job.reportTo)], 1).ok) {
      log.warn({ event: "report.rate_limited", to: job.reportTo }, "too many notices to this address this hour; this one is not sent");
      await this.#finish(job, from, { ...base, report: { outcome: "suppressed", at: this.#now(), detail: "notice rate limit" } }, log);
      return;
    }
    const transmittedCopy = from === "final" ? await this.#transmittedCopy(job, data, log) : undefined;
    const composed = composeReport(this.#reportInput(job, data, meta, from === "failed" ? "failed" : "final"), {
      from: config.mail.from,
      attachDocuments: config.fax.reportAttachDocuments,
      timeZone: config.mail.timeZone,
      ...(transmittedCopy !== undefined && { transmittedCopy }),
    });
    try {
      await mail.send(composed.mail);
    } catch (err) {
      const temporary = err instanceof MailDeliveryError ? err.temporary : true;
      const delay = temporary ? this.#retryDelay(job.attempts + 1) : undefined;
      if (delay !== undefined) {
        log.warn({ event: "report.deferred", err, delayMs: delay }, "sender report not delivered; will retry");
        await store.reschedule(job.id, { from, nextAttemptAt: this.#now() + delay, error: `report: ${errorMessage(err)}` });
        return;
      }
      log.error(
        { event: "report.failed", err, to: job.reportTo, permanent: !temporary, messageId: composed.mail.messageId },
        "sender report could not be delivered; giving up on it",
      );
      await this.#finish(job, from, { ...base, report: { outcome: "failed", at: this.#now(), detail: errorMessage(err) } }, log);
      return;
    }
    log.info({ event: "report.sent", to: job.reportTo, status: composed.status, messageId: composed.mail.messageId }, "sender report sent");
    await this.#finish(job, from, { ...base, report: { outcome: "sent", at: this.#now() } }, log);
  }

  /** The fax as RingCentral transmitted it, for a report of a fax that went out to someone; undefined when off or unavailable. */
  async #transmittedCopy(job: OutboundJob, data: JobData | undefined, log: Logger): Promise<TransmittedCopy | undefined> {
    const { config, client } = this.#deps;
    const setting = config.fax.reportTransmittedCopy;
    const mode = setting === "auto" ? (config.inbound?.delivery === "link" ? "none" : "first-page") : setting;
    const wentOut = (job.status ?? []).some((s) => s.status === "Sent" || s.status === "Delivered");
    if (mode === "none" || job.rcMessageId === null || !wentOut || data?.cancel?.outcome === "cancelled") return undefined;
    try {
      return await fetchTransmittedCopy(client, job.rcMessageId, mode);
    } catch (err) {
      log.warn({ event: "report.transmitted_copy_failed", err }, "could not fetch the transmitted copy; the report goes without it");
      return undefined;
    }
  }

  /** final/failed → notified: record the outcome, write the audit line, remove the job's documents. */
  async #finish(job: OutboundJob, from: JobState, data: JobData, log: Logger): Promise<void> {
    const done = await this.#deps.store.transition(job.id, from, "notified", { notifiedAt: this.#now(), faxRequest: data });
    this.#deps.audit?.record({
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
    await this.#cleanup(job.id, log);
  }

  /** The optional notice when RingCentral accepted the fax; best effort, one try. */
  async #acceptedNotice(jobId: string): Promise<void> {
    const log = this.#log.child({ queueId: jobId });
    try {
      const job = await this.#deps.store.get(jobId);
      if (job === undefined) return;
      const data = this.#data(job);
      const meta = data?.meta;
      const suppressed = suppressReason(job.reportTo, meta);
      if (suppressed !== undefined) {
        log.info({ event: "report.suppressed", kind: "accepted", reason: suppressed }, "no acceptance notice for this sender (loop safety)");
        return;
      }
      const composed = composeReport(this.#reportInput(job, data, meta, "accepted"), { from: this.#deps.config.mail.from, attachDocuments: false, timeZone: this.#deps.config.mail.timeZone });
      await this.#deps.mail.send(composed.mail);
      log.info({ event: "report.accepted_sent", to: job.reportTo, messageId: composed.mail.messageId }, "acceptance notice sent");
    } catch (err) {
      log.warn({ event: "report.accepted_failed", err }, "acceptance notice not delivered (the final report still follows)");
    }
  }

  async #cleanup(id: string, log: Logger): Promise<void> {
    // With a retention period the janitor (src/ops/janitor.ts) removes them later.
    if ((this.#deps.config.retention?.documentsHours ?? 0) > 0) return;
    try {
      await this.#deps.spool.remove(id);
    } catch (err) {
      log.error({ event: "spool.remove_failed", err }, "could not remove the job's spool files");
    }
  }
}
