import { ABUSE_MAX_TRACKED } from "../tunables.js";

/**
 * Abuse limits kept in memory (they protect the process, a restart may
 * forget them): new connections per client IP per minute, and failed AUTH
 * attempts per client IP with a lockout and a growing reply delay.
 */

const MAX_TRACKED = ABUSE_MAX_TRACKED;

/** Sliding-window count of connections per IP. */
export class ConnectionRate {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, number[]>();

  constructor(limitPerMinute: number, opts: { now?: () => number; windowMs?: number } = {}) {
    this.#limit = limitPerMinute;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Count a new connection; false (and not counted) when the IP is over its limit. */
  admit(ip: string): boolean {
    if (this.#limit <= 0) return true;
    const now = this.#now();
    const since = now - this.#windowMs;
    const times = (this.#seen.get(ip) ?? []).filter((t) => t > since);
    if (times.length >= this.#limit) {
      this.#seen.set(ip, times);
      return false;
    }
    times.push(now);
    this.#seen.set(ip, times);
    if (this.#seen.size > MAX_TRACKED) {
      for (const [k, v] of this.#seen) if (v.every((t) => t <= since)) this.#seen.delete(k);
    }
    return true;
  }
}

export interface AuthLockoutOptions {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly lockoutMs: number;
  readonly baseDelayMs: number;
  readonly now?: () => number;
}

interface AuthState {
  failures: number[];
  lockedUntil: number;
}

/** Failed AUTH attempts per IP: after `maxFailures` within `windowMs`, AUTH is refused for `lockoutMs`. */
export class AuthLockout {
  readonly #opts: AuthLockoutOptions;
  readonly #now: () => number;
  readonly #state = new Map<string, AuthState>();

  constructor(opts: AuthLockoutOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** The time AUTH from this IP is refused until, or undefined when it is not locked. */
  lockedUntil(ip: string): number | undefined {
    const s = this.#state.get(ip);
    if (s === undefined) return undefined;
    return s.lockedUntil > this.#now() ? s.lockedUntil : undefined;
  }

  /** Record a failure; returns how long to hold the failure reply and whether this failure locked the IP. */
  failed(ip: string): { delayMs: number; locked: boolean; failures: number } {
    const now = this.#now();
    const s = this.#state.get(ip) ?? { failures: [], lockedUntil: 0 };
    s.failures = s.failures.filter((t) => t > now - this.#opts.windowMs);
    s.failures.push(now);
    const failures = s.failures.length;
    let locked = false;
    if (this.#opts.maxFailures > 0 && failures >= this.#opts.maxFailures) {
      s.lockedUntil = now + this.#opts.lockoutMs;
      s.failures = [];
      locked = true;
    }
    this.#state.set(ip, s);
    if (this.#state.size > MAX_TRACKED) this.#sweep(now);
    const delayMs = this.#opts.baseDelayMs * 2 ** Math.min(failures - 1, 3);
    return { delayMs, locked, failures };
  }

  /** A successful login clears the IP's failures (not an active lockout). */
  succeeded(ip: string): void {
    const s = this.#state.get(ip);
    if (s !== undefined && s.lockedUntil <= this.#now()) this.#state.delete(ip);
  }

  #sweep(now: number): void {
    for (const [ip, s] of this.#state) {
      if (s.lockedUntil <= now && s.failures.every((t) => t <= now - this.#opts.windowMs)) this.#state.delete(ip);
    }
  }
}
