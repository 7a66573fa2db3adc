import { simpleParser } from "mailparser";
import { readHeaderBlock } from "../mail/header-block.js";
import { mailMetaOf } from "../fax/meta.js";
import type { MailMeta } from "../fax/model.js";

/**
 * Threading and loop-safety headers of a spooled message, read from its header
 * block only. Used when the parser refused the mail (a refusal carries no
 * metadata) so the notice can still be threaded, or suppressed for bounces.
 */
export async function readMailMeta(path: string): Promise<MailMeta> {
  // A header section over the cap is read as far as the cap.
  const block = await readHeaderBlock(path);
  const parsed = await simpleParser(Buffer.concat([block.bytes, Buffer.from("\r\n\r\n")]), { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  return mailMetaOf(parsed.headers);
}
