export * from "./client.js";
export * from "./errors.js";
export { OPERATION_GROUPS, RATE_GROUPS, parseGroupHeader, type Operation } from "./groups.js";
export { safeFilename, safeFilenames, faxRequestJson } from "./multipart.js";
export type { FaxApi, MessageApi, SubscriptionApi, WsTokenApi, SessionApi, PacingApi, RingCentralApi } from "./api.js";
