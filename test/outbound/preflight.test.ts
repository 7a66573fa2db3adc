import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import MailComposer from "nodemailer/lib/mail-composer";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseFaxMail, type FaxDocumentFile, type FaxRequest } from "../../src/outbound/parse.js";
import { MAX_TOTAL_BYTES, pdfIsEncrypted, preflight, type PreflightResult } from "../../src/outbound/preflight.js";
import { sniff } from "../../src/fax/files.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "faxbridge-preflight-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const request: FaxRequest = { to: [{ phoneNumber: "+15551234567" }], faxResolution: "High" };

async function doc(filename: string, content: Buffer, originalFilename?: string): Promise<FaxDocumentFile> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}-${filename}`);
  await writeFile(path, content);
  const file: FaxDocumentFile = {
    path,
    filename,
    contentType: "application/octet-stream",
    size: content.length,
    sha256: createHash("sha256").update(content).digest("hex"),
  };
  if (originalFilename !== undefined) file.originalFilename = originalFilename;
  return file;
}

/** A sparse file of `size` bytes starting with `head`: large sizes without writing them. */
async function sparseDoc(filename: string, head: Buffer, size: number): Promise<FaxDocumentFile> {
  const path = join(dir, filename);
  const fh = await open(path, "w");
  try {
    await fh.write(head, 0, head.length, 0);
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  return { path, filename, contentType: "application/pdf", size, sha256: "" };
}

const tinyPdf = (extraTrailer = ""): Buffer =>
  Buffer.from(
    [
      "%PDF-1.4",
      "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj",
      "2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj",
      "xref",
      "0 3",
      "0000000000 65535 f ",
      "0000000009 00000 n ",
      "0000000058 00000 n ",
      `trailer << /Size 3 /Root 1 0 R${extraTrailer} >>`,
      "startxref",
      "110",
      "%%EOF",
      "",
    ].join("\n"),
    "latin1",
  );

const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(64)]);
const JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(64)]);
const GIF = Buffer.concat([Buffer.from("GIF89a", "latin1"), randomBytes(64)]);
const TIFF = Buffer.concat([Buffer.from([0x49, 0x49, 0x2a, 0x00]), randomBytes(64)]);
const ZIP = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), randomBytes(64)]);
/** A minimal PE header: "MZ", e_lfanew at 0x3C → "PE\0\0". */
function exe(): Buffer {
  const b = Buffer.alloc(256);
  b.write("MZ", 0, "latin1");
  b.writeUInt32LE(0x80, 0x3c);
  b.write("PE\0\0", 0x80, "latin1");
  return b;
}
const HEIC = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from("ftypheic", "latin1"), randomBytes(64)]);

function refusal(result: PreflightResult): { rule: string; message: string; filename?: string } {
  if (result.ok) throw new Error("expected a refusal");
  return result.refusal;
}

describe("preflight", () => {
  it("accepts supported documents whose content matches their extension", async () => {
    const docs = [
      await doc("a.pdf", tinyPdf()),
      await doc("b.png", PNG),
      await doc("c.jpg", JPEG),
      await doc("d.gif", GIF),
      await doc("e.tiff", TIFF),
      await doc("f.docx", ZIP),
      await doc("g.txt", Buffer.from("plain text\n")),
      await doc("h.html", Buffer.from("<p>hello</p>")),
      await doc("i.csv", Buffer.from("a,b\n1,2\n")),
    ];
    expect(await preflight(docs, request)).toEqual({ ok: true });
  });

  it("accepts an empty document list (a resend uploads nothing)", async () => {
    expect(await preflight([], request)).toEqual({ ok: true });
  });

  it("refuses an unsupported type, naming the file, its type and the supported list", async () => {
    const r = refusal(await preflight([await doc("scan.heic", HEIC)], request));
    expect(r.rule).toBe("unsupported-type");
    expect(r.filename).toBe("scan.heic");
    expect(r.message).toMatch(/^"scan\.heic" is an HEIC image, which RingCentral cannot fax\. Supported types: PDF, TIFF, /);
  });

  it("uses the sender's original file name in refusals", async () => {
    const r = refusal(await preflight([await doc("my_photo.webp", randomBytes(10), "my photo?.webp")], request));
    expect(r.filename).toBe("my photo?.webp");
    expect(r.message).toContain('"my photo?.webp" is a WebP image');
  });

  it("refuses a .pdf that is really a Windows program", async () => {
    const r = refusal(await preflight([await doc("invoice.pdf", exe())], request));
    expect(r.rule).toBe("mislabeled-type");
    expect(r.filename).toBe("invoice.pdf");
    expect(r.message).toBe('"invoice.pdf" is named as a PDF document but its content is a Windows program, so it cannot be faxed. Send the document in its real format.');
  });

  it("refuses a .pdf without a PDF header, and a .docx that is not a zip", async () => {
    expect(refusal(await preflight([await doc("x.pdf", Buffer.from("hello"))], request)).message).toMatch(/not \(it may be damaged, or renamed\)/);
    expect(refusal(await preflight([await doc("x.docx", Buffer.from("hello"))], request)).rule).toBe("mislabeled-type");
  });

  it("accepts a PDF header after a little leading junk", async () => {
    expect(await preflight([await doc("x.pdf", Buffer.concat([Buffer.from("\r\n\r\njunk"), tinyPdf()]))], request)).toEqual({ ok: true });
  });

  it("refuses a .txt whose content is an image or a program", async () => {
    expect(refusal(await preflight([await doc("notes.txt", PNG)], request)).message).toMatch(/named as a text file but its content is a PNG image/);
    expect(refusal(await preflight([await doc("notes.txt", exe())], request)).message).toMatch(/Windows program/);
  });

  it("does not mistake a text file starting with BM or MZ for a program or bitmap", async () => {
    expect(await preflight([await doc("a.txt", Buffer.from("BMW service report\nall fine\n"))], request)).toEqual({ ok: true });
    expect(await preflight([await doc("b.txt", Buffer.from("MZ short"))], request)).toEqual({ ok: true });
  });

  it("refuses a zero-byte file", async () => {
    const r = refusal(await preflight([await doc("a.pdf", tinyPdf()), await doc("blank.pdf", Buffer.alloc(0))], request));
    expect(r.rule).toBe("empty-file");
    expect(r.filename).toBe("blank.pdf");
    expect(r.message).toMatch(/empty \(0 bytes\)/);
  });

  it("refuses documents totalling more than 50 MiB and accepts exactly 50 MiB", async () => {
    const head = tinyPdf();
    const a = await sparseDoc("a.pdf", head, 30 * 1024 * 1024);
    const b = await sparseDoc("b.pdf", head, MAX_TOTAL_BYTES - 30 * 1024 * 1024 + 1);
    const r = refusal(await preflight([a, b], request));
    expect(r.rule).toBe("too-large");
    expect(r.filename).toBe("a.pdf");
    expect(r.message).toMatch(/total 50\.0 MB .*at most 50 MB \(52,428,800 bytes\)/);

    const c = await sparseDoc("c.pdf", head, MAX_TOTAL_BYTES - 30 * 1024 * 1024);
    expect(await preflight([a, c], request)).toEqual({ ok: true });
  });

  it("refuses a single file over 50 MiB", async () => {
    const big = await sparseDoc("big.pdf", tinyPdf(), 51 * 1024 * 1024);
    const r = refusal(await preflight([big], request));
    expect(r.rule).toBe("too-large");
    expect(r.message).toMatch(/^"big\.pdf" is 51\.0 MB/);
  });

  it("refuses an encrypted PDF (an /Encrypt entry in the trailer)", async () => {
    const r = refusal(await preflight([await doc("secret.pdf", tinyPdf(" /Encrypt 5 0 R /ID [<01> <01>]"))], request));
    expect(r.rule).toBe("encrypted-pdf");
    expect(r.filename).toBe("secret.pdf");
    expect(r.message).toMatch(/password-protected \(encrypted\) PDF/);
  });

  it("does not take a longer name such as /Encrypted for an /Encrypt entry", async () => {
    expect(await preflight([await doc("ok.pdf", tinyPdf(" /Encrypted true"))], request)).toEqual({ ok: true });
  });

  it("finds /Encrypt split across read chunks, and right at a chunk end", async () => {
    const chunk = 256 * 1024;
    for (const start of [chunk - 3, chunk - 8, chunk - 1, chunk]) {
      const body = Buffer.alloc(chunk * 2, 0x20);
      Buffer.from("%PDF-1.5\n").copy(body, 0);
      Buffer.from("/Encrypt 9 0 R").copy(body, start);
      const path = join(dir, `split-${start}.pdf`);
      await writeFile(path, body);
      expect(await pdfIsEncrypted(path)).toBe(true);
    }
    const clean = join(dir, "clean.pdf");
    await writeFile(clean, Buffer.concat([Buffer.from("%PDF-1.5\n"), Buffer.alloc(chunk * 2, 0x20)]));
    expect(await pdfIsEncrypted(clean)).toBe(false);
  });

  it("refuses cover text over 1024 characters and a request without recipients", async () => {
    const docs = [await doc("a.pdf", tinyPdf())];
    expect(refusal(await preflight(docs, { ...request, coverPageText: "x".repeat(1025) })).rule).toBe("cover-text-too-long");
    expect(await preflight(docs, { ...request, coverPageText: "x".repeat(1024) })).toEqual({ ok: true });
    expect(refusal(await preflight(docs, { ...request, to: [] })).rule).toBe("no-recipients");
  });

  it("sniffs the common signatures", () => {
    expect(sniff(tinyPdf())).toBe("pdf");
    expect(sniff(PNG)).toBe("png");
    expect(sniff(JPEG)).toBe("jpeg");
    expect(sniff(GIF)).toBe("gif");
    expect(sniff(TIFF)).toBe("tiff");
    expect(sniff(ZIP)).toBe("zip");
    expect(sniff(exe())).toBe("exe");
    expect(sniff(HEIC)).toBe("heic");
    expect(sniff(Buffer.from("hello"))).toBeUndefined();
  });

  it("passes a parsed mail end to end", async () => {
    const raw = join(dir, "mail.eml");
    const node = new MailComposer({
      from: "a@example.com",
      subject: "Referral",
      text: "Please see attached.",
      attachments: [
        { filename: "referral.pdf", content: tinyPdf() },
        { filename: "xray.jpg", content: JPEG },
      ],
    }).compile();
    await pipeline(node.createReadStream(), createWriteStream(raw));
    const workDir = join(dir, "work");
    await mkdir(workDir);
    const parsed = await parseFaxMail({
      rawPath: raw,
      workDir,
      envelope: { mailFrom: "a@example.com", rcptTo: [{ address: "15551234567@fax.local", e164: "+15551234567", options: {} }] },
      config: { coverText: "subject+body", coverIndex: -1, resolution: "High", skipInlineImages: true },
    });
    if (!parsed.ok) throw new Error(parsed.refusal.message);
    expect(await preflight(parsed.mail.documents, parsed.mail.request)).toEqual({ ok: true });
  });
});
