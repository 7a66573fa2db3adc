/**
 * The job tag: what of ours travels through RingCentral and comes back in the
 * message record, so reconciliation after a crash (between the fax POST and
 * recording RingCentral's message id) finds the fax THIS job sent, even when
 * other instances send to the same numbers at the same time.
 *
 * The carrier is `coverPageText`: the send request takes it and both the send
 * response (FaxResponse) and the message store's records
 * (GetMessageInfoResponse) return it (RingCentral's OpenAPI spec). The other
 * candidate, an attachment's `fileName`, is not dependable: the message store
 * lists the fax as transmitted (one RenderedDocument), not the uploads.
 *
 * The tag is the last line of the cover text, after a blank line, e.g.
 * `Ref. FB-0mhx8f2k1a00c-3f9d2a7b-2` (job id, attempt). On a printed cover
 * page it reads as a reference number, which is what it is (an operator can
 * find the job by it). A resend (redial, X-Fax-Forward-Of) cannot carry a
 * tag of its own: RingCentral copies the original's cover text, tag included.
 *
 * Only the last line counts, so a sender cannot plant a tag: whatever they
 * write comes before ours.
 */
import { isId } from "../util/ids.js";
import { COVER_TEXT_MAX, truncateWithMarker } from "./text.js";

export interface JobTag {
  readonly jobId: string;
  readonly attempt: number;
}

const PREFIX = "Ref. FB-";
const TAG_RE = /(?:^|\n\n)Ref\. FB-([0-9a-z]{13}-[0-9a-f]{8})-(\d{1,6})$/;

/** The tag line of a job's attempt. */
export function tagLine(tag: JobTag): string {
  return `${PREFIX}${tag.jobId}-${tag.attempt}`;
}

/**
 * The cover text to send: the job's text (cut to leave room, when it is near
 * RingCentral's 1024-character limit) and the tag as its last line.
 */
export function tagCoverText(text: string | undefined, tag: JobTag): string {
  const line = tagLine(tag);
  if (text === undefined || text.trim() === "") return line;
  return `${truncateWithMarker(text, COVER_TEXT_MAX - line.length - 2)}\n\n${line}`;
}

/** The tag a message record's cover text carries, if any. */
export function tagOf(coverPageText: string | undefined): JobTag | undefined {
  if (coverPageText === undefined) return undefined;
  const m = TAG_RE.exec(coverPageText.replace(/\r\n?/g, "\n").trimEnd());
  if (m === null) return undefined;
  const jobId = m[1] ?? "";
  const attempt = Number(m[2]);
  return isId(jobId) && Number.isSafeInteger(attempt) ? { jobId, attempt } : undefined;
}

/** The cover text without its tag (what the job asked for), to compare with the job's own. */
export function untagged(coverPageText: string | undefined): string | undefined {
  if (coverPageText === undefined || tagOf(coverPageText) === undefined) return coverPageText;
  const text = coverPageText.replace(/\r\n?/g, "\n").trimEnd();
  const cut = text.lastIndexOf(PREFIX);
  const rest = text.slice(0, cut).replace(/\n\n$/, "");
  return rest === "" ? undefined : rest;
}
