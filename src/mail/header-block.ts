import { createReadStream } from "node:fs";
import { MAX_HEADER_BYTES } from "../tunables.js";

/**
 * The one reader of a spooled message's header section: the bytes before the
 * first empty line, never the body. The sender rules (src/policy/headers.ts)
 * and the mail metadata of refused mail (src/outbound/mail-meta.ts) both read
 * through it, with the same size cap.
 */
export interface HeaderBlock {
  /** The header section, without the empty line that ends it. */
  readonly bytes: Buffer;
  /** False when the cap was reached before the empty line: `bytes` is then the first `maxBytes` only. */
  readonly complete: boolean;
}

export async function readHeaderBlock(path: string, maxBytes: number = MAX_HEADER_BYTES): Promise<HeaderBlock> {
  const chunks: Buffer[] = [];
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 64 * 1024 });
  try {
    for await (const chunk of stream) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      const all = Buffer.concat(chunks);
      const end = headerEnd(all);
      if (end >= 0) return { bytes: all.subarray(0, end), complete: true };
      if (size >= maxBytes) return { bytes: all.subarray(0, maxBytes), complete: false };
    }
  } finally {
    stream.destroy();
  }
  // No empty line: the whole message is headers.
  return { bytes: Buffer.concat(chunks), complete: true };
}

/** Where the header section ends (the start of the empty line's line break), or -1. */
function headerEnd(buf: Buffer): number {
  if (buf[0] === 0x0a || (buf[0] === 0x0d && buf[1] === 0x0a)) return 0;
  const crlf = buf.indexOf("\r\n\r\n");
  const lf = buf.indexOf("\n\n");
  if (crlf < 0) return lf;
  if (lf < 0) return crlf;
  return Math.min(crlf, lf);
}
