import { createReadStream } from "node:fs";
import { simpleParser, type AddressObject } from "mailparser";
import type { MailMeta } from "./job-data.js";

/** Header blocks larger than this are cut (the rest of the message is never read). */
const MAX_HEADER_BYTES = 512 * 1024;

/** The raw header block of a spooled message: bytes up to the first empty line (bounded). */
async function readHeaderBlock(path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const stream = createReadStream(path, { highWaterMark: 64 * 1024 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.length;
      const buf = Buffer.concat(chunks);
      const crlf = buf.indexOf("\r\n\r\n");
      const lf = buf.indexOf("\n\n");
      const ends = [crlf >= 0 ? crlf + 4 : -1, lf >= 0 ? lf + 2 : -1].filter((n) => n >= 0);
      if (ends.length > 0) return buf.subarray(0, Math.min(...ends));
      if (total >= MAX_HEADER_BYTES) return buf.subarray(0, MAX_HEADER_BYTES);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}

function firstAddress(value: AddressObject | AddressObject[] | undefined): string | undefined {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  for (const obj of list) for (const a of obj.value) if (a.address) return a.address;
  return undefined;
}

function headerText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && typeof value[0] === "string") return value[0];
  return undefined;
}

/**
 * Threading and loop-safety headers of a spooled message, read from its header
 * block only. Used when the parser refused the mail (a refusal carries no
 * metadata) so the notice can still be threaded, or suppressed for bounces.
 */
export async function readMailMeta(path: string): Promise<MailMeta> {
  const block = await readHeaderBlock(path);
  const parsed = await simpleParser(Buffer.concat([block, Buffer.from("\r\n")]), { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  const refs = parsed.references === undefined ? [] : Array.isArray(parsed.references) ? parsed.references : [parsed.references];
  const meta: MailMeta = { references: refs, isReport: false };
  if (parsed.messageId) meta.messageId = parsed.messageId;
  if (parsed.subject !== undefined) meta.subject = parsed.subject;
  const from = firstAddress(parsed.from);
  if (from) meta.from = from;
  const auto = headerText(parsed.headers.get("auto-submitted"));
  if (auto) meta.autoSubmitted = auto;
  const prec = headerText(parsed.headers.get("precedence"));
  if (prec) meta.precedence = prec;
  const suppress = headerText(parsed.headers.get("x-auto-response-suppress"));
  if (suppress) meta.xAutoResponseSuppress = suppress;
  const ct = parsed.headers.get("content-type");
  if (typeof ct === "object" && ct !== null && "value" in ct && typeof ct.value === "string") {
    meta.isReport = ct.value.toLowerCase() === "multipart/report";
  }
  return meta;
}
