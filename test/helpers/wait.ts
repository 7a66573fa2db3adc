export interface WaitOptions {
  timeoutMs?: number;
  what?: string;
  /** First pause between checks; it doubles after each miss up to `maxIntervalMs`. */
  intervalMs?: number;
  maxIntervalMs?: number;
}

/**
 * Poll `check` until it returns a value other than undefined/false, or fail after the timeout.
 * The pause backs off (20 ms doubling to 250 ms by default), so a check that calls a rate-limited
 * API makes a bounded number of calls: about 25 in 5 s, not 250.
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutOrOptions: number | WaitOptions = {},
  what?: string,
): Promise<T> {
  const o: WaitOptions = typeof timeoutOrOptions === "number" ? { timeoutMs: timeoutOrOptions } : timeoutOrOptions;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const label = what ?? o.what ?? "condition";
  const maxInterval = o.maxIntervalMs ?? 250;
  let interval = o.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await new Promise((r) => setTimeout(r, interval));
    interval = Math.min(maxInterval, interval * 2);
  }
}
