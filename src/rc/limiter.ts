/**
 * Client-side pacing for one RingCentral usage-plan group.
 *
 * - Sliding window: never grants more than `limit` slots within any
 *   `window + margin`, so the server (which counts a sliding window too) never
 *   sees more than `limit`. The margin absorbs the time between our grant and
 *   the request reaching RingCentral.
 * - FIFO: waiters are served in arrival order; an aborted waiter leaves the line.
 * - Hold: after a 429 (Retry-After) or `X-Rate-Limit-Remaining: 0`, no slot is
 *   granted until the hold ends. Requests sent during a penalty restart it.
 * - Limits are assumed until `X-Rate-Limit-*` headers report the real ones.
 */
import { RATE_GROUPS, type RateGroup } from "./groups.js";

export interface LimiterClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: LimiterClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface GroupState {
  limit: number;
  remaining: number;
  windowSeconds: number;
  heldUntil: number;
  /** Requests queued for a slot. */
  waiting: number;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

/** Safety margin added to the window: 1 % of it, at least 100 ms. 10/60 s → 10 per 60.6 s (99 %). */
export function windowMarginMs(windowMs: number): number {
  return Math.max(100, Math.round(windowMs * 0.01));
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

export class GroupLimiter {
  readonly group: RateGroup;
  private limit: number;
  private windowMs: number;
  private heldUntil = 0;
  private readonly grants: number[] = [];
  private readonly waiters: Waiter[] = [];
  private timer: unknown = undefined;
  private closed = false;
  private readonly clock: LimiterClock;

  constructor(group: RateGroup, limit: number, windowSeconds: number, clock: LimiterClock = realClock) {
    this.clock = clock;
    this.group = group;
    this.limit = Math.max(1, Math.floor(limit));
    this.windowMs = Math.max(1, windowSeconds * 1000);
  }

  /** Wait for a slot (FIFO). Rejects with the signal's reason when aborted while waiting. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`rate limiter for ${this.group} is closed`));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal ? abortReason(signal) : new Error("aborted"));
        this.pump();
      };
      const waiter: Waiter = {
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
      this.pump();
    });
  }

  /** No slot before `until` (epoch ms). Extends, never shortens, an existing hold. */
  hold(until: number): void {
    if (until > this.heldUntil) {
      this.heldUntil = until;
      this.pump();
    }
  }

  /** Adopt limits reported by the server. */
  learn(limit: number | undefined, windowSeconds: number | undefined): void {
    let changed = false;
    if (limit !== undefined && Number.isFinite(limit) && limit >= 1 && Math.floor(limit) !== this.limit) {
      this.limit = Math.floor(limit);
      changed = true;
    }
    if (windowSeconds !== undefined && Number.isFinite(windowSeconds) && windowSeconds > 0) {
      const ms = windowSeconds * 1000;
      if (ms !== this.windowMs) {
        this.windowMs = ms;
        changed = true;
      }
    }
    if (changed) this.pump();
  }

  state(): GroupState {
    const now = this.clock.now();
    this.prune(now);
    return {
      limit: this.limit,
      remaining: Math.max(0, this.limit - this.grants.length),
      windowSeconds: this.windowMs / 1000,
      heldUntil: this.heldUntil,
      waiting: this.waiters.length,
    };
  }

  get waiting(): number {
    return this.waiters.length;
  }

  get windowSeconds(): number {
    return this.windowMs / 1000;
  }

  /** Reject every waiter and stop the timer. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      w.reject(new Error(`rate limiter for ${this.group} is closed`));
    }
  }

  private span(): number {
    return this.windowMs + windowMarginMs(this.windowMs);
  }

  private prune(now: number): void {
    const cutoff = now - this.span();
    while (this.grants.length > 0 && (this.grants[0] ?? Infinity) <= cutoff) this.grants.shift();
  }

  /** Earliest time a new slot may be granted. */
  private nextFreeAt(now: number): number {
    this.prune(now);
    let at = now;
    if (this.grants.length >= this.limit) {
      const oldestCounted = this.grants[this.grants.length - this.limit] ?? now;
      at = oldestCounted + this.span();
    }
    return Math.max(at, this.heldUntil);
  }

  private pump(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.waiters.length > 0) {
      const now = this.clock.now();
      const at = this.nextFreeAt(now);
      if (at > now) {
        this.timer = this.clock.setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, at - now);
        return;
      }
      const w = this.waiters.shift();
      if (w === undefined) return;
      this.grants.push(now);
      w.cleanup();
      w.resolve();
    }
  }
}

export interface RateLimitConfig {
  light: number;
  medium: number;
  heavy: number;
  auth: number;
  windowSeconds: number;
}

/** RingCentral's documented defaults (requests per 60 s). */
export const DEFAULT_RATE_LIMITS: RateLimitConfig = { light: 50, medium: 40, heavy: 10, auth: 5, windowSeconds: 60 };

export class RateLimiters {
  private readonly groups: Record<RateGroup, GroupLimiter>;

  constructor(cfg: RateLimitConfig = DEFAULT_RATE_LIMITS, clock: LimiterClock = realClock) {
    this.groups = {
      Light: new GroupLimiter("Light", cfg.light, cfg.windowSeconds, clock),
      Medium: new GroupLimiter("Medium", cfg.medium, cfg.windowSeconds, clock),
      Heavy: new GroupLimiter("Heavy", cfg.heavy, cfg.windowSeconds, clock),
      Auth: new GroupLimiter("Auth", cfg.auth, cfg.windowSeconds, clock),
    };
  }

  get(group: RateGroup): GroupLimiter {
    return this.groups[group];
  }

  state(): Record<RateGroup, GroupState> {
    return {
      Light: this.groups.Light.state(),
      Medium: this.groups.Medium.state(),
      Heavy: this.groups.Heavy.state(),
      Auth: this.groups.Auth.state(),
    };
  }

  close(): void {
    for (const g of RATE_GROUPS) this.groups[g].close();
  }
}
