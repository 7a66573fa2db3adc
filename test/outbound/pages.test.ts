import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { countPages, TEXT_LINES_PER_PAGE } from "../../src/outbound/pages.js";
import { tempDir } from "../helpers/tmp.js";

const dir = tempDir("faxbridge-pages-");
afterAll(() => dir.cleanup());

/** A PDF whose page tree has `n` leaves (all the same page object) while its /Count claims `claim`. */
function pdfWithPages(n: number, claim = n): Buffer {
  const kids = Array.from({ length: n }, () => "3 0 R").join(" ");
  return Buffer.from(
    `%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [${kids}] /Count ${claim} >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n`,
    "latin1",
  );
}

/** A little-endian TIFF with `n` (empty) image file directories. */
function tiffWithPages(n: number): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(8);
  head.write("II", 0, "latin1");
  head.writeUInt16LE(42, 2);
  head.writeUInt32LE(8, 4);
  parts.push(head);
  for (let i = 0; i < n; i++) {
    const ifd = Buffer.alloc(2 + 12 + 4);
    ifd.writeUInt16LE(1, 0);
    ifd.writeUInt16LE(256, 2); // ImageWidth
    const next = i === n - 1 ? 0 : 8 + (i + 1) * ifd.length;
    ifd.writeUInt32LE(next, 14);
    parts.push(ifd);
  }
  return Buffer.concat(parts);
}

function file(name: string, content: Buffer | string): { path: string; filename: string } {
  const path = join(dir.path, name);
  writeFileSync(path, content);
  return { path, filename: name };
}

describe("page counting", () => {
  it("counts the leaves of a PDF's page tree, not the /Count it claims, even for 300,000 pages", async () => {
    expect(await countPages(file("one.pdf", pdfWithPages(1)))).toBe(1);
    const t0 = performance.now();
    expect(await countPages(file("huge.pdf", pdfWithPages(300_000, 1)))).toBe(300_000);
    expect(performance.now() - t0).toBeLessThan(20_000);
  }, 30_000);

  it("counts TIFF pages by walking the image file directories, and gives up on a loop", async () => {
    expect(await countPages(file("scan.tif", tiffWithPages(7)))).toBe(7);
    const loop = tiffWithPages(2);
    loop.writeUInt32LE(8, 8 + 18 + 14); // the second directory points back at the first
    expect(await countPages(file("loop.tiff", loop))).toBeUndefined();
  });

  it("counts an image as one page and text by lines per page (long lines wrap)", async () => {
    expect(await countPages(file("photo.jpg", Buffer.from([0xff, 0xd8, 0xff])))).toBe(1);
    expect(await countPages(file("a.txt", "x\n".repeat(TEXT_LINES_PER_PAGE)))).toBe(1);
    expect(await countPages(file("b.txt", "x\n".repeat(TEXT_LINES_PER_PAGE + 1)))).toBe(2);
    expect(await countPages(file("c.txt", "y".repeat(80 * TEXT_LINES_PER_PAGE * 3)))).toBe(3);
    expect(await countPages(file("d.txt", "page one\fpage two\n"))).toBe(2);
  });

  it("leaves types RingCentral renders, and unreadable files, to RingCentral's count", async () => {
    expect(await countPages(file("letter.docx", "PK\x03\x04"))).toBeUndefined();
    expect(await countPages(file("broken.pdf", "%PDF-1.4\nnothing here"))).toBeUndefined();
  });
});
