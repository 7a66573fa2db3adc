import type { OutboundJob, OutboundStore, QuotaEntry, QuotaLimit, QuotaStore } from "../store/ports.js";
import { QUOTA_WINDOW_MS } from "../tunables.js";

/**
 * Hourly quotas, per sender and for everyone together: counted in fax
 * recipients of accepted mails (the SMTP policy), in pages × recipients (the
 * worker, once a fax's pages are known) or in notices per address. The usage
 * lives in the store's quota ledger (QuotaStore), shared by every instance
 * and the CLI on the same database: a reservation is one atomic check-and-
 * record there, so instances accepting mail at once cannot together exceed a
 * limit, and a restart forgets nothing.
 *
 * A mail is charged to one or more keys, each held to the per-sender limit:
 * the sender identity (src/policy/identity.ts) and, for unauthenticated
 * clients outside the trusted relays, `ip:<client address>`, so new sender
 * addresses from one client do not each get a fresh quota. Every tracker has
 * its own `scope` (its keys in the ledger are `<scope>:<key>`, the global
 * one `<scope>:*`).
 */

export { QUOTA_WINDOW_MS };

export interface QuotaLimits {
  readonly perSenderPerHour: number;
  readonly globalPerHour: number;
}

export type QuotaVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly scope: "sender" | "client" | "global"; readonly limit: number; readonly freeAt: number };

export interface QuotaReservation {
  /** Give the reserved units back (the mail was not recorded after all). */
  release(): Promise<void>;
}

const GLOBAL = "*";

export class QuotaTracker {
  readonly #store: QuotaStore;
  readonly #scope: string;
  readonly #limits: QuotaLimits;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(store: QuotaStore, scope: string, limits: QuotaLimits, opts: { now?: () => number; windowMs?: number } = {}) {
    this.#store = store;
    this.#scope = scope;
    this.#limits = limits;
    this.#windowMs = opts.windowMs ?? QUOTA_WINDOW_MS;
    this.#now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.#limits.perSenderPerHour > 0 || this.#limits.globalPerHour > 0;
  }

  /**
   * The ledger is new (an upgrade from a version that counted in memory):
   * count the jobs accepted within the window once (a store query), for
   * whichever instance gets there first. Resolves with the jobs counted (0
   * when the scope was seeded before).
   */
  async load(store: Pick<OutboundStore, "receivedSince">, charge: (job: OutboundJob) => { keys: readonly string[]; n: number } | undefined): Promise<number> {
    if (!this.enabled) return 0;
    const entries: QuotaEntry[] = [];
    for await (const job of store.receivedSince(this.#now() - this.#windowMs)) {
      const c = charge(job);
      if (c === undefined || c.n <= 0) continue;
      entries.push({ keys: this.#keys(c.keys), at: job.receivedAt, n: c.n });
    }
    return (await this.#store.seed(this.#scope, entries)) ? entries.length : 0;
  }

  /** Would `wanted` more units (on top of `pending` already counted for this mail) fit for every one of `keys`? Nothing is recorded. */
  async check(keys: readonly string[], pending: number, wanted = 1): Promise<QuotaVerdict> {
    if (!this.enabled) return { ok: true };
    return this.#verdict(await this.#store.check(this.#limitsOf(keys), pending + wanted, this.#now(), this.#windowMs));
  }

  /** Check and count `n` units at once for all `keys`: one atomic operation in the store, across instances. */
  async reserve(keys: readonly string[], n: number): Promise<QuotaVerdict & { reservation?: QuotaReservation }> {
    if (!this.enabled) return { ok: true, reservation: { release: async () => undefined } };
    const taken = await this.#store.take(this.#limitsOf(keys), n, this.#now(), this.#windowMs);
    if (!taken.ok) return this.#verdict(taken);
    let released = false;
    return {
      ok: true,
      reservation: {
        release: async () => {
          if (released) return;
          released = true;
          await this.#store.release(taken.id);
        },
      },
    };
  }

  /** Count `n` units that were already spent (no check): usage learnt after the fact. */
  async charge(keys: readonly string[], n: number): Promise<void> {
    if (!this.enabled || n <= 0) return;
    await this.#store.take(
      this.#limitsOf(keys).map((l) => ({ key: l.key, limit: 0 })),
      n,
      this.#now(),
      this.#windowMs,
    );
  }

  #keys(keys: readonly string[]): string[] {
    const out = keys.map((k) => `${this.#scope}:${k}`);
    if (this.#limits.globalPerHour > 0) out.push(`${this.#scope}:${GLOBAL}`);
    return out;
  }

  #limitsOf(keys: readonly string[]): QuotaLimit[] {
    const { perSenderPerHour, globalPerHour } = this.#limits;
    const limits: QuotaLimit[] = perSenderPerHour > 0 ? keys.map((k) => ({ key: `${this.#scope}:${k}`, limit: perSenderPerHour })) : [];
    if (globalPerHour > 0) limits.push({ key: `${this.#scope}:${GLOBAL}`, limit: globalPerHour });
    return limits;
  }

  #verdict(t: Awaited<ReturnType<QuotaStore["take"]>>): QuotaVerdict {
    if (t.ok) return { ok: true };
    const key = t.key.slice(this.#scope.length + 1);
    const scope = key === GLOBAL ? "global" : key.startsWith("ip:") ? "client" : "sender";
    return { ok: false, scope, limit: t.limit, freeAt: t.freeAt };
  }
}
