import { EventEmitter } from "node:events";
import { ACCOUNT_ID, EXTENSION_ID, EXTENSION_NUMBER, extensionInfo, OWNER_NAME, type ExtensionInfo } from "./constants.js";
import { isoTime } from "./http.js";

export type MessageStatus = "Queued" | "Sent" | "Delivered" | "DeliveryFailed" | "SendingFailed" | "Received";
export type Availability = "Alive" | "Deleted" | "Purged";
export type Direction = "Inbound" | "Outbound";
export type ReadStatus = "Read" | "Unread";
export type AttachmentType = "SourceDocument" | "RenderedDocument";

export interface StoredAttachment {
  id: number;
  type: AttachmentType;
  contentType: string;
  fileName: string;
  size: number;
  sha256: string;
  /** Where the bytes are on disk. */
  path: string;
}

export interface Recipient {
  recipientId: string;
  phoneNumber: string;
  name?: string;
  messageStatus: MessageStatus;
  faxErrorCode?: string;
}

export interface StoredMessage {
  id: number;
  type: "Fax";
  direction: Direction;
  from: { phoneNumber: string; name?: string; extensionId?: string; extensionNumber?: string };
  to: Recipient[];
  creationTime: number;
  lastModifiedTime: number;
  readStatus: ReadStatus;
  availability: Availability;
  priority: "Normal" | "High";
  faxResolution: "High" | "Low";
  /** 0 until the fax is "rendered" (leaves Queued). */
  faxPageCount: number;
  /** Pages counted from the documents, published once rendered. */
  documentPages: number;
  coverIndex?: number;
  coverPageText?: string;
  subject?: string;
  /** For inbound faxes, the fixed status Received. */
  fixedStatus?: MessageStatus;
  /** What the message store lists: for a sent fax the one rendered document. */
  attachments: StoredAttachment[];
  /** A sent fax's uploaded files (kept for resends, never listed). */
  sources?: StoredAttachment[];
  /** Origin of the media host its attachment URIs point at (stamped when stored). */
  mediaBase?: string;
  /** The extension whose message store holds it (stamped when stored; default the first extension). */
  owner?: ExtensionInfo;
}

export type ChangeKind = "new" | "updated";

/**
 * Aggregated outbound status per the spec's MessageStatusEnum description:
 * any recipient Queued → Queued; else any SendingFailed → SendingFailed;
 * in other cases Sent (so Delivered or DeliveryFailed recipients, which only
 * a scripted outcome produces, still aggregate to Sent).
 */
export function aggregateStatus(msg: StoredMessage): MessageStatus {
  if (msg.fixedStatus) return msg.fixedStatus;
  const statuses = msg.to.map((r) => r.messageStatus);
  if (statuses.includes("Queued")) return "Queued";
  if (statuses.includes("SendingFailed")) return "SendingFailed";
  return "Sent";
}

let nextId = 3_000_000_001;
/** Numeric ids, unique within the process, int64-safe. */
export function newNumericId(): number {
  return nextId++;
}

/** One extension's message store (each extension has its own). */
export class MessageStore extends EventEmitter<{ change: [StoredMessage, ChangeKind] }> {
  private readonly messages = new Map<number, StoredMessage>();
  private readonly now: () => number;
  private readonly mediaBase: () => string | undefined;
  /** The extension this store belongs to. */
  readonly owner: ExtensionInfo;

  /** `mediaBase`: the media host's origin, where attachment content URIs point (RingCentral: media.ringcentral.com). */
  constructor(now: () => number = Date.now, mediaBase: () => string | undefined = () => undefined, owner: ExtensionInfo = extensionInfo(1)) {
    super();
    this.now = now;
    this.mediaBase = mediaBase;
    this.owner = owner;
  }

  add(msg: StoredMessage): StoredMessage {
    const media = this.mediaBase();
    if (media !== undefined) msg.mediaBase = media;
    msg.owner = this.owner;
    this.messages.set(msg.id, msg);
    this.emit("change", msg, "new");
    return msg;
  }

  get(id: number): StoredMessage | undefined {
    return this.messages.get(id);
  }

  /** Applies a change, stamps lastModifiedTime and announces it. */
  update(msg: StoredMessage, change: (m: StoredMessage) => void): StoredMessage {
    change(msg);
    msg.lastModifiedTime = Math.max(this.now(), msg.lastModifiedTime + 1);
    this.emit("change", msg, "updated");
    return msg;
  }

  all(): StoredMessage[] {
    return [...this.messages.values()];
  }
}

export function messagePath(id: number, extensionId: string = EXTENSION_ID): string {
  return `/restapi/v1.0/account/${ACCOUNT_ID}/extension/${extensionId}/message-store/${id}`;
}

/** The message's path in its owner's message store. */
function pathOf(msg: StoredMessage): string {
  return messagePath(msg.id, msg.owner?.extensionId);
}

function caller(from: StoredMessage["from"]): Record<string, unknown> {
  const out: Record<string, unknown> = { phoneNumber: from.phoneNumber };
  if (from.name !== undefined) out["name"] = from.name;
  if (from.extensionId !== undefined) out["extensionId"] = from.extensionId;
  if (from.extensionNumber !== undefined) out["extensionNumber"] = from.extensionNumber;
  return out;
}

function recipient(r: Recipient, withErrorCode: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { recipientId: r.recipientId, phoneNumber: r.phoneNumber, messageStatus: r.messageStatus };
  if (r.name !== undefined) out["name"] = r.name;
  if (withErrorCode && r.faxErrorCode !== undefined) out["faxErrorCode"] = r.faxErrorCode;
  return out;
}

/** GetMessageInfoResponse. Purged/Deleted entries in ISync are reduced by the caller. */
/** Attachment records; the message store spells the name `fileName`, the fax response `filename`. */
function attachmentsJson(msg: StoredMessage, baseUrl: string, nameKey: "fileName" | "filename"): Record<string, unknown>[] {
  return msg.attachments.map((a) => ({
    id: a.id,
    uri: `${msg.mediaBase ?? baseUrl}${pathOf(msg)}/content/${a.id}`,
    type: a.type,
    contentType: a.contentType,
    [nameKey]: a.fileName,
    size: a.size,
  }));
}

/** The fields both the message-store record and the fax response carry about a fax's state. */
function statusFields(msg: StoredMessage): Record<string, unknown> {
  return {
    direction: msg.direction,
    availability: msg.availability,
    messageStatus: aggregateStatus(msg),
    faxResolution: msg.faxResolution,
    faxPageCount: msg.faxPageCount,
    lastModifiedTime: isoTime(msg.lastModifiedTime),
  };
}

export function messageJson(msg: StoredMessage, baseUrl: string): Record<string, unknown> {
  const owner = msg.owner ?? OWN_EXTENSION;
  const out: Record<string, unknown> = {
    uri: baseUrl + pathOf(msg),
    id: msg.id,
    extensionId: owner.extensionId,
    to: msg.to.map((r) => recipient(r, true)),
    from: caller(msg.from),
    type: msg.type,
    creationTime: isoTime(msg.creationTime),
    readStatus: msg.readStatus,
    priority: msg.priority,
    attachments: attachmentsJson(msg, baseUrl, "fileName"),
    ...statusFields(msg),
    owner: { extensionId: owner.extensionId, extensionType: "User", name: owner.name },
  };
  if (msg.subject !== undefined) out["subject"] = msg.subject;
  if (msg.coverIndex !== undefined) out["coverIndex"] = msg.coverIndex;
  if (msg.coverPageText !== undefined) out["coverPageText"] = msg.coverPageText;
  return out;
}

/** GetSingleMessageInfoResponse = GetMessageInfoResponse + vmSideRecipients (required by the spec). */
export function singleMessageJson(msg: StoredMessage, baseUrl: string): Record<string, unknown> {
  const out = messageJson(msg, baseUrl);
  out["vmSideRecipients"] = msg.to.map((r) => recipient(r, true));
  return out;
}

/** FaxResponse (createFaxMessage): attachments use `filename`, recipients carry no faxErrorCode. */
export function faxResponseJson(msg: StoredMessage, baseUrl: string): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: msg.id,
    uri: baseUrl + pathOf(msg),
    type: "Fax",
    from: caller(msg.from),
    to: msg.to.map((r) => recipient(r, false)),
    creationTime: isoTime(msg.creationTime),
    readStatus: msg.readStatus,
    priority: msg.priority,
    attachments: attachmentsJson(msg, baseUrl, "filename"),
    ...statusFields(msg),
  };
  if (msg.coverIndex !== undefined) out["coverIndex"] = msg.coverIndex;
  if (msg.coverPageText !== undefined) out["coverPageText"] = msg.coverPageText;
  return out;
}

export const OWN_EXTENSION = { extensionId: EXTENSION_ID, extensionNumber: EXTENSION_NUMBER, name: OWNER_NAME };
