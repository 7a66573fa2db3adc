/**
 * Fax statuses: what RingCentral says about each recipient of a fax, and
 * which of those are final or failures. Pure.
 */

/** The statuses after which RingCentral does not change a recipient's status again. */
export type FinalFaxStatus = "Sent" | "Delivered" | "SendingFailed" | "DeliveryFailed";

/** A recipient's status as we keep it: final, still queued, or one RingCentral named that we do not know. */
export type FaxStatus = FinalFaxStatus | "Queued" | "Unknown";

export interface RecipientStatus {
  readonly e164: string;
  readonly status: FaxStatus;
  /** RingCentral's reason for a failure (e.g. "LineBusy"); only on failed statuses. */
  readonly faxErrorCode?: string;
}

const FINAL: ReadonlySet<string> = new Set<FinalFaxStatus>(["Sent", "Delivered", "SendingFailed", "DeliveryFailed"]);
const KNOWN: ReadonlySet<string> = new Set<string>([...FINAL, "Queued"]);

export function isFinalStatus(status: string): status is FinalFaxStatus {
  return FINAL.has(status);
}

/** The fax did not reach this recipient. */
export function isFailedStatus(status: string): status is "SendingFailed" | "DeliveryFailed" {
  return status === "SendingFailed" || status === "DeliveryFailed";
}

/** RingCentral's status word as a FaxStatus: "Unknown" for a word outside the known set. */
export function faxStatusOf(raw: string): FaxStatus {
  return KNOWN.has(raw) ? (raw as FaxStatus) : "Unknown";
}
