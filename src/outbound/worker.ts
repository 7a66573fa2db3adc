/**
 * The outbound engine: takes accepted mails from the durable queue, turns
 * them into faxes, sends them through RingCentral at the allowed rate,
 * follows each to its final status and tells the sender how it went.
 *
 * This module composes the claim loop (src/pipeline/claim-loop.ts) with one
 * step per state (src/outbound/steps/), each ending in a persisted transition
 * (the store logs `job.<state>`; the steps add `fax.*` and `report.*` events):
 *
 *   received   → parse the spooled mail → duplicate check → preflight → parsed
 *                (or failed with the refusal; or cancelled as a duplicate)   steps/parse.ts
 *   parsed     → submitting (submitStartedAt persisted BEFORE the POST)
 *                → sendFax / resendFax → submitted (RingCentral message id) steps/submit.ts
 *   submitting → (found after a crash, or after an answer that may have been
 *                processed) reconcile with the message store → submitted, or
 *                back to parsed when RingCentral has no such fax             steps/reconcile.ts
 *   submitted  → poll getMessage per fax.statusPollSchedule → final, or back
 *                to parsed to redial busy / no-answer recipients            steps/poll.ts
 *   final / failed → sender report → notified (spool files removed)        steps/report.ts
 *
 * Decisions worth knowing:
 * - Duplicates (same Message-ID and recipient set within
 *   fax.duplicateWindowSeconds of an earlier live job) are cancelled with
 *   errorCode "duplicate" and errorText "duplicate of <id>", logged as
 *   `job.duplicate`, and get no report.
 * - Pacing comes from the client's Heavy limiter. The send lane only claims a
 *   parsed job when the limiter has a free slot and is not held, and runs at
 *   most `sendConcurrency` sends per pool extension (k extensions: k ×
 *   sendConcurrency in flight), so a burst waits in the queue (state
 *   parsed), not inside a POST with a job stuck in `submitting`. Status polls
 *   have their own lane gated the same way on the Light group, so a backlog of
 *   polls never holds up parsing and reports.
 * - A step that throws is rescheduled per fax.retrySchedule (retry-policy.ts);
 *   when even that cannot be written (the disk is full), the job is released
 *   from the loop as soon as the database takes writes again.
 * - Leases are short (src/tunables.ts LEASE_MS) and renewed by the claim
 *   loop's heartbeat while a step runs; a step whose lease another instance
 *   took over is aborted (StepContext.signal) and sends nothing more.
 *   Reconciliation matches faxes by the job tag each POST carries
 *   (src/outbound/tag.ts), so instances sending at once never adopt each
 *   other's faxes.
 */
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { QuotaTracker } from "../policy/quota.js";
import type { JobState, OutboundJob } from "../store/outbound.js";
import { LeaseLostError, StateConflictError } from "../store/outbound.js";
import { ClaimLoop } from "../pipeline/claim-loop.js";
import { storeLease } from "../pipeline/leases.js";
import { PageBudget } from "./cost.js";
import { RetryPolicy } from "./retry-policy.js";
import { DEFAULT_TUNING, jobKey, type OutboundWorkerDeps, type StepContext, type WorkerTuning } from "./steps/context.js";
import { parseStep } from "./steps/parse.js";
import { pollStep } from "./steps/poll.js";
import { reconcileInterrupted, reconcileStep } from "./steps/reconcile.js";
import { reportStep } from "./steps/report.js";
import { submitStep } from "./steps/submit.js";

export { DEFAULT_TUNING, recipientStatuses, type OutboundWorkerDeps, type WorkerTuning } from "./steps/context.js";
export type { FaxApi } from "./steps/fax-api.js";

type Lane = "work" | "send" | "poll";
const LANES: readonly Lane[] = ["work", "send", "poll"];
const WORK_STATES: readonly JobState[] = ["received", "submitting", "final", "failed"];
const LANE_STATES: Record<Lane, readonly JobState[]> = { work: WORK_STATES, send: ["parsed"], poll: ["submitted"] };

export class OutboundWorker {
  readonly #deps: OutboundWorkerDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #tuning: WorkerTuning;
  readonly #loop: ClaimLoop<OutboundJob, Lane>;
  readonly #ctx: StepContext;
  /** Jobs whose failed step could not be rescheduled (database unwritable), still leased to this process. */
  readonly #stranded = new Map<string, { from: JobState; error: string }>();
  /** Per-key mutexes (see StepContext.lock). */
  readonly #locks = new Map<string, Promise<void>>();
  #started = false;
  #startup: Promise<void> | undefined;
  #lastGauge = 0;

  constructor(deps: OutboundWorkerDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: "outbound" });
    this.#now = deps.now ?? Date.now;
    this.#tuning = { ...DEFAULT_TUNING, ...(deps.tuning ?? {}) };
    const now = this.#now;
    this.#loop = new ClaimLoop<OutboundJob, Lane>({
      lanes: LANES,
      now,
      reclaimed: "follow-up",
      id: (job) => job.id,
      plan: (busy, at) => this.#plan(busy, at),
      claim: (lane, limit, at) => deps.store.claimDue(LANE_STATES[lane], { limit, leaseMs: this.#tuning.leaseMs, now: at }),
      run: async (job, _lane, signal) => {
        try {
          await this.#step(job, signal);
        } catch (err) {
          // Aborted by the heartbeat: another instance holds the job now and does the rest; nothing to reschedule.
          if (signal.aborted) return;
          throw err;
        }
      },
      onError: (job, err) => this.#stepFailed(job, err),
      reload: (id) => deps.store.get(id),
      onFollowUpError: (id, err) => this.#log.error({ event: "worker.follow_up_failed", queueId: id, err }, "could not resume a re-claimed job; its lease will expire"),
      beforeClaim: async () => {
        if (this.#stranded.size > 0) await this.#rescheduleStranded();
        await this.#refreshGauge(this.#now());
      },
      nextDelay: () => this.#nextTickDelay(),
      onRoundError: (err) => {
        this.#log.error({ event: "worker.tick_failed", err }, "claiming jobs failed");
        return undefined;
      },
      lease: storeLease<OutboundJob>(deps.store, {
        ms: this.#tuning.leaseMs,
        lostError: (job, holder) => new LeaseLostError(job.id, job.state, deps.store.owner, holder),
        onRenewError: (job, err) => this.#log.warn({ event: "job.lease_renew_failed", queueId: job.id, err }, "could not renew a job's lease; trying again at the next beat"),
        onLost: (job, reason) =>
          this.#log.warn({ event: "job.lease_lost", queueId: job.id, state: job.state, reason: reason.message }, "another instance took the job over; this one stops working on it"),
      }),
    });
    const loop = this.#loop;
    this.#ctx = {
      deps,
      log: this.#log,
      now,
      tuning: this.#tuning,
      retry: new RetryPolicy(deps.config.fax, this.#tuning.jitter, deps.random ?? Math.random),
      pages: new PageBudget(deps.config, deps.quota, now),
      notices: new QuotaTracker(deps.quota, "notice", { perSenderPerHour: deps.config.policy?.abuse.noticesPerAddressPerHour ?? 0, globalPerHour: 0 }, { now }),
      sendingTo: (key, exceptId) => {
        for (const f of loop.running()) if (f.id !== exceptId && f.lane === "send" && jobKey(f.item) === key) return true;
        return false;
      },
      lock: (key) => this.#lock(key),
      wake: () => this.wake(),
      track: (task) => loop.track(task),
      get stopping() {
        return loop.stopping;
      },
    };
  }

  /** Reconcile interrupted submissions, then start the loop. Resolves when reconciliation is done. */
  start(): Promise<void> {
    if (this.#started) return this.#startup ?? Promise.resolve();
    this.#started = true;
    this.#loop.start();
    this.#log.info({ event: "worker.starting" }, "outbound worker starting");
    // The page quotas live in the store's ledger; a ledger that is new (an upgrade) is seeded once from the hour's jobs.
    const loaded = this.#ctx.pages.load(this.#deps.store).then(
      (jobs) => jobs > 0 && this.#log.info({ event: "worker.page_quotas_loaded", jobs }, "hourly page quotas rebuilt from the jobs of the last hour"),
      (err: unknown) => this.#log.error({ event: "worker.page_quotas_failed", err }, "could not rebuild the hourly page quotas; counting from now"),
    );
    this.#startup = loaded.then(() => reconcileInterrupted(this.#ctx, (job, err) => this.#stepFailed(job, err))).then(
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
    this.#loop.wake();
  }

  /** Stop claiming, and wait for in-flight API calls, transitions and notices. */
  async stop(): Promise<void> {
    if (this.#loop.stopping) return;
    const stopped = this.#loop.stop();
    await this.#startup;
    await stopped;
    this.#log.info({ event: "worker.stopped" }, "outbound worker stopped");
  }

  /** What each lane may claim now: its free concurrency, and for sends and polls no more than the rate limit lets through. */
  #plan(busy: Readonly<Record<Lane, number>>, now: number): [Lane, number][] {
    const t = this.#tuning;
    const limits = this.#deps.client.rateLimitState();
    const free = (group: "Heavy" | "Light"): number => (limits[group].heldUntil > now ? 0 : limits[group].remaining);
    return [
      ["work", t.workConcurrency - busy.work],
      // Claim only what the rate limit lets through now: a burst waits in the queue, not in the limiter.
      // Per extension: each pool member has its own Heavy limiter, so k members send k times as many at once.
      ["send", Math.min(t.sendConcurrency * Math.max(1, this.#deps.client.size ?? 1) - busy.send, free("Heavy"))],
      ["poll", Math.min(t.pollConcurrency - busy.poll, free("Light"))],
    ];
  }

  /** The idle poll interval, or less when a held rate-limit group opens sooner (so a backlog resumes on time). */
  #nextTickDelay(): number {
    const now = this.#now();
    const limits = this.#deps.client.rateLimitState();
    let delay = this.#tuning.idlePollMs;
    for (const g of [limits.Heavy, limits.Light]) if (g.heldUntil > now) delay = Math.min(delay, g.heldUntil - now + 1);
    return Math.max(1, delay);
  }

  async #refreshGauge(now: number): Promise<void> {
    if (now - this.#lastGauge < this.#tuning.gaugeIntervalMs) return;
    this.#lastGauge = now;
    // Another instance reports the whole queue: no count query here.
    if (!this.#deps.metrics.reportsQueue()) return;
    const counts = await this.#deps.store.countByState();
    for (const [state, n] of Object.entries(counts)) this.#deps.metrics.queueDepth.set({ state }, n);
  }

  async #step(job: OutboundJob, signal: AbortSignal): Promise<void> {
    // The step's own view of the worker: the shared context plus this claim's lease signal.
    const ctx = Object.assign(Object.create(this.#ctx) as StepContext, { signal });
    switch (job.state) {
      case "received":
        return parseStep(ctx, job);
      case "parsed":
        return submitStep(ctx, job);
      case "submitting":
        return reconcileStep(ctx, job, "parsed");
      case "submitted":
        return pollStep(ctx, job);
      case "final":
      case "failed":
        return reportStep(ctx, job);
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
    const delay = this.#ctx.retry.backoff(job.attempts + 1);
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

  /** True while this worker's store holds the job's lease. */
  async #stillHeld(id: string): Promise<boolean> {
    const row = await this.#deps.store.get(id);
    return row !== undefined && row.leaseOwner === this.#deps.store.owner && row.leaseUntil !== null;
  }

  /** Reschedule jobs whose failed step could not be rescheduled (see #stepFailed). */
  async #rescheduleStranded(): Promise<void> {
    for (const [id, s] of this.#stranded) {
      if (this.#loop.isRunning(id)) continue;
      try {
        await this.#deps.store.reschedule(id, { from: s.from, nextAttemptAt: this.#now(), error: s.error });
        this.#stranded.delete(id);
        this.#log.info({ event: "worker.reschedule_recovered", queueId: id }, "stranded job rescheduled");
      } catch (err) {
        if (err instanceof StateConflictError) {
          // The step got further than the claimed copy said before it failed (parsed → submitting, then the
          // POST failed and nothing could be written): still ours, so release it from the state it is in
          // now rather than leave it to wait out its lease. A submitting job is reconciled next, never resent blindly.
          if (!(err instanceof LeaseLostError) && err.actual !== undefined && err.actual !== s.from && (await this.#stillHeld(id))) {
            this.#stranded.set(id, { ...s, from: err.actual });
            continue;
          }
          this.#stranded.delete(id);
          continue;
        }
        this.#log.warn({ event: "worker.reschedule_failed", queueId: id, err }, "could not reschedule the job yet; retrying on the next tick");
        return;
      }
    }
  }
}
