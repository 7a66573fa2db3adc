/**
 * Backend-neutral pieces of the inbound tables shared by the SQLite
 * (../sqlite/inbound.ts) and PostgreSQL (../pg/inbound.ts) stores: the rows
 * as either driver returns them and their mapping to the model.
 */
import type { InboundFax, InboundMessage, InboundRouteResult, InboundState } from "../ports.js";

export interface InboundRow {
  id: string;
  extension: string;
  rc_message_id: string;
  state: InboundState;
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
  lease_owner: string | null;
  message: string;
  route: string | null;
  mail_message_id: string;
  discovered_at: number;
  delivered_at: number | null;
  last_error: string | null;
  updated_at: number;
}

export interface CursorRow {
  sync_token: string;
  sync_time: string | null;
  last_full_sync_at: number | null;
}

export function inboundFromRow(r: InboundRow): InboundFax {
  return {
    id: r.id,
    extension: r.extension,
    rcMessageId: r.rc_message_id,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    leaseUntil: r.lease_until,
    leaseOwner: r.lease_until === null ? null : r.lease_owner,
    message: JSON.parse(r.message) as InboundMessage,
    route: r.route === null ? null : (JSON.parse(r.route) as InboundRouteResult),
    mailMessageId: r.mail_message_id,
    discoveredAt: r.discovered_at,
    deliveredAt: r.delivered_at,
    lastError: r.last_error,
    updatedAt: r.updated_at,
  };
}

/** Errors stored for operators are kept short. */
export function clip(text: string): string {
  return text.length > 1000 ? `${text.slice(0, 997)}...` : text;
}
