/**
 * The RingCentral calls the outbound steps make, as a small interface of its
 * own: the RingCentral client satisfies it, and so can any other
 * implementation (an API-area module, a test double).
 */
import type { Readable } from "node:stream";
import type { FaxDocument, FaxRecipient, FaxResponse, ListMessagesQuery, MessageInfo, SendFaxRequest } from "../../rc/client.js";

/** A rate-limit group as the steps see it: free slots now and when a hold ends. */
export interface RateGroupState {
  readonly remaining: number;
  readonly heldUntil: number;
}

export interface FaxApi {
  sendFax(req: SendFaxRequest, documents: FaxDocument[]): Promise<FaxResponse>;
  resendFax(req: { originalMessageId: string; to?: FaxRecipient[]; sendTime?: string }): Promise<FaxResponse>;
  getMessage(messageId: string): Promise<MessageInfo>;
  listMessages(query: ListMessagesQuery): AsyncIterable<MessageInfo>;
  deleteMessage(messageId: string): Promise<void>;
  downloadContent(uri: string): Promise<{ body: Readable; contentType: string; contentLength: number | undefined }>;
  /** Sends are gated on Heavy, status polls on Light. */
  rateLimitState(): { readonly Heavy: RateGroupState; readonly Light: RateGroupState };
}
