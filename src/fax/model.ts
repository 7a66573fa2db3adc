/**
 * The fax domain model: what a fax request, its recipients and its documents
 * are, declared once. Pure types; no I/O, no imports from the rest of the
 * program. The SMTP side, `faxbridge send`, the web intake, the outbound
 * worker, the store and the RingCentral client all speak these.
 */
import type { PhoneNumber } from "libphonenumber-js/max";

/** RingCentral's fax resolutions: High = 200 dpi, Low = 100 dpi. */
export type FaxResolution = "High" | "Low";

/** Options a sender wrote into a recipient address (`15551234567/res=low/cover=2/name=Jane@fax.local`). */
export interface RecipientOptions {
  resolution?: FaxResolution;
  /** RingCentral cover page template, 0 (none) to 28. */
  coverIndex?: number;
  /** Recipient name printed on the cover page. */
  name?: string;
}

/** The same options, by the name the address parser (./number.ts) uses. */
export type FaxAddressOptions = RecipientOptions;

/** One envelope recipient as the intake parsed it. */
export interface FaxEnvelopeRecipient {
  /** The address as written in RCPT TO (or on the command line / form), for messages. */
  readonly address: string;
  /** Recipient number, E.164 with "+". */
  readonly e164: string;
  readonly options?: Readonly<RecipientOptions>;
  /** The parsed number, in memory only (not enumerable: never stored), set by withPhone (./number.ts). */
  readonly phone?: PhoneNumber;
}

/** A recipient of an accepted job: the same, with its options always present. */
export interface JobRecipient extends FaxEnvelopeRecipient {
  readonly options: RecipientOptions;
}

/** The envelope of a fax mail; an outbound job fits as is. */
export interface FaxEnvelope {
  readonly mailFrom: string;
  readonly rcptTo: readonly FaxEnvelopeRecipient[];
}

/** One recipient in RingCentral's fax request. */
export interface FaxRecipient {
  phoneNumber: string;
  name?: string | undefined;
}

/** The JSON part of RingCentral's fax request (createFaxMessage), as the parser builds it. */
export interface FaxRequest {
  to: FaxRecipient[];
  faxResolution: FaxResolution;
  coverIndex?: number | undefined;
  coverPageText?: string | undefined;
  sendTime?: string | undefined;
  isoCode?: string | undefined;
}

/** A fax request as the API takes it: the resolution may be left to the account's default. */
export type SendFaxRequest = Omit<FaxRequest, "faxResolution"> & { faxResolution?: FaxResolution };

/** One document extracted into a job's working directory, in message order. */
export interface FaxDocumentFile {
  path: string;
  /** The file name it is uploaded under and shown under in reports (src/fax/files.ts safeFilename). */
  filename: string;
  /** The file name as the sender wrote it; absent when the part had none. */
  originalFilename?: string;
  contentType: string;
  size: number;
  /** sha256 of the bytes written, lower-case hex. */
  sha256: string;
}

/** Threading and loop-safety headers of a mail (kept for notices, also for refused mail). */
export interface MailMeta {
  messageId?: string | undefined;
  subject?: string | undefined;
  /** Address of the first From mailbox. */
  from?: string | undefined;
  references: string[];
  autoSubmitted?: string | undefined;
  precedence?: string | undefined;
  xAutoResponseSuppress?: string | undefined;
  /** The message is a multipart/report (a bounce or receipt): never answer it with a notice. */
  isReport: boolean;
}

/** Stable names of the rules a mail can break; the worker may key metrics or tests on them. */
export type RefusalRule =
  | "nothing-to-fax"
  | "tnef"
  | "embedded-message"
  | "invalid-header"
  | "invalid-address-option"
  | "conflicting-address-options"
  | "forward-with-attachments"
  | "no-recipients"
  | "malformed-message"
  | "unsupported-type"
  | "mislabeled-type"
  | "empty-file"
  | "too-large"
  | "encrypted-pdf"
  | "cover-text-too-long"
  /** Over fax.maxPages (src/outbound/cost.ts). */
  | "too-many-pages"
  /** Over an hourly page quota (src/outbound/cost.ts). */
  | "page-quota";

/** Why a fax mail is refused after it was accepted at SMTP time: the sender notice quotes `message`. */
export interface FaxRefusal {
  rule: RefusalRule;
  /** A sentence for the sender notice. */
  message: string;
  /** The offending file, as the sender named it, when the rule is about one. */
  filename?: string;
}
