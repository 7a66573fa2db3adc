/**
 * Pacing of one RingCentral session: a limiter per usage-plan group, the
 * groups learned from X-Rate-Limit-Group, and the holds after a 429 or an
 * exhausted window (announced at warn once per hold, not per waiting call).
 */
import type { Logger } from "../log.js";
import { OPERATION_GROUPS, parseGroupHeader, type Operation, type RateGroup } from "./groups.js";
import { header, numHeader, type Headers } from "./http-util.js";
import { parseRetryAfter } from "./errors.js";
import { DEFAULT_RATE_LIMITS, RateLimiters, type GroupLimiter, type GroupState, type RateLimitConfig } from "./limiter.js";

/** Retry-After default for a 429 without one (RingCentral docs). */
export const DEFAULT_429_WAIT_MS = 30_000;

export interface PacerOptions {
  logger: Logger;
  now: () => number;
  /** Assumed until X-Rate-Limit-* headers say otherwise. */
  rateLimits?: RateLimitConfig | undefined;
}

export class Pacer {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly limiters: RateLimiters;
  /** Groups learned from X-Rate-Limit-Group where they differ from the spec's. */
  private readonly groupOf = new Map<Operation, RateGroup>();
  /** Per group: the hold end already announced at warn (one line per hold, not per waiting call). */
  private readonly holdWarned = new Map<RateGroup, number>();

  constructor(opts: PacerOptions) {
    this.log = opts.logger;
    this.now = opts.now;
    this.limiters = new RateLimiters(opts.rateLimits ?? DEFAULT_RATE_LIMITS, {
      now: this.now,
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    });
  }

  /** The group an operation is paced in (the spec's, or the one RingCentral reported). */
  groupFor(operation: Operation): RateGroup {
    return this.groupOf.get(operation) ?? OPERATION_GROUPS[operation];
  }

  limiter(group: RateGroup): GroupLimiter {
    return this.limiters.get(group);
  }

  /** Wait for a slot in the operation's group; returns the group. */
  async acquire(operation: Operation, signal?: AbortSignal): Promise<RateGroup> {
    const group = this.groupFor(operation);
    this.warnIfHeld(group, operation);
    await this.limiters.get(group).acquire(signal);
    return group;
  }

  /**
   * Learn from a response's rate-limit headers: the group RingCentral counts the
   * operation in, its limits, and a hold on 429 or `Remaining: 0`. Returns the reported group.
   */
  observe(operation: Operation, group: RateGroup, status: number, headers: Headers): RateGroup {
    const reported = parseGroupHeader(header(headers, "x-rate-limit-group")) ?? group;
    if (reported !== group) {
      // RingCentral counts this operation in another group (media downloads may): pace it there from now on.
      this.groupOf.set(operation, reported);
      this.log.info(
        { event: "rc.rate_group_learned", operation, assumed: group, reported },
        "operation belongs to another rate-limit group",
      );
    }
    const limiter = this.limiters.get(reported);
    const limit = numHeader(headers, "x-rate-limit-limit");
    const windowSeconds = numHeader(headers, "x-rate-limit-window");
    const remaining = numHeader(headers, "x-rate-limit-remaining");
    limiter.learn(limit, windowSeconds);
    const now = this.now();
    if (status === 429) {
      const wait = parseRetryAfter(header(headers, "retry-after"), now) ?? DEFAULT_429_WAIT_MS;
      limiter.hold(now + wait);
      // the retry (if any) waits in the group it was assumed to be in; hold that too
      if (reported !== group) this.limiters.get(group).hold(now + wait);
      this.log.warn(
        { event: "rc.rate_limited", group: reported, operation, retryAfterMs: wait, until: new Date(now + wait).toISOString() },
        `RingCentral rate limit hit (429): ${reported} calls wait until ${new Date(now + wait).toISOString()}`,
      );
      this.holdWarned.set(reported, now + wait);
    } else if (remaining === 0) {
      const w = (windowSeconds ?? limiter.windowSeconds) * 1000;
      limiter.hold(now + w);
      this.log.warn(
        { event: "rc.rate_limit_exhausted", group: reported, operation, holdMs: w, until: new Date(now + w).toISOString() },
        `RingCentral ${reported} rate-limit window used up: calls in that group wait until ${new Date(now + w).toISOString()}`,
      );
      this.holdWarned.set(reported, now + w);
    }
    return reported;
  }

  state(): Record<RateGroup, GroupState> {
    return this.limiters.state();
  }

  /**
   * Shutdown: fail the calls waiting for a group RingCentral holds (a 429's
   * Retry-After can be a minute), so stopping never waits for it. Calls in
   * groups that are not held go on as usual.
   */
  releaseHeldWaits(): void {
    const now = this.now();
    for (const [group, st] of Object.entries(this.limiters.state()) as [RateGroup, GroupState][]) {
      if (st.heldUntil > now + 1_000) {
        this.log.info({ event: "rc.rate_limit_wait_cancelled", group, waiting: st.waiting }, `shutting down: not waiting for the RingCentral ${group} group`);
        this.limiters.get(group).close();
      }
    }
  }

  close(): void {
    this.limiters.close();
  }

  /** Say at warn, once per hold, which call waits for a held group and until when. */
  private warnIfHeld(group: RateGroup, operation: Operation): void {
    const until = this.limiters.get(group).state().heldUntil;
    if (until <= this.now() || this.holdWarned.get(group) === until) return;
    this.holdWarned.set(group, until);
    this.log.warn(
      { event: "rc.rate_limit_wait", group, operation, until: new Date(until).toISOString() },
      `${operation} waits for the RingCentral ${group} rate-limit group until ${new Date(until).toISOString()}`,
    );
  }
}
