/**
 * Keeping a store's leases alive from the claim loop (./claim-loop.ts): the
 * renewal and the "lost or released?" check for any store whose rows carry
 * the lease owner (the outbound and inbound stores).
 */
import type { LeaseKeeping } from "./claim-loop.js";

/** What the lease keeper needs of a store. */
export interface LeasedStore {
  /** This store's lease owner. */
  readonly owner: string;
  renewLease(id: string, leaseMs: number): Promise<boolean>;
  get(id: string): Promise<{ readonly leaseOwner?: string | null } | undefined>;
}

export interface StoreLeaseOptions<T> {
  /** The lease length (renewed every third of it). */
  readonly ms: number;
  /** The error a step is aborted with when `holder` (another owner, or nobody when the row is gone) took the item. */
  lostError(item: T, holder: string | null): Error;
  onRenewError?(item: T, err: unknown): void;
  onLost?(item: T, reason: Error): void;
}

/**
 * Renew through `store.renewLease`; a renewal that fails because the row is
 * held by another owner now (or was deleted) aborts the step, one that fails
 * because the lease was released (the step moved the row on) does not.
 */
export function storeLease<T extends { readonly id: string }>(store: LeasedStore, opts: StoreLeaseOptions<T>): LeaseKeeping<T> {
  return {
    ms: opts.ms,
    renew: (item, ms) => store.renewLease(item.id, ms),
    lost: async (item) => {
      const row = await store.get(item.id);
      const holder = row?.leaseOwner ?? null;
      if (row !== undefined && (holder === null || holder === store.owner)) return undefined;
      return opts.lostError(item, holder);
    },
    ...(opts.onRenewError !== undefined && { onRenewError: opts.onRenewError }),
    ...(opts.onLost !== undefined && { onLost: opts.onLost }),
  };
}
