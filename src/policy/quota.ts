import type { OutboundJob, OutboundStore } from "../store/ports.js";

/**
 * Hourly quotas, per sender and for everyone together: counted in fax
 * recipients of accepted mails (the SMTP policy) or in pages × recipients
 * (the worker, once a fax's pages are known). The running counts live in
 * memory; they are rebuilt at start from the jobs the outbound store accepted
 * in the last window, so a restart does not reset them.
 *
 * A mail is charged to one or more keys, each held to the per-sender limit:
 * the sender identity (src/policy/identity.ts) and, for unauthenticated
 * clients outside the trusted relays, `ip:<client address>`, so new sender
 * addresses from one client do not each get a fresh quota.
 */

export const QUOTA_WINDOW_MS = 3_600_000;

interface Usage {
  readonly at: number;
  readonly n: number;
}

/** One window's usage for one key, oldest first. */
class Window {
  readonly events: Usage[] = [];
  total = 0;

  prune(since: number): void {
    let drop = 0;
    while (drop < this.events.length && (this.events[drop] as Usage).at <= since) {
      this.total -= (this.events[drop] as Usage).n;
      drop++;
    }
    if (drop > 0) this.events.splice(0, drop);
  }

  add(at: number, n: number): void {
    // Seeded rows can come out of order by a few ms: keep the list sorted.
    let i = this.events.length;
    while (i > 0 && (this.events[i - 1] as Usage).at > at) i--;
    this.events.splice(i, 0, { at, n });
    this.total += n;
  }

  remove(at: number, n: number): void {
    const i = this.events.findIndex((e) => e.at === at && e.n === n);
    if (i >= 0) {
      this.events.splice(i, 1);
      this.total -= n;
    }
  }

  /** When enough usage will have expired that `wanted` more fit under `limit` (usage not yet recorded counts from `now`). */
  freeAt(limit: number, wanted: number, windowMs: number, now: number): number {
    let excess = this.total + wanted - limit;
    for (const e of this.events) {
      excess -= e.n;
      if (excess <= 0) return e.at + windowMs;
    }
    return now + windowMs;
  }
}

export interface QuotaLimits {
  readonly perSenderPerHour: number;
  readonly globalPerHour: number;
}

export type QuotaVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly scope: "sender" | "client" | "global"; readonly limit: number; readonly freeAt: number };

export interface QuotaReservation {
  /** Give the reserved units back (the mail was not recorded after all). */
  release(): void;
}

export class QuotaTracker {
  readonly #limits: QuotaLimits;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #senders = new Map<string, Window>();
  readonly #global = new Window();

  constructor(limits: QuotaLimits, opts: { now?: () => number; windowMs?: number } = {}) {
    this.#limits = limits;
    this.#windowMs = opts.windowMs ?? QUOTA_WINDOW_MS;
    this.#now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.#limits.perSenderPerHour > 0 || this.#limits.globalPerHour > 0;
  }

  /** Rebuild the counts from jobs accepted within the window (a store query); `charge` says what each job used. */
  async load(store: Pick<OutboundStore, "receivedSince">, charge: (job: OutboundJob) => { keys: readonly string[]; n: number } | undefined): Promise<number> {
    if (!this.enabled) return 0;
    const since = this.#now() - this.#windowMs;
    let loaded = 0;
    for await (const job of store.receivedSince(since)) {
      const c = charge(job);
      if (c === undefined || c.n <= 0) continue;
      this.#record(c.keys, job.receivedAt, c.n);
      loaded++;
    }
    return loaded;
  }

  /** Would `wanted` more units (on top of `pending` already counted for this mail) fit for every one of `keys`? */
  check(keys: readonly string[], pending: number, wanted = 1): QuotaVerdict {
    const now = this.#now();
    const since = now - this.#windowMs;
    const { perSenderPerHour, globalPerHour } = this.#limits;
    if (perSenderPerHour > 0) {
      for (const key of keys) {
        const w = this.#senders.get(key);
        w?.prune(since);
        const used = w?.total ?? 0;
        if (used + pending + wanted > perSenderPerHour) {
          const freeAt = (w ?? new Window()).freeAt(perSenderPerHour, pending + wanted, this.#windowMs, now);
          return { ok: false, scope: key.startsWith("ip:") ? "client" : "sender", limit: perSenderPerHour, freeAt };
        }
      }
    }
    if (globalPerHour > 0) {
      this.#global.prune(since);
      if (this.#global.total + pending + wanted > globalPerHour) {
        return { ok: false, scope: "global", limit: globalPerHour, freeAt: this.#global.freeAt(globalPerHour, pending + wanted, this.#windowMs, now) };
      }
    }
    return { ok: true };
  }

  /** Check and count `n` units at once for all `keys` (synchronous: no other mail can slip in between). */
  reserve(keys: readonly string[], n: number): QuotaVerdict & { reservation?: QuotaReservation } {
    if (!this.enabled) return { ok: true, reservation: { release: () => undefined } };
    const verdict = this.check(keys, 0, n);
    if (!verdict.ok) return verdict;
    const at = this.#now();
    this.#record(keys, at, n);
    let released = false;
    return {
      ok: true,
      reservation: {
        release: () => {
          if (released) return;
          released = true;
          for (const key of keys) this.#senders.get(key)?.remove(at, n);
          this.#global.remove(at, n);
        },
      },
    };
  }

  /** Count `n` units that were already spent (no check): usage learnt after the fact. */
  charge(keys: readonly string[], n: number): void {
    if (this.enabled) this.#record(keys, this.#now(), n);
  }

  #record(keys: readonly string[], at: number, n: number): void {
    for (const key of keys) {
      let w = this.#senders.get(key);
      if (w === undefined) {
        w = new Window();
        this.#senders.set(key, w);
      }
      w.add(at, n);
    }
    this.#global.add(at, n);
    if (this.#senders.size > 10_000) this.#sweep();
  }

  #sweep(): void {
    const since = this.#now() - this.#windowMs;
    for (const [k, w] of this.#senders) {
      w.prune(since);
      if (w.total === 0) this.#senders.delete(k);
    }
  }
}
