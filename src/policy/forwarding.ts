import type { InboundStore } from "../store/ports.js";
import { normaliseAddress } from "./identity.js";

/**
 * Forwarding rights for received faxes: a sender may forward a received fax
 * only when inbound routing mailed it to that sender's own mailbox. Answered
 * from our inbound store (what was delivered, and to whom), never from
 * RingCentral.
 */
export function receivedFaxMailedTo(store: Pick<InboundStore, "findDeliveredByRcId">): (rcMessageId: string, address: string) => Promise<boolean> {
  return async (rcMessageId, address) => {
    const wanted = normaliseAddress(address);
    const faxes = await store.findDeliveredByRcId(rcMessageId);
    return faxes.some((f) => (f.route?.mailTo ?? []).some((to) => mailboxOf(to) === wanted));
  };
}

/** "Front desk <desk@example.org>" or "desk@example.org" → the normalised address. */
function mailboxOf(entry: string): string {
  const m = /<([^<>]+)>\s*$/.exec(entry);
  return normaliseAddress((m?.[1] ?? entry).trim());
}
