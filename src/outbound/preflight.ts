import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import type { FaxDocumentFile, FaxRefusal, FaxRequest } from "./parse.js";
import {
  KIND_LABELS,
  SNIFF_BYTES,
  SUPPORTED_TYPES_SUMMARY,
  faxTypeForExtension,
  hasPdfHeader,
  extensionOf,
  labelForUnsupportedExtension,
  sniff,
} from "../fax/files.js";
import { COVER_TEXT_MAX } from "./text.js";

/**
 * Checks a parsed fax against RingCentral's limits before any API call, so
 * the sender gets a precise refusal instead of an API error code:
 * - at least one recipient;
 * - cover page text at most 1024 characters;
 * - every document non-empty, of a type RingCentral faxes (by extension), and
 *   with content that matches its extension (magic bytes for PDF, TIFF, PNG,
 *   JPEG, GIF, BMP, PSD and the zip-based Office formats; no program, archive
 *   or other known signature hiding behind any extension);
 * - all documents together at most 50 MB. RingCentral says "50Mb" for single
 *   and total attachment size; we read that as 50 MiB = 52,428,800 bytes.
 * - no encrypted (password-protected) PDF: an `/Encrypt` entry in a trailer or
 *   cross-reference stream dictionary, found by scanning the file in chunks.
 *
 * An empty document list passes (a forward/resend uploads nothing).
 * Files are read from disk, so this is async; it never loads a whole file.
 */

/** RingCentral's size limit for one fax, all attachments together: "50Mb", taken as 50 MiB. */
export const MAX_TOTAL_BYTES = 50 * 1024 * 1024;

export type PreflightResult = { ok: true } | { ok: false; refusal: FaxRefusal };

function shownName(doc: FaxDocumentFile): string {
  return doc.originalFilename ?? doc.filename;
}

function megabytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

const ENCRYPT = Buffer.from("/Encrypt", "latin1");

/** PDF delimiters and whitespace: what may follow the name `/Encrypt` (anything else makes a longer name). */
function endsName(byte: number | undefined): boolean {
  if (byte === undefined) return true;
  return [0x00, 0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x28, 0x29, 0x3c, 0x3e, 0x5b, 0x5d, 0x7b, 0x7d, 0x2f, 0x25].includes(byte);
}

/**
 * True when the PDF at `path` declares encryption: a `/Encrypt` name (not
 * `/EncryptMetadata`) anywhere in the file, which is where trailers and
 * cross-reference stream dictionaries put it. Streams the file; a match split
 * across two chunks is found because the tail of each chunk is carried over.
 */
export async function pdfIsEncrypted(path: string): Promise<boolean> {
  let carry = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
    const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    let i = buf.indexOf(ENCRYPT);
    while (i >= 0) {
      const after = i + ENCRYPT.length;
      // A match at the very end is decided with the next chunk (it is in the carry).
      if (after < buf.length && endsName(buf[after])) return true;
      i = buf.indexOf(ENCRYPT, i + 1);
    }
    carry = Buffer.from(buf.subarray(Math.max(0, buf.length - ENCRYPT.length)));
  }
  // The file ends right after "/Encrypt": still a declaration.
  return carry.equals(ENCRYPT);
}

/** Check one document's type; undefined when it is fine. */
function checkType(doc: FaxDocumentFile, head: Buffer): FaxRefusal | undefined {
  const name = shownName(doc);
  const ext = extensionOf(doc.filename);
  const type = faxTypeForExtension(ext);
  const kind = sniff(head);
  if (!type) {
    const what = kind && ext === "" ? KIND_LABELS[kind] : labelForUnsupportedExtension(ext);
    return {
      rule: "unsupported-type",
      filename: name,
      message: `"${name}" is ${what}, which RingCentral cannot fax. Supported types: ${SUPPORTED_TYPES_SUMMARY}.`,
    };
  }
  if (type.strict) {
    const matches = kind !== undefined ? type.kinds.includes(kind) : type.kinds.includes("pdf") && hasPdfHeader(head);
    if (!matches) {
      const actual = kind ? `its content is ${KIND_LABELS[kind]}` : "its content is not (it may be damaged, or renamed)";
      return {
        rule: "mislabeled-type",
        filename: name,
        message: `"${name}" is named as ${type.label} but ${actual}, so it cannot be faxed. Send the document in its real format.`,
      };
    }
    return undefined;
  }
  if (kind !== undefined && !type.kinds.includes(kind)) {
    return {
      rule: "mislabeled-type",
      filename: name,
      message: `"${name}" is named as ${type.label} but its content is ${KIND_LABELS[kind]}, so it cannot be faxed. Send the document in its real format.`,
    };
  }
  return undefined;
}

export async function preflight(documents: readonly FaxDocumentFile[], request: FaxRequest): Promise<PreflightResult> {
  if (request.to.length === 0) {
    return { ok: false, refusal: { rule: "no-recipients", message: "The email has no fax recipient, so there is no one to fax it to." } };
  }
  const cover = request.coverPageText;
  if (cover !== undefined && cover.length > COVER_TEXT_MAX) {
    return {
      ok: false,
      refusal: {
        rule: "cover-text-too-long",
        message: `The cover page text has ${cover.length} characters; RingCentral allows at most ${COVER_TEXT_MAX}.`,
      },
    };
  }

  let total = 0;
  const sizes: number[] = [];
  for (const doc of documents) {
    const name = shownName(doc);
    const size = (await stat(doc.path)).size;
    sizes.push(size);
    total += size;
    if (size === 0) {
      return {
        ok: false,
        refusal: { rule: "empty-file", filename: name, message: `"${name}" is empty (0 bytes), so there is nothing in it to fax.` },
      };
    }
    const typeProblem = checkType(doc, await readHead(doc.path));
    if (typeProblem) return { ok: false, refusal: typeProblem };
  }

  if (total > MAX_TOTAL_BYTES) {
    let largest = 0;
    sizes.forEach((s, i) => {
      if (s > (sizes[largest] ?? 0)) largest = i;
    });
    const doc = documents[largest];
    const name = doc ? shownName(doc) : "";
    const single = documents.length === 1;
    return {
      ok: false,
      refusal: {
        rule: "too-large",
        filename: name,
        message: single
          ? `"${name}" is ${megabytes(total)}; RingCentral faxes at most 50 MB (52,428,800 bytes) per fax. Send a smaller file.`
          : `The documents total ${megabytes(total)} (the largest is "${name}", ${megabytes(sizes[largest] ?? 0)}); RingCentral faxes at most 50 MB (52,428,800 bytes) per fax, all documents together. Split them over several emails.`,
      },
    };
  }

  for (const doc of documents) {
    if (extensionOf(doc.filename) !== "pdf") continue;
    if (await pdfIsEncrypted(doc.path)) {
      const name = shownName(doc);
      return {
        ok: false,
        refusal: {
          rule: "encrypted-pdf",
          filename: name,
          message: `"${name}" is a password-protected (encrypted) PDF, which RingCentral cannot fax. Save or print it as a PDF without a password or restrictions and send it again.`,
        },
      };
    }
  }
  return { ok: true };
}
