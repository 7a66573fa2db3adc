import { describe, expect, it } from "vitest";
import { tagCoverText, tagLine, tagOf, untagged } from "../../src/outbound/tag.js";
import { COVER_TEXT_MAX, TRUNCATION_MARKER } from "../../src/outbound/text.js";

const JOB = "0mhx8f2k1a00c-3f9d2a7b";
const OTHER = "0mhx8f2k1a00d-00000000";

describe("job tag in the cover text", () => {
  it.each([
    ["no cover text", undefined, `Ref. FB-${JOB}-2`],
    ["blank cover text", "  \n", `Ref. FB-${JOB}-2`],
    ["a cover text", "Lab order\n\nPlease sign.", `Lab order\n\nPlease sign.\n\nRef. FB-${JOB}-2`],
  ])("%s: the tag is the last line", (_name, text, expected) => {
    const tagged = tagCoverText(text, { jobId: JOB, attempt: 2 });
    expect(tagged).toBe(expected);
    expect(tagOf(tagged)).toEqual({ jobId: JOB, attempt: 2 });
    expect(untagged(tagged)).toBe(text?.trim() === "" ? undefined : text);
  });

  it("cuts a cover text at RingCentral's limit to make room for the tag, with the truncation marker", () => {
    const tagged = tagCoverText("x".repeat(COVER_TEXT_MAX), { jobId: JOB, attempt: 1 });
    expect(tagged.length).toBeLessThanOrEqual(COVER_TEXT_MAX);
    expect(tagged.endsWith(`${TRUNCATION_MARKER}\n\n${tagLine({ jobId: JOB, attempt: 1 })}`)).toBe(true);
    expect(tagOf(tagged)).toEqual({ jobId: JOB, attempt: 1 });
  });

  it.each([
    ["no cover text", undefined],
    ["a text without a tag", "Please sign"],
    ["a tag that is not the last line (a sender cannot plant one)", `Ref. FB-${OTHER}-1\n\nmore text`],
    ["a tag glued to the text", `textRef. FB-${JOB}-1`],
    ["a malformed job id", "Ref. FB-not-a-job-1"],
  ])("finds no tag in %s", (_name, text) => {
    expect(tagOf(text)).toBeUndefined();
    expect(untagged(text)).toBe(text);
  });

  it("reads only our own last line when the sender's text ends in something that looks like a tag", () => {
    const tagged = tagCoverText(`Ref. FB-${OTHER}-1`, { jobId: JOB, attempt: 3 });
    expect(tagOf(tagged)).toEqual({ jobId: JOB, attempt: 3 });
    expect(untagged(tagged)).toBe(`Ref. FB-${OTHER}-1`);
  });

  it("tolerates CRLF line ends and trailing whitespace in RingCentral's copy", () => {
    expect(tagOf(`Hello\r\n\r\nRef. FB-${JOB}-4 \r\n`)).toEqual({ jobId: JOB, attempt: 4 });
  });
});
