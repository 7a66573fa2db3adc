/**
 * When the outbound worker tries again: the schedules of `fax.retrySchedule`
 * (failed steps, sends, reports), `fax.statusPollSchedule` (status polls) and
 * `fax.redial`, with jitter and a server's Retry-After applied. Data in, delays
 * out; the steps decide what is retried (src/failure.ts says transient or
 * permanent).
 */
import type { Config } from "../config/schema.js";
import { delayFor, parseSchedule, pollDelay } from "../util/schedule.js";
import { redialSchedule } from "./redial.js";

export class RetryPolicy {
  readonly #retry: readonly number[];
  readonly #poll: readonly number[];
  /** Delays between redial rounds for busy / no-answer recipients (redial.ts). */
  readonly redial: readonly number[];
  readonly #jitter: number;
  readonly #random: () => number;

  constructor(fax: Pick<Config["fax"], "retrySchedule" | "statusPollSchedule" | "redial">, jitter: number, random: () => number) {
    this.#retry = parseSchedule(fax.retrySchedule);
    this.#poll = parseSchedule(fax.statusPollSchedule);
    this.redial = redialSchedule(fax.redial);
    this.#jitter = jitter;
    this.#random = random;
  }

  /** The jittered delay before retry `attempt` (1-based), at least the server's Retry-After; undefined once the schedule is exhausted. */
  retryDelay(attempt: number, given?: { readonly retryAfterMs?: number | undefined }): number | undefined {
    const d = delayFor(this.#retry, attempt, this.#jitter, this.#random);
    if (d === undefined) return undefined;
    return Math.max(d, given?.retryAfterMs ?? 0);
  }

  /** The retry schedule's delay for `attempt`, its last entry repeated forever (steps that never give up). */
  backoff(attempt: number): number {
    return pollDelay(this.#retry, attempt);
  }

  /** The delay before status poll `n` (1-based), its last entry repeated forever. */
  pollDelay(n: number): number {
    return pollDelay(this.#poll, n);
  }

  /** When to poll a fax first: one poll delay after submission, or after its send time when that is later. */
  firstPollAt(now: number, sendTime: string | undefined): number {
    const first = this.pollDelay(1);
    const at = sendTime !== undefined ? Date.parse(sendTime) : NaN;
    return Number.isFinite(at) && at > now ? at + first : now + first;
  }
}
