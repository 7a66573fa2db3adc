import { rcError, type ApiFailure } from "./http.js";

export type Group = "Light" | "Medium" | "Heavy" | "Auth";
export const GROUPS: readonly Group[] = ["Light", "Medium", "Heavy", "Auth"];

export interface RateLimitConfig {
  limits: Record<Group, number>;
  windowSeconds: number;
  penaltySeconds: number;
}

interface Bucket {
  /** Times (ms) of the accepted requests still inside the sliding window. */
  hits: number[];
  penaltyUntil: number;
}

export type RateDecision =
  | { ok: true; headers: Record<string, string> }
  | { ok: false; headers: Record<string, string>; failure: ApiFailure };

/**
 * RingCentral's user-level limits (NOTES §h): a sliding window per usage-plan
 * group and per (app, user). A breach answers 429 with Retry-After; during the
 * penalty every request answers 429 and restarts the penalty.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly config: RateLimitConfig;
  private readonly now: () => number;

  constructor(config: RateLimitConfig, now: () => number = Date.now) {
    this.config = config;
    this.now = now;
  }

  headers(group: Group, remaining: number): Record<string, string> {
    return {
      "X-Rate-Limit-Group": group.toLowerCase(),
      "X-Rate-Limit-Limit": String(this.config.limits[group]),
      "X-Rate-Limit-Remaining": String(Math.max(0, remaining)),
      "X-Rate-Limit-Window": String(this.config.windowSeconds),
    };
  }

  /** A 429 as RingCentral sends it, used for breaches and for injected faults. */
  tooMany(group: Group, retryAfterSeconds: number): ApiFailure {
    return rcError(429, "CMN-301", "Request rate exceeded", {}, {
      ...this.headers(group, 0),
      "Retry-After": String(retryAfterSeconds),
    });
  }

  check(group: Group, key: string): RateDecision {
    const now = this.now();
    const id = `${group}\u0000${key}`;
    let bucket = this.buckets.get(id);
    if (!bucket) {
      bucket = { hits: [], penaltyUntil: 0 };
      this.buckets.set(id, bucket);
    }
    const windowMs = this.config.windowSeconds * 1000;
    const penaltyMs = this.config.penaltySeconds * 1000;
    const limit = this.config.limits[group];
    while (bucket.hits.length > 0 && (bucket.hits[0] ?? 0) <= now - windowMs) bucket.hits.shift();

    if (bucket.penaltyUntil > now || bucket.hits.length >= limit) {
      bucket.penaltyUntil = now + penaltyMs;
      const failure = this.tooMany(group, this.config.penaltySeconds);
      return { ok: false, headers: failure.headers, failure };
    }
    bucket.hits.push(now);
    return { ok: true, headers: this.headers(group, limit - bucket.hits.length) };
  }

  reset(): void {
    this.buckets.clear();
  }
}
