/**
 * The RingCentral calls the outbound steps make, as a small interface of its
 * own (RingCentralClient and RcPool satisfy it): sends are gated on Heavy,
 * status polls on Light.
 */
import type { FaxApi as RcFaxApi, MessageApi, PacingApi } from "../../rc/api.js";

export type FaxApi = Pick<RcFaxApi, "sendFax" | "resendFax"> &
  Pick<MessageApi, "getMessage" | "listMessages" | "deleteMessage" | "downloadContent"> &
  PacingApi & {
    /** How many sending extensions stand behind this API (RcPool's members); absent = one. */
    readonly size?: number;
  };
