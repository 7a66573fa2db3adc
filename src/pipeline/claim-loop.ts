/**
 * The claim loop shared by the outbound worker and inbound delivery: claim due
 * rows from a durable store with a lease, run each claimed item at most once at
 * a time in this process, and look again when woken, when an item finishes, or
 * after an idle delay.
 *
 * - Lanes: items are claimed per lane (e.g. "work", "send", "poll"), each with
 *   its own limit decided by the owner at claim time (concurrency minus the
 *   lane's busy count, capped by a rate limit's free slots).
 * - Leases are the store's business: `claim` takes them, the item's step ends
 *   them with a transition; a crashed process's leases expire. With `lease`
 *   the loop keeps them short and alive: while an item's step runs, its lease
 *   is renewed every third of `lease.ms` (a 50 MB upload included). When a
 *   renewal finds the lease held by another owner (this process stalled past
 *   it and another instance took the item over), the step's AbortSignal fires
 *   and renewals stop: the step must not touch the item any more (the store
 *   refuses its transitions anyway).
 * - Wake-ups: `wake()` claims now (or right after the claim in progress);
 *   `wakeIn(ms)` arms the timer; after every claim round the loop arms it with
 *   the owner's `nextDelay`.
 * - Re-claims: a claim can return an item that is still running here (its
 *   step made it due again, or its lease ran out during a slow step). It is
 *   never run twice at once: "skip" drops the claim, "follow-up" runs the next
 *   step on a fresh copy (`reload`) once the running one is done.
 * - Stop/drain: `stop()` stops claiming and resolves when the claim round,
 *   every running item and every tracked side task have settled.
 */

/** The longest the loop sleeps, so a clock jump cannot park it for days. */
const MAX_SLEEP_MS = 3_600_000;

export interface InFlight<T, L extends string> {
  readonly item: T;
  readonly lane: L;
}

/** Keeping running items' leases alive (see the module comment). */
export interface LeaseKeeping<T> {
  /** The lease length; renewals run every third of it. */
  readonly ms: number;
  /** Extend the item's lease by `ms` from now; false when it is no longer this process's. */
  renew(item: T, ms: number): Promise<boolean>;
  /**
   * After a renewal said false: the reason to abort the step with when another
   * owner holds the item now, or undefined when the lease was merely released
   * (the step moved the item on itself, or an operator did): no abort.
   */
  lost(item: T): Promise<Error | undefined>;
  /** A renewal failed (the database is unreachable): the loop tries again at the next beat. */
  onRenewError?(item: T, err: unknown): void;
  /** The step was aborted because its lease was lost. */
  onLost?(item: T, reason: Error): void;
}

export interface ClaimLoopOptions<T, L extends string> {
  /** The lanes to claim for this round and how many each may take (`busy`: items running per lane). */
  plan(busy: Readonly<Record<L, number>>, now: number): readonly (readonly [L, number])[];
  /** Claim up to `limit` due items of a lane with a lease. */
  claim(lane: L, limit: number, now: number): Promise<readonly T[]>;
  /** Run one claimed item. Its rejection goes to `onError`. `signal` fires when the item's lease was lost (`lease`). */
  run(item: T, lane: L, signal: AbortSignal): Promise<void>;
  /** Called when `run` rejects. */
  onError(item: T, err: unknown, lane: L): Promise<void> | void;
  /** The item's id (at most one run per id at a time). */
  id(item: T): string;
  /** The lanes, so busy counts start at zero. */
  readonly lanes: readonly L[];
  /** What to do with a claim of an item still running here (see the module comment). */
  readonly reclaimed: "skip" | "follow-up";
  /** The item as it is now, for a follow-up ("follow-up" only). */
  reload?(id: string): Promise<T | undefined>;
  /** Called when a follow-up could not be started. */
  onFollowUpError?(id: string, err: unknown): void;
  /** Runs before each claim round (housekeeping such as gauges). */
  beforeClaim?(): Promise<void>;
  /** How long to sleep after a claim round; undefined: no timer (something else wakes the loop). */
  nextDelay(): Promise<number | undefined> | number | undefined;
  /** A claim round failed; return a delay to use instead of `nextDelay`. */
  onRoundError(err: unknown): number | undefined;
  /** Unref the timer so it does not keep the process alive. */
  readonly unref?: boolean;
  /** The clock claims are made with (default Date.now). */
  readonly now?: () => number;
  /** Renew running items' leases (see the module comment); absent: claims keep the lease they were given. */
  readonly lease?: LeaseKeeping<T>;
}

export class ClaimLoop<T, L extends string> {
  readonly #o: ClaimLoopOptions<T, L>;
  readonly #inFlight = new Map<string, { promise: Promise<void>; item: T; lane: L }>();
  /** Items claimed again while their previous run was still finishing ("follow-up"). */
  readonly #followUps = new Set<string>();
  /** Side tasks (follow-ups, notices) to await on stop. */
  readonly #side = new Set<Promise<void>>();
  #started = false;
  #stopping = false;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #again = false;

  constructor(options: ClaimLoopOptions<T, L>) {
    this.#o = options;
  }

  /** Allow claiming (does not claim yet: call wake()). */
  start(): void {
    this.#started = true;
    this.#stopping = false;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Items running in this process. */
  get size(): number {
    return this.#inFlight.size;
  }

  /** Each running item with its lane. */
  *running(): IterableIterator<InFlight<T, L> & { readonly id: string }> {
    for (const [id, f] of this.#inFlight) yield { id, item: f.item, lane: f.lane };
  }

  isRunning(id: string): boolean {
    return this.#inFlight.has(id);
  }

  /** Claim now, or right after the round in progress. */
  wake(): void {
    if (!this.#started || this.#stopping) return;
    if (this.#round !== undefined) {
      this.#again = true;
      return;
    }
    this.#arm(0);
  }

  /** Claim again after `ms` (replaces the timer). */
  wakeIn(ms: number): void {
    if (!this.#started || this.#stopping) return;
    this.#arm(ms);
  }

  /** Await `task` on stop (acceptance notices and the like). */
  track(task: Promise<void>): void {
    const p: Promise<void> = task.finally(() => this.#side.delete(p));
    this.#side.add(p);
  }

  /** Stop claiming; resolves when the round, the running items and the side tasks have settled. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
    await Promise.allSettled([...this.#inFlight.values()].map((f) => f.promise));
    await Promise.allSettled([...this.#side]);
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#startRound();
      },
      Math.max(0, Math.min(ms, MAX_SLEEP_MS)),
    );
    if (this.#o.unref === true) this.#timer.unref();
  }

  #startRound(): void {
    if (this.#stopping) return;
    if (this.#round !== undefined) {
      this.#again = true;
      return;
    }
    let override: number | undefined;
    const round = this.#claimRound().catch((err: unknown) => {
      override = this.#o.onRoundError(err);
    });
    this.#round = round
      .then(async () => (override !== undefined ? override : this.#stopping || this.#again ? undefined : await this.#o.nextDelay()))
      .catch((err: unknown) => this.#o.onRoundError(err))
      .then((delay) => {
        this.#round = undefined;
        if (this.#stopping) return;
        if (this.#again) {
          this.#again = false;
          this.wake();
          return;
        }
        if (delay !== undefined) this.#arm(delay);
      });
  }

  async #claimRound(): Promise<void> {
    this.#again = false;
    if (this.#o.beforeClaim !== undefined) await this.#o.beforeClaim();
    const busy = Object.fromEntries(this.#o.lanes.map((l) => [l, 0])) as Record<L, number>;
    for (const f of this.#inFlight.values()) busy[f.lane]++;
    const now = (this.#o.now ?? Date.now)();
    for (const [lane, limit] of this.#o.plan(busy, now)) {
      if (limit <= 0 || this.#stopping) continue;
      const items = await this.#o.claim(lane, limit, now);
      for (const item of items) this.launch(item, lane);
    }
  }

  /** Run a claimed item (claim rounds do this; owners call it for items claimed elsewhere). */
  launch(item: T, lane: L): void {
    const id = this.#o.id(item);
    if (this.#inFlight.has(id)) {
      if (this.#o.reclaimed === "follow-up") this.#followUps.add(id);
      return;
    }
    const abort = new AbortController();
    const stopBeat = this.#heartbeat(item, abort);
    const promise = this.#o
      .run(item, lane, abort.signal)
      .catch((err: unknown) => this.#o.onError(item, err, lane))
      .finally(() => {
        stopBeat();
        this.#inFlight.delete(id);
        if (this.#followUps.delete(id)) this.track(this.#followUp(id, lane));
        this.wake();
      });
    this.#inFlight.set(id, { promise, item, lane });
  }

  /**
   * Renew the item's lease every third of its length while its step runs;
   * abort the step when another owner took the item. Returns the stop function.
   */
  #heartbeat(item: T, abort: AbortController): () => void {
    const lease = this.#o.lease;
    if (lease === undefined) return () => undefined;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const beat = async (): Promise<void> => {
      let kept: boolean;
      try {
        kept = await lease.renew(item, lease.ms);
      } catch (err) {
        lease.onRenewError?.(item, err);
        return next();
      }
      if (stopped) return;
      if (kept) return next();
      // Not ours any more: taken over (abort the step), or released by the step itself (nothing to do).
      let reason: Error | undefined;
      try {
        reason = await lease.lost(item);
      } catch (err) {
        lease.onRenewError?.(item, err);
        return next();
      }
      if (stopped) return;
      // Released: keep watching (a later transition of the step may lease it again, or another owner may take it).
      if (reason === undefined) return next();
      stopped = true;
      lease.onLost?.(item, reason);
      abort.abort(reason);
    };
    const next = (): void => {
      if (stopped) return;
      timer = setTimeout(() => void beat(), Math.max(1, Math.floor(lease.ms / 3)));
      timer.unref();
    };
    next();
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }

  /** Run the step a re-claim asked for, on the item as it is now. */
  async #followUp(id: string, lane: L): Promise<void> {
    try {
      const item = await this.#o.reload?.(id);
      if (item !== undefined && !this.#stopping) this.launch(item, lane);
    } catch (err) {
      this.#o.onFollowUpError?.(id, err);
    }
  }
}
