/**
 * RingCentral's per-recipient fax failure reasons (`to[].faxErrorCode`,
 * FaxErrorCodeEnum in the public API spec) in plain words for the sender
 * report: a short phrase for subjects and status lines, and one actionable
 * sentence for the body; and whether the code is transient (a redial may
 * get through) or permanent.
 */
import type { FailureKind } from "../failure.js";

export interface FaxErrorText {
  /** Lower-case phrase that fits after "failed: ", e.g. "line busy". */
  readonly short: string;
  /** What happened and what the sender can do about it. */
  readonly advice: string;
}

/** Every FaxErrorCodeEnum value of the RingCentral API, in the spec's order. */
export const FAX_ERROR_CODES = [
  "AllLinesInUse",
  "Undefined",
  "NoFaxSendPermission",
  "NoInternationalPermission",
  "NoFaxMachine",
  "NoAnswer",
  "LineBusy",
  "CallerHungUp",
  "NotEnoughCredits",
  "SentPartially",
  "InternationalCallingDisabled",
  "DestinationCountryDisabled",
  "UnknownCountryCode",
  "NotAccepted",
  "InvalidNumber",
  "CallDeclined",
  "TooManyCallsPerLine",
  "CallFailed",
  "RenderingFailed",
  "TooManyPages",
  "ReturnToDBQueue",
  "NoCallTime",
  "WrongNumber",
  "ProhibitedNumber",
  "InternalError",
  "FaxSendingProhibited",
  "ThePhoneIsBlacklisted",
  "UserNotFound",
  "ConvertError",
  "DBGeneralError",
  "SkypeBillingFailed",
  "AccountSuspended",
  "ProhibitedDestination",
  "InternationalDisabled",
] as const;

export type FaxErrorCode = (typeof FAX_ERROR_CODES)[number];

const CONTACT_ADMIN = "Ask your RingCentral administrator to check the account, then send the email again.";

export const FAX_ERROR_TEXT: Readonly<Record<FaxErrorCode, FaxErrorText>> = {
  AllLinesInUse: {
    short: "all lines in use",
    advice: "All of the receiving fax machine's lines were in use. Send the email again in a few minutes.",
  },
  Undefined: {
    short: "unspecified error",
    advice: "RingCentral reported the fax as failed without giving a reason. Send the email again; if it fails again, call the recipient to check their fax machine.",
  },
  NoFaxSendPermission: {
    short: "no permission to send faxes",
    advice: `The RingCentral extension used by the fax gateway is not allowed to send faxes. ${CONTACT_ADMIN}`,
  },
  NoInternationalPermission: {
    short: "no permission for international faxes",
    advice: `The RingCentral extension used by the fax gateway may not send faxes abroad. ${CONTACT_ADMIN}`,
  },
  NoFaxMachine: {
    short: "no fax machine answered",
    advice: "The number answered, but not with a fax machine (perhaps a person or a voicemail). Check that the number is a fax number.",
  },
  NoAnswer: {
    short: "no answer",
    advice: "The receiving fax machine did not answer. Check that it is switched on and connected, then send the email again.",
  },
  LineBusy: {
    short: "line busy",
    advice: "The receiving fax line was busy. Send the email again in a few minutes.",
  },
  CallerHungUp: {
    short: "call dropped",
    advice: "The receiving side hung up during the transmission. Send the email again; if it keeps happening, ask the recipient to check their fax machine.",
  },
  NotEnoughCredits: {
    short: "not enough credit",
    advice: `The RingCentral account does not have enough credit to send this fax. ${CONTACT_ADMIN}`,
  },
  SentPartially: {
    short: "only partly sent",
    advice: "Only some of the pages reached the recipient before the call ended. Send the email again so they get the whole document.",
  },
  InternationalCallingDisabled: {
    short: "international calling disabled",
    advice: `International calls are disabled for the RingCentral account. ${CONTACT_ADMIN}`,
  },
  DestinationCountryDisabled: {
    short: "destination country disabled",
    advice: `The RingCentral account may not call the recipient's country. ${CONTACT_ADMIN}`,
  },
  UnknownCountryCode: {
    short: "unknown country code",
    advice: "The fax number's country code is not recognised. Check the number (international format, e.g. +44 20 7946 0000) and send the email again.",
  },
  NotAccepted: {
    short: "not accepted by the receiver",
    advice: "The receiving fax machine refused the fax (it may be out of paper or set to refuse). Ask the recipient to check it, then send the email again.",
  },
  InvalidNumber: {
    short: "invalid number",
    advice: "The fax number is not valid. Check the number and send the email again.",
  },
  CallDeclined: {
    short: "call declined",
    advice: "The receiving side declined the call. Ask the recipient whether they accept faxes from your number, then send the email again.",
  },
  TooManyCallsPerLine: {
    short: "too many calls to the line",
    advice: "The receiving line had too many calls at once. Send the email again later.",
  },
  CallFailed: {
    short: "call failed",
    advice: "The call to the fax machine failed. Send the email again; if it fails again, check the number with the recipient.",
  },
  RenderingFailed: {
    short: "document could not be converted",
    advice: "RingCentral could not turn a document into fax pages. Save it as a PDF (without passwords or unusual fonts) and send it again.",
  },
  TooManyPages: {
    short: "too many pages",
    advice: "The fax has more pages than RingCentral sends at once (about 200). Split the documents over several emails.",
  },
  ReturnToDBQueue: {
    short: "held back by RingCentral",
    advice: "RingCentral put the fax back in its queue and did not finish it. Send the email again later.",
  },
  NoCallTime: {
    short: "no calling time left",
    advice: `The RingCentral account has no calling minutes left. ${CONTACT_ADMIN}`,
  },
  WrongNumber: {
    short: "wrong number",
    advice: "The number does not belong to a fax machine. Check the number and send the email again.",
  },
  ProhibitedNumber: {
    short: "number not allowed",
    advice: `RingCentral does not allow calls to this number (for example a premium-rate or emergency number). Check the number; if it is right, ${CONTACT_ADMIN.charAt(0).toLowerCase()}${CONTACT_ADMIN.slice(1)}`,
  },
  InternalError: {
    short: "RingCentral internal error",
    advice: "RingCentral had an internal error while sending the fax. Send the email again.",
  },
  FaxSendingProhibited: {
    short: "fax sending not allowed",
    advice: `Sending faxes is not allowed for the RingCentral extension used by the fax gateway. ${CONTACT_ADMIN}`,
  },
  ThePhoneIsBlacklisted: {
    short: "number blocked",
    advice: "The fax number is on a block list. Check the number with the recipient; if it is right, ask your RingCentral administrator to check the block list.",
  },
  UserNotFound: {
    short: "RingCentral user not found",
    advice: `RingCentral could not find the user sending the fax. ${CONTACT_ADMIN}`,
  },
  ConvertError: {
    short: "document could not be converted",
    advice: "RingCentral could not convert a document into fax pages. Save it as a PDF and send it again.",
  },
  DBGeneralError: {
    short: "RingCentral database error",
    advice: "RingCentral had an internal database error while sending the fax. Send the email again.",
  },
  SkypeBillingFailed: {
    short: "billing failed",
    advice: `RingCentral could not bill the call. ${CONTACT_ADMIN}`,
  },
  AccountSuspended: {
    short: "account suspended",
    advice: `The RingCentral account is suspended. ${CONTACT_ADMIN}`,
  },
  ProhibitedDestination: {
    short: "destination not allowed",
    advice: `The RingCentral account may not call this destination. ${CONTACT_ADMIN}`,
  },
  InternationalDisabled: {
    short: "international faxing disabled",
    advice: `International faxing is disabled for the RingCentral account. ${CONTACT_ADMIN}`,
  },
};

function isFaxErrorCode(code: string): code is FaxErrorCode {
  return Object.hasOwn(FAX_ERROR_TEXT, code);
}

/** Plain words for a faxErrorCode; codes RingCentral adds later get a generic text naming the code. */
export function describeFaxError(code: string | undefined): FaxErrorText {
  if (code === undefined || code === "") {
    return { short: "failed", advice: "RingCentral reported the fax as failed without a reason. Send the email again." };
  }
  if (isFaxErrorCode(code)) return FAX_ERROR_TEXT[code];
  return {
    short: `error ${code}`,
    advice: `RingCentral reported the error "${code}". Send the email again; if it fails again, give this code to your administrator.`,
  };
}

/**
 * faxErrorCodes that say the line, not the number or the account, was the
 * problem, so the same fax may go through later: busy, no answer, all lines
 * in use, too many calls to the line, the call dropped, the call failed.
 * Not transient: wrong/invalid numbers, no fax machine, refusals, account
 * and permission problems, rendering errors (a redial cannot fix them).
 */
const LINE_FAILURES: ReadonlySet<string> = new Set<FaxErrorCode>(["LineBusy", "NoAnswer", "AllLinesInUse", "TooManyCallsPerLine", "CallerHungUp", "CallFailed"]);

/** Transient when the line was the problem (fax.redial retries those recipients), else permanent. */
export function faxErrorKind(code: string | undefined): FailureKind {
  return code !== undefined && LINE_FAILURES.has(code) ? "transient" : "permanent";
}
