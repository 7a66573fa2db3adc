/**
 * Shared by the quota ledgers of both backends: the schema's shape (one row
 * per key of a take, all rows of a take share its id) and when a refused take
 * would fit.
 */
import { randomBytes } from "node:crypto";
import type { QuotaLimit } from "../ports.js";

/** A fresh take id. */
export function newTakeId(): string {
  return randomBytes(9).toString("base64url");
}

/** The limits worth locking and checking: distinct keys, sorted (a fixed lock order, no deadlocks). */
export function sortedKeys(limits: readonly QuotaLimit[]): string[] {
  return [...new Set(limits.map((l) => l.key))].sort();
}

/**
 * When enough of a key's usage (`events`, oldest first, all within the window)
 * will have expired that `wanted` more fit under `limit`; `now + windowMs`
 * when even an empty window would not hold them.
 */
export function freeAt(events: readonly { readonly at: number; readonly n: number }[], limit: number, wanted: number, windowMs: number, now: number): number {
  let excess = events.reduce((sum, e) => sum + e.n, 0) + wanted - limit;
  for (const e of events) {
    excess -= e.n;
    if (excess <= 0) return e.at + windowMs;
  }
  return now + windowMs;
}
