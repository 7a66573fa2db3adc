/**
 * A store decorator for tests: run code around the store's calls, e.g. to
 * simulate a crash at an exact point (a throw before a transition commits
 * leaves the job as it was, as a kill -9 would). Replaces test hooks in the
 * worker's own dependencies.
 */
import type { JobPatch, JobState, OutboundStore } from "../../src/store/ports.js";

export interface OutboundStoreHooks {
  /** Before any transition is applied; a throw means it never happened. */
  beforeTransition?: (id: string, from: JobState, to: JobState, patch: JobPatch) => Promise<void> | void;
  /** After RingCentral accepted a fax and before its id is recorded (submitting → submitted); a throw simulates a crash there. */
  beforeRecordSubmit?: (jobId: string, rcMessageId: string) => Promise<void> | void;
}

/** `store` with `hooks` run before its transitions; everything else passes through. */
export function withStoreHooks(store: OutboundStore, hooks: OutboundStoreHooks): OutboundStore {
  const transition: OutboundStore["transition"] = async (id, from, to, patch = {}, opts) => {
    await hooks.beforeTransition?.(id, from, to, patch);
    if (from === "submitting" && to === "submitted" && typeof patch.rcMessageId === "string") await hooks.beforeRecordSubmit?.(id, patch.rcMessageId);
    return store.transition(id, from, to, patch, opts);
  };
  return new Proxy(store, {
    get(target, prop) {
      if (prop === "transition") return transition;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
