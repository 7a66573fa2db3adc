/**
 * Retry and polling schedules are data: a string such as "30s,1m,5m*3,1h"
 * (units ms, s, m, h, d; `*N` repeats an entry), configurable by operators.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** More waits than any schedule needs; a larger `*N` is a typo that would otherwise fill memory at start. */
export const MAX_SCHEDULE_ENTRIES = 10_000;

export function parseSchedule(text: string): readonly number[] {
  const out: number[] = [];
  for (const raw of text.split(",")) {
    const m = /^\s*(\d+)(ms|s|m|h|d)(?:\*(\d+))?\s*$/.exec(raw);
    if (!m) throw new Error(`invalid schedule entry ${JSON.stringify(raw.trim())} (expected e.g. 30s, 5m*2, 1h)`);
    const ms = Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    const times = m[3] === undefined ? 1 : Number(m[3]);
    if (times < 1 || out.length + times > MAX_SCHEDULE_ENTRIES) {
      throw new Error(`invalid schedule entry ${JSON.stringify(raw.trim())} (a repeat is 1 to ${MAX_SCHEDULE_ENTRIES} in all)`);
    }
    for (let i = 0; i < times; i++) out.push(ms);
  }
  return out;
}

/** Parse a duration such as "30s" or "5m" into milliseconds. */
export function parseDuration(text: string): number {
  const s = parseSchedule(text);
  if (s.length !== 1) throw new Error(`expected one duration, got ${JSON.stringify(text)}`);
  return s[0] as number;
}

/**
 * The delay before attempt number `attempt` (1-based: the delay after the first
 * failure is attempt 1), or undefined when the schedule is exhausted.
 * `jitter` in [0,1] spreads retries: the delay is drawn from [d*(1-jitter), d].
 */
export function delayFor(
  schedule: readonly number[],
  attempt: number,
  jitter = 0.2,
  random: () => number = Math.random,
): number | undefined {
  const base = schedule[attempt - 1];
  if (base === undefined) return undefined;
  return Math.round(base * (1 - jitter * random()));
}

/** Like delayFor, but repeats the last entry forever (for polling). */
export function pollDelay(schedule: readonly number[], attempt: number): number {
  if (schedule.length === 0) throw new Error("empty schedule");
  const i = Math.min(Math.max(attempt, 1), schedule.length) - 1;
  return schedule[i] as number;
}
