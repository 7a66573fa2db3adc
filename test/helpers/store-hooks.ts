/**
 * Test hooks around an OutboundStore: a decorator that runs a test's code
 * around the store calls a scenario needs (e.g. a "crash" after RingCentral
 * accepted a fax but before its id is recorded), so production code carries
 * no test hooks.
 */
import type { ClaimOptions, JobPatch, JobState, OutboundStore, RescheduleOptions, TransitionOptions } from "../../src/store/ports.js";

export interface WorkerHooks {
  /** Runs after RingCentral accepted a fax and before the id is recorded; a throw simulates a crash there. */
  beforeRecordSubmit?: (jobId: string, rcMessageId: string) => Promise<void> | void;
  /** Claim only jobs in these states (e.g. ["received"]: an instance that parses and never sends). */
  claimOnly?: readonly JobState[];
  /** Record parsed jobs as due only at this time (epoch ms): they wait until an operator's retry makes them due. */
  parkParsedUntil?: number;
  /** Runs before every reschedule; a throw simulates a store that cannot write (a full disk, a lost connection). */
  beforeReschedule?: (jobId: string, from: JobState) => Promise<void> | void;
}

/** The store with `hooks` run around its calls; every other member is the store's own. */
export function withStoreHooks<S extends OutboundStore>(store: S, hooks: WorkerHooks): S {
  const transition = async (id: string, from: JobState, to: JobState, patch?: JobPatch, opts?: TransitionOptions): ReturnType<OutboundStore["transition"]> => {
    const rcMessageId = patch?.rcMessageId;
    if (from === "submitting" && to === "submitted" && typeof rcMessageId === "string") await hooks.beforeRecordSubmit?.(id, rcMessageId);
    const parked = from === "received" && to === "parsed" && hooks.parkParsedUntil !== undefined ? { ...patch, nextAttemptAt: hooks.parkParsedUntil } : patch;
    return store.transition(id, from, to, parked, opts);
  };
  const claimDue = async (states: readonly JobState[], opts: ClaimOptions): ReturnType<OutboundStore["claimDue"]> => {
    const only = hooks.claimOnly;
    const wanted = only === undefined ? states : states.filter((s) => only.includes(s));
    return wanted.length === 0 ? [] : store.claimDue(wanted, opts);
  };
  const reschedule = async (id: string, opts: RescheduleOptions): ReturnType<OutboundStore["reschedule"]> => {
    await hooks.beforeReschedule?.(id, opts.from);
    return store.reschedule(id, opts);
  };
  return new Proxy(store, {
    get(target, prop) {
      if (prop === "transition") return transition;
      if (prop === "claimDue") return claimDue;
      if (prop === "reschedule") return reschedule;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
