/**
 * RingCentral usage-plan groups and the group of every operation we call, from
 * the spec's `x-throttling-group` annotations.
 */
export type RateGroup = "Light" | "Medium" | "Heavy" | "Auth";

export const RATE_GROUPS: readonly RateGroup[] = ["Light", "Medium", "Heavy", "Auth"];

/** operationId (spec) → throttling group. */
export const OPERATION_GROUPS = {
  getToken: "Auth",
  revokeToken: "Auth",
  authWsToken: "Auth",
  createFaxMessage: "Heavy",
  listMessages: "Light",
  readMessage: "Light",
  syncMessages: "Light",
  readMessageContent: "Medium",
  updateMessage: "Medium",
  patchMessage: "Medium",
  deleteMessage: "Medium",
  listFaxCoverPages: "Light",
  createSubscription: "Medium",
  listSubscriptions: "Light",
  readSubscription: "Light",
  updateSubscription: "Medium",
  deleteSubscription: "Medium",
  renewSubscription: "Light",
} as const satisfies Record<string, RateGroup>;

export type Operation = keyof typeof OPERATION_GROUPS;

/** Map an `X-Rate-Limit-Group` value (any case, e.g. "heavy") onto our groups. */
export function parseGroupHeader(value: string | undefined): RateGroup | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  for (const g of RATE_GROUPS) if (g.toLowerCase() === v) return g;
  return undefined;
}
