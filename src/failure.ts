/**
 * The one way of saying "retry or not": a failure is transient (the same work
 * may succeed later; retried per the relevant schedule) or permanent (retrying
 * cannot help; give up and tell someone). RingCentral submissions
 * (outbound/classify.ts), inbound delivery (inbound/deliver.ts), mail delivery
 * (mail/transport.ts) and per-recipient fax errors (outbound/fax-errors.ts)
 * all answer with this type.
 */

export type FailureKind = "transient" | "permanent";

/** A verdict on one failure. */
export interface Failure {
  readonly kind: FailureKind;
  /** Short lower-case phrase for logs and notices. */
  readonly reason: string;
  /** The least wait a server asked for (Retry-After). */
  readonly retryAfterMs?: number;
}

/** An error that carries its own verdict (e.g. MailDeliveryError). */
export interface KindedError {
  readonly failureKind: FailureKind;
}

function hasKind(err: unknown): err is KindedError {
  if (typeof err !== "object" || err === null || !("failureKind" in err)) return false;
  const k = (err as { failureKind: unknown }).failureKind;
  return k === "transient" || k === "permanent";
}

/**
 * The verdict an error carries, else `fallback`: local trouble (disk full,
 * permissions) or something unforeseen is worth another try by default.
 */
export function failureOf(err: unknown, fallback: FailureKind = "transient"): Failure {
  const kind = hasKind(err) ? err.failureKind : fallback;
  return { kind, reason: err instanceof Error ? err.message : String(err) };
}

export function isTransient(f: { readonly kind: FailureKind }): boolean {
  return f.kind === "transient";
}
