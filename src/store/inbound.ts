/**
 * The inbound (fax → email) store.
 *
 * Two things make delivery exactly-once across restarts, lost notifications
 * and the 5 s overlap of RingCentral's message-sync:
 *
 * 1. Discovery: each sync's new cursor (syncToken, syncTime) is committed in
 *    the SAME transaction as the faxes that sync returned, inserted with
 *    `INSERT … ON CONFLICT DO NOTHING` keyed by (extension, RingCentral message id). A fax seen
 *    twice (overlap, a fresh FSync after MSG-333, a restart before the cursor
 *    moved) is one row; a crash before the commit means the next sync, from the
 *    old cursor, finds it again.
 * 2. Delivery: a row moves `discovered` → `delivered` only after the mail
 *    server accepted the mail (250). The mail carries a Message-ID derived from
 *    the RingCentral id, so the one unavoidable duplicate window (a crash
 *    between the 250 and the commit) produces the same message again, which
 *    mail systems dedupe by Message-ID.
 *
 *     discovered ──► delivered
 *         │  ▲
 *         │  └── deferred (attempts+1, next_attempt_at; still `discovered`)
 *         └────► dead ──(redeliver)──► discovered
 *
 * Workers claim due rows with an expiring lease (`lease_until`, the store's
 * clock, held by the claiming store's owner); finishing, deferring or dying
 * releases it. A crashed worker's lease simply expires; a store whose lease
 * was taken over cannot finish the row (InboundStateError).
 */
import { NamedError } from "../errors.js";
// The inbound fax model shared by every backend; the store interface is in ./ports.ts.

export const INBOUND_STATES = ["discovered", "delivered", "dead"] as const;
export type InboundState = (typeof INBOUND_STATES)[number];

/** What we keep of a received fax (from its message-store record). */
export interface InboundAttachment {
  readonly id: string;
  readonly uri: string;
  readonly type?: string;
  readonly contentType?: string;
  readonly size?: number;
  readonly fileName?: string;
}

export interface InboundMessage {
  /** E.164 (or whatever RingCentral reported) of the sender; "" when withheld. */
  readonly from: string;
  readonly fromName?: string;
  /** Receiving numbers. */
  readonly to: readonly string[];
  readonly pages?: number;
  readonly resolution?: string;
  /** ISO date-time RingCentral received it. */
  readonly creationTime: string;
  readonly subject?: string;
  readonly attachments: readonly InboundAttachment[];
}

/** A fax a sync found; `extension` is the resolved extension id it belongs to. */
export interface NewInboundFax {
  readonly extension: string;
  readonly rcMessageId: string;
  readonly message: InboundMessage;
}

export interface InboundRouteResult {
  /** Index in `inbound.routes`, or -1 for `inbound.defaultTo`. */
  readonly route: number;
  readonly mailTo: readonly string[];
}

export interface InboundFax {
  /** Our id (time-sortable). */
  readonly id: string;
  readonly extension: string;
  readonly rcMessageId: string;
  readonly state: InboundState;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly leaseUntil: number | null;
  /** The store owner holding the lease (null when not leased). */
  readonly leaseOwner?: string | null;
  readonly message: InboundMessage;
  readonly route: InboundRouteResult | null;
  /** The Message-ID header of the mail, stable for this fax: `<fax-<extension>-<rcMessageId>@faxbridge>`. */
  readonly mailMessageId: string;
  readonly discoveredAt: number;
  readonly deliveredAt: number | null;
  readonly lastError: string | null;
  readonly updatedAt: number;
}

/** Where a sync left off for one configured extension. */
export interface SyncCursor {
  readonly syncToken: string;
  /** syncInfo.syncTime (ISO), the server's clock. */
  readonly syncTime: string | null;
  /** Epoch ms of the last FSync. */
  readonly lastFullSyncAt: number | null;
}

export interface ListInboundOptions {
  readonly state?: InboundState | readonly InboundState[];
  readonly limit?: number;
  /** Keyset paging: ids sort by discovery time; pass the last id of the previous page. */
  readonly after?: string;
  /** Newest first (the web console); page with `before` = the last id of the previous page. */
  readonly newestFirst?: boolean;
  readonly before?: string;
}

export interface ClaimInboundOptions {
  readonly limit: number;
  /** The lease runs this long from the store's clock. */
  readonly leaseMs: number;
  /** Claim as of this time (what is due, whose lease has expired). The new lease runs from the store's clock. */
  readonly now: number;
}

export class InboundStateError extends NamedError {
  readonly faxId: string;
  constructor(faxId: string, message: string) {
    super(message);
    this.faxId = faxId;
  }
}

/** The Message-ID of the mail for a fax: stable, so a redelivery is the same message. */
export function inboundMailMessageId(extension: string, rcMessageId: string): string {
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, "_");
  return `<fax-${safe(extension)}-${safe(rcMessageId)}@faxbridge>`;
}
