import { createHash } from "node:crypto";
import { open, writeFile } from "node:fs/promises";

/**
 * The emulator's "rendering": a sent fax is stored in the message store as
 * one document (PDF or TIFF), the way RingCentral keeps the fax it
 * transmitted, not as the files that were uploaded. The pages are blank but
 * for a line naming the page, which is all tests need: a real document of
 * the right type with the right page count.
 */

export type RenderFormat = "pdf" | "tiff";

function pdfEscape(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").replace(/([\\()])/g, "\\$1");
}

/** A valid PDF 1.4 of `pages` letter-size pages, each carrying one line of text. */
export function renderPdf(pages: number, title: string): Buffer {
  const n = Math.max(1, pages);
  const objects: string[] = [];
  // 1: catalog, 2: pages, 3: font, then per page: page object and its content stream.
  const kids = Array.from({ length: n }, (_, i) => `${4 + i * 2} 0 R`).join(" ");
  objects.push("<< /Type /Catalog /Pages 2 0 R >>");
  objects.push(`<< /Type /Pages /Kids [${kids}] /Count ${n} >>`);
  objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
  for (let i = 0; i < n; i++) {
    const text = `BT /F1 12 Tf 72 720 Td (${pdfEscape(`${title} - page ${i + 1} of ${n}`)}) Tj ET`;
    objects.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${5 + i * 2} 0 R >>`);
    objects.push(`<< /Length ${Buffer.byteLength(text, "latin1")} >>\nstream\n${text}\nendstream`);
  }
  let out = "%PDF-1.4\n";
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out, "latin1"));
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out, "latin1");
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, "latin1");
}

const TIFF_WIDTH = 64;
const TIFF_HEIGHT = 64;

/**
 * A valid little-endian multi-page TIFF: one bilevel, uncompressed 64×64
 * image per page (one IFD each, chained), 204×196 dpi like a fine fax.
 */
export function renderTiff(pages: number): Buffer {
  const n = Math.max(1, pages);
  const rowBytes = TIFF_WIDTH / 8;
  const imageBytes = rowBytes * TIFF_HEIGHT;
  const entries = 11;
  const ifdBytes = 2 + entries * 12 + 4;
  const pageBytes = imageBytes + 16 + ifdBytes; // image, two RATIONALs, IFD
  const buf = Buffer.alloc(8 + n * pageBytes);
  buf.write("II", 0, "latin1");
  buf.writeUInt16LE(42, 2);
  let pos = 8;
  let linkAt = 4; // where the offset of the next IFD goes
  for (let p = 0; p < n; p++) {
    const imageAt = pos;
    // A thin black line across row p % height so pages differ.
    buf.fill(0xff, imageAt + (p % TIFF_HEIGHT) * rowBytes, imageAt + ((p % TIFF_HEIGHT) + 1) * rowBytes);
    const xresAt = imageAt + imageBytes;
    const yresAt = xresAt + 8;
    buf.writeUInt32LE(204, xresAt);
    buf.writeUInt32LE(1, xresAt + 4);
    buf.writeUInt32LE(196, yresAt);
    buf.writeUInt32LE(1, yresAt + 4);
    const ifdAt = yresAt + 8;
    buf.writeUInt32LE(ifdAt, linkAt);
    buf.writeUInt16LE(entries, ifdAt);
    const tags: [number, number, number, number][] = [
      [256, 3, 1, TIFF_WIDTH], // ImageWidth
      [257, 3, 1, TIFF_HEIGHT], // ImageLength
      [258, 3, 1, 1], // BitsPerSample
      [259, 3, 1, 1], // Compression: none
      [262, 3, 1, 0], // PhotometricInterpretation: WhiteIsZero
      [273, 4, 1, imageAt], // StripOffsets
      [278, 3, 1, TIFF_HEIGHT], // RowsPerStrip
      [279, 4, 1, imageBytes], // StripByteCounts
      [282, 5, 1, xresAt], // XResolution
      [283, 5, 1, yresAt], // YResolution
      [296, 3, 1, 2], // ResolutionUnit: inch
    ];
    tags.forEach(([tag, type, count, value], i) => {
      const at = ifdAt + 2 + i * 12;
      buf.writeUInt16LE(tag, at);
      buf.writeUInt16LE(type, at + 2);
      buf.writeUInt32LE(count, at + 4);
      if (type === 3) buf.writeUInt16LE(value, at + 8);
      else buf.writeUInt32LE(value, at + 8);
    });
    linkAt = ifdAt + 2 + entries * 12;
    buf.writeUInt32LE(0, linkAt);
    pos = ifdAt + ifdBytes;
  }
  return buf;
}

export async function writeRendered(
  path: string,
  format: RenderFormat,
  pages: number,
  title: string,
): Promise<{ size: number; sha256: string; contentType: string }> {
  const body = format === "pdf" ? renderPdf(pages, title) : renderTiff(pages);
  await writeFile(path, body, { flag: "wx" });
  const sha256 = createHash("sha256").update(body).digest("hex");
  return { size: body.length, sha256, contentType: format === "pdf" ? "application/pdf" : "image/tiff" };
}

/**
 * Counts the pages (IFDs) of a TIFF file by following the IFD chain, reading
 * only headers. Returns undefined when the file is not a TIFF or the chain is
 * broken (a loop, an offset past the end, more than 10 000 pages).
 */
export async function countTiffPages(path: string): Promise<number | undefined> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(8);
    if ((await fh.read(head, 0, 8, 0)).bytesRead < 8) return undefined;
    const order = head.toString("latin1", 0, 2);
    if (order !== "II" && order !== "MM") return undefined;
    const le = order === "II";
    const u16 = (b: Buffer, at: number): number => (le ? b.readUInt16LE(at) : b.readUInt16BE(at));
    const u32 = (b: Buffer, at: number): number => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
    if (u16(head, 2) !== 42) return undefined;
    const seen = new Set<number>();
    let offset = u32(head, 4);
    let pages = 0;
    const two = Buffer.alloc(2);
    const four = Buffer.alloc(4);
    while (offset !== 0) {
      if (seen.has(offset) || offset + 2 > size || pages >= 10_000) return undefined;
      seen.add(offset);
      await fh.read(two, 0, 2, offset);
      const count = u16(two, 0);
      const linkAt = offset + 2 + count * 12;
      if (linkAt + 4 > size) return undefined;
      await fh.read(four, 0, 4, linkAt);
      pages++;
      offset = u32(four, 0);
    }
    return pages;
  } finally {
    await fh.close();
  }
}
