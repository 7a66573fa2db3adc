/**
 * Cancelling a scheduled fax that RingCentral already holds: RingCentral's
 * documented way is deleting the message from the message store while it is
 * still Queued (before its sendTime). The message is read first (a fax that
 * already went out is not deleted: its report still comes), then deleted,
 * then read again to confirm it is gone.
 */
import { RcApiError } from "../rc/errors.js";
import type { MessageApi } from "../rc/api.js";

export type CancelApi = Pick<MessageApi, "deleteMessage" | "getMessage">;

export type CancelOutcome =
  | { readonly cancelled: true }
  | { readonly cancelled: false; readonly reason: string };

const notFound = (err: unknown): boolean => err instanceof RcApiError && err.status === 404;

/**
 * Throws on transient failures (the caller retries); answers when the outcome is known.
 * `extensionId`: the pool extension that sent the fax (the job's), when known.
 */
export async function cancelScheduledFax(client: CancelApi, rcMessageId: string, extensionId?: string): Promise<CancelOutcome> {
  try {
    const before = await client.getMessage(rcMessageId, extensionId);
    if (before.availability !== undefined && before.availability !== "Alive") return { cancelled: true };
    if (before.messageStatus !== undefined && before.messageStatus !== "Queued") {
      return { cancelled: false, reason: `RingCentral had already started sending it (status ${before.messageStatus})` };
    }
  } catch (err) {
    if (notFound(err)) return { cancelled: true };
    throw err;
  }
  try {
    await client.deleteMessage(rcMessageId, extensionId !== undefined ? { extensionId } : {});
  } catch (err) {
    if (!notFound(err)) throw err;
  }
  try {
    const after = await client.getMessage(rcMessageId, extensionId);
    if (after.availability !== undefined && after.availability !== "Alive") return { cancelled: true };
    return { cancelled: false, reason: "RingCentral still lists the fax after deleting it" };
  } catch (err) {
    if (notFound(err)) return { cancelled: true };
    throw err;
  }
}
