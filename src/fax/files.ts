/**
 * Files of a fax: the one table of document types (extension, MIME type,
 * label, signature), the one file-name rule, and magic-byte sniffing. Pure.
 *
 * The document types RingCentral can fax, by extension, with the MIME type we
 * send and what the content must look like; plus magic-byte sniffing.
 *
 * The supported list is RingCentral's ("Sending faxes" guide: pdf, psd, doc,
 * docx, dot, mcw, xls, xlsx, xlsb, ppt, pptx, vsd, vdx, pub, wps, wri, awd,
 * tif, tiff, gif, jpg, jpeg, bmp, png, pcx, tga, rtf, txt, log, h, cpp, c, err,
 * hpp, wk1, wk3, wk4, wq1, xml, html, htm, csv). Anything else is answered with
 * MSG-348 (415) by the API, so we refuse it before uploading.
 */

/** What a file's first bytes say it is. */
export type SniffedKind =
  | "pdf"
  | "png"
  | "jpeg"
  | "gif"
  | "tiff"
  | "bmp"
  | "psd"
  | "zip"
  | "ole2"
  | "rtf"
  | "exe"
  | "elf"
  | "macho"
  | "heic"
  | "isomedia"
  | "webp"
  | "gzip"
  | "rar"
  | "7z";

export interface FaxFileType {
  /** Extensions, lower case, without the dot; the first is canonical. */
  readonly extensions: readonly string[];
  readonly mime: string;
  /** How the refusal and the report name it: "a PDF document". */
  readonly label: string;
  /** Group name for the list of supported types in refusals. */
  readonly group: string;
  /**
   * Signatures the content may have. `strict` types must have one of them; the
   * others may also have no recognised signature (text, XML, old formats) but
   * never a signature of a different kind.
   */
  readonly kinds: readonly SniffedKind[];
  readonly strict: boolean;
}

const t = (
  extensions: string[],
  mime: string,
  label: string,
  group: string,
  kinds: SniffedKind[] = [],
  strict = false,
): FaxFileType => ({ extensions, mime, label, group, kinds, strict });

export const FAX_FILE_TYPES: readonly FaxFileType[] = [
  t(["pdf"], "application/pdf", "a PDF document", "PDF", ["pdf"], true),
  t(["tif", "tiff"], "image/tiff", "a TIFF image", "TIFF", ["tiff"], true),
  t(["png"], "image/png", "a PNG image", "PNG", ["png"], true),
  t(["jpg", "jpeg"], "image/jpeg", "a JPEG image", "JPEG", ["jpeg"], true),
  t(["gif"], "image/gif", "a GIF image", "GIF", ["gif"], true),
  t(["bmp"], "image/bmp", "a BMP image", "BMP", ["bmp"], true),
  t(["pcx"], "image/x-pcx", "a PCX image", "PCX/TGA"),
  t(["tga"], "image/x-tga", "a TGA image", "PCX/TGA"),
  t(["psd"], "image/vnd.adobe.photoshop", "a Photoshop image", "Photoshop (psd)", ["psd"], true),
  t(["docx"], "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a Word document", "Word (doc, docx, dot)", ["zip"], true),
  t(["doc"], "application/msword", "a Word document", "Word (doc, docx, dot)", ["ole2", "rtf"]),
  t(["dot"], "application/msword", "a Word template", "Word (doc, docx, dot)", ["ole2", "rtf"]),
  t(["xlsx"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "an Excel workbook", "Excel (xls, xlsx, xlsb)", ["zip"], true),
  t(["xlsb"], "application/vnd.ms-excel.sheet.binary.macroenabled.12", "an Excel workbook", "Excel (xls, xlsx, xlsb)", ["zip"], true),
  t(["xls"], "application/vnd.ms-excel", "an Excel workbook", "Excel (xls, xlsx, xlsb)", ["ole2"]),
  t(["pptx"], "application/vnd.openxmlformats-officedocument.presentationml.presentation", "a PowerPoint presentation", "PowerPoint (ppt, pptx)", ["zip"], true),
  t(["ppt"], "application/vnd.ms-powerpoint", "a PowerPoint presentation", "PowerPoint (ppt, pptx)", ["ole2"]),
  t(["vsd"], "application/vnd.visio", "a Visio drawing", "Visio (vsd, vdx)", ["ole2"]),
  t(["vdx"], "application/vnd.visio", "a Visio drawing", "Visio (vsd, vdx)"),
  t(["pub"], "application/x-mspublisher", "a Publisher document", "Publisher (pub)", ["ole2"]),
  t(["wps"], "application/vnd.ms-works", "a Works document", "Works/Write (wps, wri, mcw)", ["ole2"]),
  t(["wri"], "application/x-mswrite", "a Write document", "Works/Write (wps, wri, mcw)"),
  t(["mcw"], "application/macwriteii", "a MacWrite document", "Works/Write (wps, wri, mcw)"),
  t(["awd"], "application/x-awd", "an At Work fax document", "AWD"),
  t(["rtf"], "application/rtf", "a Rich Text document", "RTF", ["rtf"]),
  t(["txt"], "text/plain", "a text file", "text (txt, log, csv, xml, html, c/cpp/h)"),
  t(["log", "err"], "text/plain", "a text file", "text (txt, log, csv, xml, html, c/cpp/h)"),
  t(["c", "h"], "text/x-c", "a C source file", "text (txt, log, csv, xml, html, c/cpp/h)"),
  t(["cpp", "hpp"], "text/x-c++", "a C++ source file", "text (txt, log, csv, xml, html, c/cpp/h)"),
  t(["csv"], "text/csv", "a CSV file", "text (txt, log, csv, xml, html, c/cpp/h)"),
  t(["xml"], "application/xml", "an XML file", "text (txt, log, csv, xml, html, c/cpp/h)"),
  t(["html", "htm"], "text/html", "an HTML page", "text (txt, log, csv, xml, html, c/cpp/h)"),
  t(["wk1", "wk3", "wk4"], "application/vnd.lotus-1-2-3", "a Lotus 1-2-3 sheet", "Lotus/Quattro (wk1, wk3, wk4, wq1)"),
  t(["wq1"], "application/x-quattro-pro", "a Quattro Pro sheet", "Lotus/Quattro (wk1, wk3, wk4, wq1)"),
];

const BY_EXTENSION = new Map<string, FaxFileType>();
for (const type of FAX_FILE_TYPES) for (const ext of type.extensions) BY_EXTENSION.set(ext, type);

export function faxTypeForExtension(ext: string): FaxFileType | undefined {
  return BY_EXTENSION.get(ext.toLowerCase());
}

/** "PDF, TIFF, PNG, …": the supported groups, for refusal messages. */
export const SUPPORTED_TYPES_SUMMARY: string = [...new Set(FAX_FILE_TYPES.map((x) => x.group))].join(", ");

/** MIME types (beyond the table's own) mapped to an extension, for attachments without a usable file name. */
const MIME_TO_EXTENSION: Readonly<Record<string, string>> = {
  "image/jpg": "jpg",
  "image/pjpeg": "jpg",
  "image/x-ms-bmp": "bmp",
  "image/x-bmp": "bmp",
  "image/tif": "tif",
  "application/x-pdf": "pdf",
  "text/xml": "xml",
  "application/vnd.ms-excel.sheet.binary.macroEnabled.12": "xlsb",
  "image/heic": "heic",
  "image/heif": "heif",
  "image/webp": "webp",
  "image/svg+xml": "svg",
  "application/zip": "zip",
  "application/x-zip-compressed": "zip",
  "application/gzip": "gz",
  "application/x-msdownload": "exe",
  "application/vnd.oasis.opendocument.text": "odt",
  "application/vnd.oasis.opendocument.spreadsheet": "ods",
  "text/calendar": "ics",
  "text/vcard": "vcf",
  "text/x-vcard": "vcf",
  "message/rfc822": "eml",
  "application/ms-tnef": "dat",
  "application/vnd.ms-tnef": "dat",
};

/** The extension to give a document of `contentType` that has no usable file name ("bin" when unknown). */
export function extensionForMime(contentType: string): string {
  const base = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  for (const type of FAX_FILE_TYPES) if (type.mime === base) return type.extensions[0] ?? "bin";
  const lower = Object.fromEntries(Object.entries(MIME_TO_EXTENSION).map(([k, v]) => [k.toLowerCase(), v]));
  return lower[base] ?? "bin";
}

/** How refusals name files RingCentral cannot take, by extension. */
const UNSUPPORTED_LABELS: Readonly<Record<string, string>> = {
  heic: "an HEIC image",
  heif: "an HEIF image",
  avif: "an AVIF image",
  webp: "a WebP image",
  svg: "an SVG drawing",
  exe: "a Windows program",
  msi: "a Windows installer",
  dll: "a Windows library",
  bat: "a Windows script",
  cmd: "a Windows script",
  js: "a JavaScript file",
  sh: "a shell script",
  zip: "a ZIP archive",
  rar: "a RAR archive",
  "7z": "a 7-Zip archive",
  gz: "a gzip archive",
  tar: "a tar archive",
  odt: "an OpenDocument text",
  ods: "an OpenDocument spreadsheet",
  odp: "an OpenDocument presentation",
  pages: "an Apple Pages document",
  numbers: "an Apple Numbers sheet",
  key: "an Apple Keynote presentation",
  eml: "an email message",
  msg: "an Outlook message",
  ics: "a calendar invitation",
  vcf: "a contact card",
  mp3: "an audio file",
  wav: "an audio file",
  mp4: "a video",
  mov: "a video",
  md: "a Markdown file",
  json: "a JSON file",
  bin: "a file of unknown type",
  dat: "a data file",
};

export function labelForUnsupportedExtension(ext: string): string {
  return UNSUPPORTED_LABELS[ext] ?? (ext === "" ? "a file without a type" : `a .${ext} file`);
}

/** How refusals describe sniffed content. */
export const KIND_LABELS: Readonly<Record<SniffedKind, string>> = {
  pdf: "a PDF document",
  png: "a PNG image",
  jpeg: "a JPEG image",
  gif: "a GIF image",
  tiff: "a TIFF image",
  bmp: "a BMP image",
  psd: "a Photoshop image",
  zip: "a ZIP archive (or an Office 2007+ document)",
  ole2: "an old-style Office document (doc/xls/ppt)",
  rtf: "a Rich Text document",
  exe: "a Windows program",
  elf: "a Linux program",
  macho: "a macOS program",
  heic: "an HEIC image",
  isomedia: "a video or AVIF image",
  webp: "a WebP image",
  gzip: "a gzip archive",
  rar: "a RAR archive",
  "7z": "a 7-Zip archive",
};

/** How many leading bytes {@link sniff} wants (a PDF header may sit anywhere in the first 1024). */
export const SNIFF_BYTES = 4096;

function startsWith(head: Buffer, bytes: readonly number[], offset = 0): boolean {
  if (head.length < offset + bytes.length) return false;
  return bytes.every((b, i) => head[offset + i] === b);
}

const ascii = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));

/** Identify a file from its first bytes, or undefined when no known signature matches. */
export function sniff(head: Buffer): SniffedKind | undefined {
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(head, ascii("GIF87a")) || startsWith(head, ascii("GIF89a"))) return "gif";
  if (startsWith(head, [0x49, 0x49, 0x2a, 0x00]) || startsWith(head, [0x4d, 0x4d, 0x00, 0x2a])) return "tiff";
  if (startsWith(head, ascii("8BPS"))) return "psd";
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06])) return "zip";
  if (startsWith(head, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return "ole2";
  if (startsWith(head, ascii("{\\rtf"))) return "rtf";
  if (startsWith(head, [0x7f, 0x45, 0x4c, 0x46])) return "elf";
  if (
    startsWith(head, [0xfe, 0xed, 0xfa, 0xce]) ||
    startsWith(head, [0xfe, 0xed, 0xfa, 0xcf]) ||
    startsWith(head, [0xce, 0xfa, 0xed, 0xfe]) ||
    startsWith(head, [0xcf, 0xfa, 0xed, 0xfe])
  )
    return "macho";
  if (startsWith(head, [0x4d, 0x5a]) && head.length >= 0x40) {
    // A DOS/PE program: e_lfanew at 0x3C points at "PE\0\0" (or the file is a bare DOS MZ program).
    const peOffset = head.readUInt32LE(0x3c);
    if (startsWith(head, [0x50, 0x45, 0x00, 0x00], peOffset) || peOffset === 0 || peOffset + 4 > head.length) return "exe";
  }
  if (startsWith(head, [0x1f, 0x8b])) return "gzip";
  if (startsWith(head, ascii("Rar!\x1a\x07"))) return "rar";
  if (startsWith(head, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return "7z";
  if (startsWith(head, ascii("RIFF")) && startsWith(head, ascii("WEBP"), 8)) return "webp";
  if (startsWith(head, ascii("ftyp"), 4)) {
    const brand = head.subarray(8, 12).toString("latin1");
    return ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"].includes(brand) ? "heic" : "isomedia";
  }
  // BMP last: "BM" alone is too weak (a text file may start with it), so also require the reserved bytes to be 0.
  if (startsWith(head, [0x42, 0x4d]) && head.length >= 26 && head.readUInt32LE(6) === 0) return "bmp";
  if (startsWith(head, ascii("%PDF-"))) return "pdf";
  return undefined;
}

/** True when a PDF header appears in the first 1024 bytes (readers accept leading junk before it). */
export function hasPdfHeader(head: Buffer): boolean {
  return head.subarray(0, 1024 + 5).indexOf("%PDF-", 0, "latin1") >= 0;
}

/** The MIME type of a file name's extension from the table; `fallback` when the table does not know it. */
export function mimeForFilename(filename: string, fallback = "application/octet-stream"): string {
  return faxTypeForExtension(extensionOf(filename))?.mime ?? fallback;
}

/** The extension of a file name, lower-cased, without the dot ("" when there is none). */
export function extensionOf(filename: string): string {
  const dot = filename.lastIndexOf(".");
  return dot > 0 ? filename.slice(dot + 1).toLowerCase() : "";
}

/** Longest file name we produce, in characters, extension included. */
const FILENAME_MAX = 100;

/**
 * The one file-name rule: the name a document is uploaded to RingCentral under
 * is the name reports show. No directory part, no control characters,
 * none of `&@#$%^*` or other punctuation (RingCentral's fax guide forbids
 * them), letters of any script, digits, space, `.`, `_`, `-`, `(`, `)`, `+`, `,`.
 * The extension is kept (lower-cased); when the name has none, `fallbackExt`
 * (from the content type) is added. When nothing usable is left, the name is
 * `document-<index>.<ext>`. Applying it to its own output changes nothing.
 */
export function safeFilename(original: string | undefined, index: number, fallbackExt: string): string {
  const ext = fallbackExt.replace(/[^a-z0-9]/gi, "").toLowerCase() || "bin";
  const fallback = `document-${index}.${ext}`;
  if (original === undefined) return fallback;
  // Drop any directory part a sender (or an old mailer) put in the name.
  const base = original.normalize("NFC").split(/[\\/]/).pop() ?? "";
  const cleaned = base
    .replace(/[\p{Cc}\p{Cf}]/gu, "")
    .replace(/[^\p{L}\p{M}\p{N} ._\-()+,]/gu, "_")
    .replace(/_+/g, "_")
    .replace(/\s+/g, " ")
    .trim();
  const dot = cleaned.lastIndexOf(".");
  let stem = dot > 0 ? cleaned.slice(0, dot) : cleaned;
  let suffix = dot > 0 ? cleaned.slice(dot + 1).toLowerCase() : "";
  if (!/^[a-z0-9]{1,8}$/.test(suffix)) {
    // "report.final version" has no real extension: keep it all as the stem.
    if (suffix !== "") stem = cleaned;
    suffix = ext;
  }
  stem = stem.replace(/^[\s._]+/, "").replace(/[\s._]+$/, "");
  if (!/[\p{L}\p{N}]/u.test(stem)) return `document-${index}.${suffix}`;
  const maxStem = FILENAME_MAX - suffix.length - 1;
  if (stem.length > maxStem) {
    let cut = "";
    for (const ch of stem) {
      if (cut.length + ch.length > maxStem) break;
      cut += ch;
    }
    stem = cut.trimEnd();
  }
  return `${stem}.${suffix}`;
}

/** Make names distinct, case-insensitively (RingCentral shows documents by name): the second `a.pdf` becomes `a_2.pdf`. */
export function distinctFilenames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  return names.map((name) => {
    const dot = name.lastIndexOf(".");
    const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""];
    let candidate = name;
    for (let i = 2; seen.has(candidate.toLowerCase()); i++) candidate = `${stem}_${i}${ext}`;
    seen.add(candidate.toLowerCase());
    return candidate;
  });
}
