/**
 * Which inline images of an HTML mail are signature art (skipped) and which
 * are content (faxed): a scan or photo pasted into the body is faxed.
 *
 * The rule: an image that belongs to the HTML body (multipart/related, or
 * referenced as cid:) is signature art when it is small in bytes AND small
 * in pixels: under {@link SIGNATURE_MAX_BYTES} bytes and at most
 * {@link SIGNATURE_MAX_WIDTH} × {@link SIGNATURE_MAX_HEIGHT} pixels (read
 * from the image header with image-size; an image whose size cannot be read
 * counts as small in pixels). Everything else is faxed.
 */
import { open } from "node:fs/promises";
import { imageSize } from "image-size";

import { IMAGE_HEAD_BYTES, SIGNATURE_MAX_BYTES, SIGNATURE_MAX_HEIGHT, SIGNATURE_MAX_WIDTH } from "../tunables.js";

export { SIGNATURE_MAX_BYTES, SIGNATURE_MAX_HEIGHT, SIGNATURE_MAX_WIDTH };

/** Enough of the file for image-size to find the dimensions of the usual formats. */
const HEAD_BYTES = IMAGE_HEAD_BYTES;

export interface InlineImage {
  path: string;
  size: number;
}

/** A reason to skip the image, or undefined when it is to be faxed. */
export async function signatureArtReason(image: InlineImage): Promise<string | undefined> {
  if (image.size >= SIGNATURE_MAX_BYTES) return undefined;
  const dims = await dimensions(image.path);
  if (dims && (dims.width > SIGNATURE_MAX_WIDTH || dims.height > SIGNATURE_MAX_HEIGHT)) return undefined;
  const shown = dims ? `${dims.width}×${dims.height} pixels, ` : "";
  return `inline image of the HTML body that looks like signature art (${shown}${image.size} bytes; images under ${SIGNATURE_MAX_BYTES / 1024} kB and at most ${SIGNATURE_MAX_WIDTH}×${SIGNATURE_MAX_HEIGHT} pixels are not faxed)`;
}

async function dimensions(path: string): Promise<{ width: number; height: number } | undefined> {
  let fh;
  try {
    fh = await open(path, "r");
    const buf = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(buf, 0, HEAD_BYTES, 0);
    const r = imageSize(buf.subarray(0, bytesRead));
    return r.width !== undefined && r.height !== undefined ? { width: r.width, height: r.height } : undefined;
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}
