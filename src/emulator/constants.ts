/** The single account and extension the emulator serves; `~` in paths resolves to these. */
export const ACCOUNT_ID = "100000001";
export const EXTENSION_ID = "200000001";
export const EXTENSION_NUMBER = "101";
/** The extension's own fax number: the `from` of outbound faxes, the default `to` of inbound ones. */
export const OWN_FAX_NUMBER = "+16505550100";
export const OWNER_NAME = "Emulated User";

/** Who an extension is: ids in paths and records, the owner name, the fax number it sends from and receives on. */
export interface ExtensionInfo {
  extensionId: string;
  extensionNumber: string;
  name: string;
  faxNumber: string;
}

/** Most extensions one emulator serves (each distinct JWT logs in as one). */
export const MAX_EXTENSIONS = 1000;

/**
 * The n-th extension (1-based) of the emulated account: the first is the one
 * above (200000001, ext. 101, +16505550100), the n-th 20000000n, 100+n and
 * +1650555 followed by 0100+n-1.
 */
export function extensionInfo(n: number): ExtensionInfo {
  if (n === 1) return { extensionId: EXTENSION_ID, extensionNumber: EXTENSION_NUMBER, name: OWNER_NAME, faxNumber: OWN_FAX_NUMBER };
  return {
    extensionId: String(Number(EXTENSION_ID) + n - 1),
    extensionNumber: String(Number(EXTENSION_NUMBER) + n - 1),
    name: `${OWNER_NAME} ${n}`,
    faxNumber: `+1650555${String(100 + n - 1).padStart(4, "0")}`,
  };
}

/** Largest total of fax attachments (spec createFaxMessage: "both single and total … 50Mb"). */
export const MAX_FAX_ATTACHMENT_BYTES = 50 * 1024 * 1024;
export const MAX_COVER_PAGE_TEXT = 1024;

/** Webhook handshake rules (NOTES §e). */
export const WEBHOOK_TIMEOUT_MS = 3000;
export const WEBHOOK_MAX_RESPONSE_BYTES = 1024;

/** Default subscription lifetime when `expiresIn` is omitted (7 days; NOTES §e, unverified upstream). */
export const DEFAULT_SUBSCRIPTION_TTL_S = 604800;
export const MAX_WEBHOOK_TTL_S = 315360000;

/** message-sync overlap: ISync returns changes since syncTime minus this (NOTES §d). */
export const SYNC_OVERLAP_MS = 5000;

/**
 * Default fax outcomes by destination number; every other recipient ends
 * `Sent`, which is how RingCentral reports a fax that went through (the spec's
 * MessageStatusEnum and RingCentral's fax FAQ: a sent fax ends `Sent` or
 * `SendingFailed`).
 */
export const DEFAULT_FAX_OUTCOMES: Readonly<Record<string, FaxOutcome>> = {
  "+15550000001": { messageStatus: "SendingFailed", faxErrorCode: "LineBusy" },
  "+15550000002": { messageStatus: "SendingFailed", faxErrorCode: "NoAnswer" },
};

/** Final per-recipient statuses an outbound fax can reach (MessageStatusEnum minus Queued and Received). */
export const RECIPIENT_FINAL_STATUSES = ["Sent", "Delivered", "SendingFailed", "DeliveryFailed"] as const;

export interface FaxOutcome {
  messageStatus: (typeof RECIPIENT_FINAL_STATUSES)[number];
  /** FaxErrorCodeEnum; only failed recipients carry one. */
  faxErrorCode?: string;
}

/** The spec's FaxErrorCodeEnum. */
export const FAX_ERROR_CODES: readonly string[] = [
  "AllLinesInUse", "Undefined", "NoFaxSendPermission", "NoInternationalPermission", "NoFaxMachine", "NoAnswer",
  "LineBusy", "CallerHungUp", "NotEnoughCredits", "SentPartially", "InternationalCallingDisabled",
  "DestinationCountryDisabled", "UnknownCountryCode", "NotAccepted", "InvalidNumber", "CallDeclined",
  "TooManyCallsPerLine", "CallFailed", "RenderingFailed", "TooManyPages", "ReturnToDBQueue", "NoCallTime",
  "WrongNumber", "ProhibitedNumber", "InternalError", "FaxSendingProhibited", "ThePhoneIsBlacklisted", "UserNotFound",
  "ConvertError", "DBGeneralError", "SkypeBillingFailed", "AccountSuspended", "ProhibitedDestination",
  "InternationalDisabled",
];

/** Subscriptions per extension (403 SUB-505 beyond this). */
export const MAX_SUBSCRIPTIONS = 30;

/** Shortest access token lifetime a client may ask for (spec: access_token_ttl minimum 600). */
export const MIN_ACCESS_TOKEN_TTL_S = 600;

/** Document types the fax service accepts (NOTES §i), by file extension. */
export const FAX_EXTENSIONS: ReadonlySet<string> = new Set([
  "pdf", "psd", "doc", "docx", "dot", "mcw", "xls", "xlsx", "xlsb", "ppt", "pptx", "vsd", "vdx", "pub", "wps", "wri", "awd",
  "tif", "tiff", "gif", "jpg", "jpeg", "bmp", "png", "pcx", "tga",
  "rtf", "txt", "log", "h", "cpp", "c", "err", "hpp", "wk1", "wk3", "wk4", "wq1", "xml", "html", "htm", "csv",
]);

/**
 * Content types that can carry those documents. A part whose Content-Type is
 * outside this list (and not the generic application/octet-stream) is refused
 * even if its file name looks right.
 */
export const FAX_CONTENT_TYPES: ReadonlySet<string> = new Set([
  "application/pdf", "application/x-pdf", "image/vnd.adobe.photoshop", "application/x-photoshop",
  "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.template",
  "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.ms-excel.sheet.binary.macroenabled.12", "application/vnd.ms-powerpoint",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation", "application/vnd.visio",
  "application/vnd.ms-visio.drawing", "application/x-mspublisher", "application/vnd.ms-works", "application/x-mswrite",
  "image/tiff", "image/gif", "image/jpeg", "image/pjpeg", "image/bmp", "image/x-ms-bmp", "image/png", "image/x-pcx",
  "image/x-tga", "image/x-targa", "application/rtf", "text/rtf", "text/plain", "text/x-c", "text/x-c++", "text/x-log",
  "application/vnd.lotus-1-2-3", "application/x-quattropro", "application/xml", "text/xml", "text/html", "text/csv",
  "application/csv", "application/octet-stream",
]);
