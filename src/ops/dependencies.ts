/**
 * States of the services faxbridge depends on but does not need to take mail
 * (RingCentral, the outgoing mail server). Each check result is cached for a
 * few seconds and concurrent askers share one check in flight, so a load
 * balancer probing /readyz a hundred times opens a bounded number of
 * connections to the mail server, not a hundred. The states go into the
 * /readyz body and into /metrics (faxbridge_dependency_up).
 */
import { errorMessage } from "../errors.js";
import type { Metrics } from "../metrics.js";

export interface DependencyState {
  readonly state: "up" | "down";
  /** "ok" or why it is down. */
  readonly detail: string;
  /** ISO time of the check this state comes from. */
  readonly checkedAt: string;
}

export interface DependencyMonitorOptions {
  metrics: Metrics;
  /** How long one result is reused (default 5 s). */
  cacheMs?: number;
  /** One check's timeout (default 5 s). */
  timeoutMs?: number;
  now?: () => number;
}

interface Entry {
  readonly check: () => Promise<void>;
  readonly cacheMs: number;
  result: (DependencyState & { at: number }) | undefined;
  flight: Promise<DependencyState> | undefined;
}

export class DependencyMonitor {
  readonly #entries = new Map<string, Entry>();
  readonly #metrics: Metrics;
  readonly #cacheMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(opts: DependencyMonitorOptions) {
    this.#metrics = opts.metrics;
    this.#cacheMs = opts.cacheMs ?? 5_000;
    this.#timeoutMs = opts.timeoutMs ?? 5_000;
    this.#now = opts.now ?? Date.now;
  }

  /** `cacheMs` overrides the default reuse time (a rate-limited API deserves longer). */
  add(name: string, check: () => Promise<void>, opts: { cacheMs?: number } = {}): void {
    this.#entries.set(name, { check, cacheMs: opts.cacheMs ?? this.#cacheMs, result: undefined, flight: undefined });
  }

  /** Every dependency's state, from the cache when fresh, else checked now (one check per dependency in flight). */
  async states(): Promise<Record<string, DependencyState>> {
    const out: Record<string, DependencyState> = {};
    await Promise.all(
      [...this.#entries].map(async ([name, entry]) => {
        out[name] = await this.#state(name, entry);
      }),
    );
    return out;
  }

  #state(name: string, entry: Entry): Promise<DependencyState> {
    const now = this.#now();
    const cached = entry.result;
    if (cached !== undefined && now - cached.at < entry.cacheMs) return Promise.resolve({ state: cached.state, detail: cached.detail, checkedAt: cached.checkedAt });
    entry.flight ??= (async () => {
      let state: DependencyState["state"] = "up";
      let detail = "ok";
      try {
        await withTimeout(entry.check(), this.#timeoutMs);
      } catch (err) {
        state = "down";
        detail = errorMessage(err);
      }
      const at = this.#now();
      const result = { state, detail, checkedAt: new Date(at).toISOString(), at };
      entry.result = result;
      this.#metrics.dependencyUp.set({ dependency: name }, state === "up" ? 1 : 0);
      return { state, detail, checkedAt: result.checkedAt };
    })().finally(() => {
      entry.flight = undefined;
    });
    return entry.flight;
  }
}

export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
