/**
 * What to do about an error from a fax submission (sendFax / resendFax) or a
 * status poll: retry from the durable queue, or fail the job permanently with
 * the RingCentral error code translated into words. Pure; the retry schedule
 * itself is data (`fax.retrySchedule`) applied by the worker.
 *
 * | Error | Action |
 * |---|---|
 * | 429 (any code) | retry, honouring Retry-After; nothing was processed |
 * | 5xx | retry; `maybeSent`: RingCentral may have created the fax, reconcile before resending |
 * | network error before any byte left (`maybeProcessed: false`) | retry |
 * | network error after the request went out | retry with `maybeSent` |
 * | 2xx with an unreadable body (RcProtocolError) | retry with `maybeSent` (it took effect, we lack the id) |
 * | 401 after the client's own re-login | retry (credentials/outage; an operator problem, not the sender's) |
 * | 408 | retry |
 * | other 4xx | fail, with the table below in words |
 * | anything else (a bug, a local file problem) | retry as `internal` |
 */
import type { Failure } from "../failure.js";
import { RcApiError, RcNetworkError, RcProtocolError } from "../rc/errors.js";

/** Transient: retry from the durable queue; permanent: fail the job. `reason` is a short lower-case phrase for subjects and logs, e.g. "unsupported attachment type". */
export interface Classification extends Failure {
  /** RingCentral's errorCode (e.g. "MSG-348"), else "HTTP-<status>", "network", "protocol" or "internal". */
  readonly code: string;
  /** The request may have reached RingCentral and created a fax: look for it before sending again. */
  readonly maybeSent: boolean;
}

export interface RcErrorText {
  readonly reason: string;
  /** One sentence telling the sender what to do. */
  readonly advice: string;
}

const ADMIN = "Ask your RingCentral administrator to check the extension's fax settings and permissions.";

/** RingCentral error codes a fax submission can meet (NOTES §g, API error list), in plain words. */
export const RC_ERROR_TEXT: Readonly<Record<string, RcErrorText>> = {
  "MSG-337": {
    reason: "attachment too large",
    advice: "RingCentral accepts at most 50 MB of documents per fax. Send smaller files or split them over several emails.",
  },
  "MSG-338": {
    reason: "message too large",
    advice: "The fax as a whole is larger than RingCentral allows. Send fewer or smaller documents per email.",
  },
  "MSG-340": {
    reason: "fax sending not available for this extension type",
    advice: `The RingCentral extension used by the fax gateway is of a type that cannot send faxes. ${ADMIN}`,
  },
  "MSG-341": {
    reason: "fax sending not allowed for this extension",
    advice: `Outbound fax is disabled for the RingCentral extension used by the fax gateway. ${ADMIN}`,
  },
  "MSG-343": {
    reason: "the fax cannot be resent in its current state",
    advice: "RingCentral only resends a fax that has finished (sent or failed). Wait until the original fax is done, then send the email again.",
  },
  "MSG-347": {
    reason: "empty attachment",
    advice: "One of the documents is empty. Attach the document again and resend.",
  },
  "MSG-348": {
    reason: "unsupported attachment type",
    advice: "RingCentral cannot fax one of the documents' file types. Send it as PDF, Word, Excel, an image (TIFF, PNG, JPEG) or plain text.",
  },
  "MSG-349": {
    reason: "fax request unreadable",
    advice: "RingCentral could not read the fax request. This is a problem in the fax gateway; please tell your administrator.",
  },
  "MSG-350": {
    reason: "attachment without content disposition",
    advice: "RingCentral could not read a document of the fax request. This is a problem in the fax gateway; please tell your administrator.",
  },
  "MSG-351": {
    reason: "attachment without file name",
    advice: "RingCentral could not read a document's name. Give the attachment a file name and send the email again.",
  },
  "MSG-352": {
    reason: "empty message content",
    advice: "RingCentral received the fax without content. Send the email again.",
  },
  "CMN-101": {
    reason: "invalid value",
    advice: "RingCentral refused a value of the fax request. Check the fax number and any X-Fax-* headers and send the email again.",
  },
  "CMN-102": {
    reason: "not found",
    advice: "RingCentral could not find something the request refers to (for X-Fax-Forward-Of: the original fax). Check the message id and send the email again.",
  },
  "CMN-401": {
    reason: "application permission missing",
    advice: "The fax gateway's RingCentral app lacks a permission it needs (Faxes). Ask your RingCentral administrator to grant it.",
  },
  "CMN-408": {
    reason: "permission missing",
    advice: `The RingCentral user of the fax gateway lacks a permission it needs to send faxes (OutboundFaxes). ${ADMIN}`,
  },
  "CMN-405": {
    reason: "login to extension required",
    advice: "The fax gateway is not logged in to a RingCentral extension. Ask your administrator to check its credentials.",
  },
  "CMN-415": {
    reason: "unsupported request format",
    advice: "RingCentral refused the format of the fax request. This is a problem in the fax gateway; please tell your administrator.",
  },
};

/** Reason and advice for a RingCentral error code (or HTTP status when there is no code). */
export function describeRcError(code: string, parameterName?: string): RcErrorText {
  const known = RC_ERROR_TEXT[code];
  if (code === "CMN-101" && parameterName !== undefined) {
    if (/^to\b|phoneNumber/i.test(parameterName)) {
      return {
        reason: "invalid fax number",
        advice: "RingCentral does not accept the fax number. Check it (international format, e.g. +1 555 123 4567) and send the email again.",
      };
    }
    return { reason: `invalid value for ${parameterName}`, advice: known?.advice ?? "" };
  }
  if (known !== undefined) return known;
  return {
    reason: `RingCentral refused the fax (${code})`,
    advice: `RingCentral refused the fax with the error ${code}. If this keeps happening, give this code to your administrator.`,
  };
}

export function classify(err: unknown): Classification {
  if (err instanceof RcApiError) {
    const code = err.errorCode ?? `HTTP-${err.status}`;
    const retryAfter = err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {};
    if (err.status === 429) {
      return { kind: "transient", code, reason: "RingCentral rate limit reached", maybeSent: false, ...retryAfter };
    }
    if (err.status >= 500) {
      return { kind: "transient", code, reason: `RingCentral server error (HTTP ${err.status})`, maybeSent: true, ...retryAfter };
    }
    if (err.status === 401) {
      return { kind: "transient", code, reason: "RingCentral refused the gateway's credentials", maybeSent: false, ...retryAfter };
    }
    if (err.status === 408) {
      return { kind: "transient", code, reason: "RingCentral request timeout", maybeSent: true, ...retryAfter };
    }
    return { kind: "permanent", code, reason: describeRcError(code, err.parameterName).reason, maybeSent: false };
  }
  if (err instanceof RcNetworkError) {
    return { kind: "transient", code: "network", reason: `network error talking to RingCentral${err.code ? ` (${err.code})` : ""}`, maybeSent: err.maybeProcessed };
  }
  if (err instanceof RcProtocolError) {
    return { kind: "transient", code: "protocol", reason: "unexpected answer from RingCentral", maybeSent: true };
  }
  return { kind: "transient", code: "internal", reason: "internal error in the fax gateway", maybeSent: false };
}
