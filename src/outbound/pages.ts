import { createReadStream } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { extname } from "node:path";
import { ParseSpeeds, PDFDocument } from "pdf-lib";
import { faxTypeForExtension } from "../fax/files.js";

/**
 * How many fax pages a document makes, counted before it is sent so that
 * `fax.maxPages` and the page quotas hold before money is spent:
 *
 * - PDF: the pages of its page tree, walked by pdf-lib (not the /Count the
 *   file claims). The file is read whole (documents are at most 50 MB) and
 *   parsed in slices that yield to the event loop.
 * - TIFF: one page per image file directory, walked through the file
 *   without reading the image data.
 * - Images (PNG, JPEG, GIF, BMP, PCX, TGA, PSD): one page.
 * - Plain text (txt, log, csv, C/C++): lines per page, long lines wrapped.
 * - Anything else (Office, RTF, HTML …) RingCentral renders itself: undefined,
 *   and the fax is charged when RingCentral reports its faxPageCount.
 *
 * A file that cannot be read this way also gives undefined (charged later)
 * rather than a guess.
 */

/** A fax page of text: about 66 lines of 80 characters at 10 pitch. */
export const TEXT_LINES_PER_PAGE = 66;
export const TEXT_COLUMNS = 80;
/** More directories than this in one TIFF is treated as a loop or a hostile file: counting stops there. */
const MAX_TIFF_PAGES = 100_000;

const SINGLE_PAGE_GROUPS = new Set(["PNG", "JPEG", "GIF", "BMP", "PCX/TGA", "Photoshop (psd)"]);
const PLAIN_TEXT = new Set(["txt", "log", "err", "csv", "c", "h", "cpp", "hpp"]);

export async function countPages(doc: { readonly path: string; readonly filename: string }): Promise<number | undefined> {
  const ext = extname(doc.filename).slice(1).toLowerCase();
  const type = faxTypeForExtension(ext);
  try {
    if (type?.group === "PDF") return await pdfPages(doc.path);
    if (type?.group === "TIFF") return await tiffPages(doc.path);
    if (type !== undefined && SINGLE_PAGE_GROUPS.has(type.group)) return 1;
    if (PLAIN_TEXT.has(ext)) return await textPages(doc.path);
  } catch {
    // Unreadable for counting: RingCentral's count is charged later.
    return undefined;
  }
  return undefined;
}

async function pdfPages(path: string): Promise<number | undefined> {
  const bytes = await readFile(path);
  const pdf = await PDFDocument.load(bytes, { ignoreEncryption: true, updateMetadata: false, throwOnInvalidObject: false, parseSpeed: ParseSpeeds.Fast });
  const n = pdf.getPageCount();
  return n > 0 ? n : undefined;
}

export async function tiffPages(path: string): Promise<number | undefined> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    const read = async (at: number, n: number): Promise<Buffer | undefined> => {
      if (at < 0 || at + n > size) return undefined;
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, at);
      return bytesRead === n ? buf : undefined;
    };
    const head = await read(0, 8);
    if (head === undefined) return undefined;
    const order = head.toString("latin1", 0, 2);
    if (order !== "II" && order !== "MM") return undefined;
    const le = order === "II";
    const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    // 42: classic TIFF. BigTIFF (43) is not something fax software sends: counted by RingCentral.
    if (u16(head, 2) !== 42) return undefined;
    let offset = u32(head, 4);
    const seen = new Set<number>();
    let pages = 0;
    while (offset !== 0) {
      if (seen.has(offset) || pages >= MAX_TIFF_PAGES) return undefined;
      seen.add(offset);
      const count = await read(offset, 2);
      if (count === undefined) return pages > 0 ? pages : undefined;
      const next = await read(offset + 2 + 12 * u16(count, 0), 4);
      pages++;
      if (next === undefined) break;
      offset = u32(next, 0);
    }
    return pages > 0 ? pages : undefined;
  } finally {
    await fh.close();
  }
}

export async function textPages(path: string): Promise<number> {
  let lines = 0;
  let column = 0;
  for await (const chunk of createReadStream(path, { encoding: "utf8", highWaterMark: 256 * 1024 })) {
    for (const ch of chunk as string) {
      if (ch === "\n") {
        lines++;
        column = 0;
      } else if (ch === "\f") {
        // A form feed starts a new page.
        lines = Math.ceil((lines + (column > 0 ? 1 : 0)) / TEXT_LINES_PER_PAGE) * TEXT_LINES_PER_PAGE;
        column = 0;
      } else if (ch !== "\r") {
        column++;
        if (column > TEXT_COLUMNS) {
          lines++;
          column = 1;
        }
      }
    }
  }
  if (column > 0) lines++;
  return Math.max(1, Math.ceil(lines / TEXT_LINES_PER_PAGE));
}
