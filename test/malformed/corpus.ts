/**
 * Broken and hostile MIME, generated (plus the raw files in
 * test/fixtures/malformed/). Each case is the exact bytes a client sends.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { markerPdf } from "../fault/harness.js";

export interface MalformedCase {
  name: string;
  raw: Buffer;
}

const CRLF = "\r\n";

function headers(name: string, extra: string[] = []): string {
  return [`From: <${name}@example.test>`, "To: <15551234567@fax.local>", `Subject: malformed ${name}`, `Message-ID: <${name}@example.test>`, "Date: Thu, 01 May 2025 10:00:00 +0000", "MIME-Version: 1.0", ...extra].join(CRLF);
}

function b64(buf: Buffer): string {
  return buf.toString("base64").replace(/.{1,76}/g, `$&${CRLF}`).trimEnd();
}

function pdfPart(boundary: string, disposition: string, pdf: Buffer = markerPdf("part")): string {
  return [`--${boundary}`, "Content-Type: application/pdf", disposition, "Content-Transfer-Encoding: base64", "", b64(pdf)].join(CRLF);
}

function multipart(name: string, parts: string[], boundary = "b1", extra: string[] = []): Buffer {
  return Buffer.from([headers(name, [`Content-Type: multipart/mixed; boundary="${boundary}"`, ...extra]), "", ...parts, `--${boundary}--`, ""].join(CRLF), "latin1");
}

const text = (boundary: string, body: string, ct = "text/plain; charset=utf-8"): string => [`--${boundary}`, `Content-Type: ${ct}`, "", body].join(CRLF);

/** Filenames that try to leave the spool. */
export const HOSTILE_FILENAMES = ["../../etc/passwd", "C:\\x.pdf", "/etc/cron.d/evil.pdf", "..\\..\\..\\win.pdf", "....//....//nested.pdf", "evil\u0000.pdf"];

export function generatedCorpus(): MalformedCase[] {
  const cases: MalformedCase[] = [];
  const add = (name: string, raw: Buffer | string): void => {
    cases.push({ name, raw: typeof raw === "string" ? Buffer.from(raw, "latin1") : raw });
  };

  add("empty", Buffer.alloc(0));
  add("headers-only", headers("headers-only") + CRLF);
  add("headers-only-no-newline", headers("headers-only-no-newline"));
  add("multipart-no-boundary", [headers("multipart-no-boundary", ["Content-Type: multipart/mixed"]), "", text("b1", "hello"), pdfPart("b1", 'Content-Disposition: attachment; filename="a.pdf"'), "--b1--", ""].join(CRLF));
  add("multipart-wrong-boundary", [headers("multipart-wrong-boundary", ['Content-Type: multipart/mixed; boundary="nope"']), "", text("b1", "hello"), pdfPart("b1", 'Content-Disposition: attachment; filename="a.pdf"'), "--b1--", ""].join(CRLF));
  add("multipart-unterminated", [headers("multipart-unterminated", ['Content-Type: multipart/mixed; boundary="b1"']), "", text("b1", "hello"), `--b1${CRLF}Content-Type: application/pdf${CRLF}Content-Disposition: attachment; filename="cut.pdf"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}JVBERi0xLjQK`].join(CRLF));
  add("multipart-empty-boundary", [headers("multipart-empty-boundary", ['Content-Type: multipart/mixed; boundary=""']), "", "--", "Content-Type: text/plain", "", "x", "----", ""].join(CRLF));
  add("huge-header-line-1mb", [headers("huge-header-line-1mb", [`X-Huge: ${"a".repeat(1024 * 1024)}`, 'Content-Type: multipart/mixed; boundary="b1"']), "", text("b1", "body"), pdfPart("b1", 'Content-Disposition: attachment; filename="a.pdf"'), "--b1--", ""].join(CRLF));
  add("huge-subject-folded", [headers("huge-subject-folded", [`X-Folded: ${Array.from({ length: 20_000 }, () => "word").join(`${CRLF} `)}`, "Content-Type: text/plain"]), "", "body", ""].join(CRLF));
  add("ten-thousand-headers", [headers("ten-thousand-headers", [...Array.from({ length: 10_000 }, (_, i) => `X-H${i}: v${i}`), "Content-Type: text/plain"]), "", "body", ""].join(CRLF));
  {
    const depth = 1000;
    const open: string[] = [];
    const close: string[] = [];
    for (let i = 0; i < depth; i++) {
      open.push(`--d${i}`, `Content-Type: multipart/mixed; boundary="d${i + 1}"`, "");
      close.unshift(`--d${i}--`);
    }
    add("nesting-1000", [headers("nesting-1000", ['Content-Type: multipart/mixed; boundary="d0"']), "", ...open, `--d${depth}`, "Content-Type: text/plain", "", "deep", `--d${depth}--`, ...close, ""].join(CRLF));
  }
  add("unknown-charset", [headers("unknown-charset", ["Content-Type: text/plain; charset=x-klingon-99", "Content-Transfer-Encoding: 8bit"]), "", "Caf\xe9 \xff\xfe", ""].join(CRLF));
  add("wrong-charset-utf8-declared-latin1-bytes", [headers("wrong-charset", ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]), "", "na\xefve caf\xe9 \xc3\x28 \xf0\x28\x8c\x28", ""].join(CRLF));
  add("bad-base64-attachment", multipart("bad-base64-attachment", [text("b1", "see attached"), [`--b1`, "Content-Type: application/pdf", 'Content-Disposition: attachment; filename="bad.pdf"', "Content-Transfer-Encoding: base64", "", "JVBERi0x!!!!@@@@####$$$$%%%%^^^^&&&&****", "====AAAA====", "not base64 at all ~~~~"].join(CRLF)]));
  add("bad-quoted-printable", multipart("bad-quoted-printable", [[`--b1`, "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable", "", "soft break at end =", "bad escapes =ZZ =G1 =", "=\xff=00 tail="].join(CRLF)]));
  add("unknown-transfer-encoding", multipart("unknown-transfer-encoding", [[`--b1`, "Content-Type: application/pdf", 'Content-Disposition: attachment; filename="x.pdf"', "Content-Transfer-Encoding: x-rot13", "", "whatever"].join(CRLF)]));
  add("zero-byte-attachment", multipart("zero-byte-attachment", [text("b1", "empty file attached"), [`--b1`, "Content-Type: application/pdf", 'Content-Disposition: attachment; filename="empty.pdf"', "Content-Transfer-Encoding: base64", "", ""].join(CRLF)]));
  add("lying-sizes", multipart("lying-sizes", [text("b1", "sizes lie"), pdfPart("b1", 'Content-Disposition: attachment; filename="liar.pdf"; size=999999999').replace("Content-Type: application/pdf", "Content-Type: application/pdf\r\nContent-Length: 5")], "b1", ["Content-Length: 3"]));
  add("ten-thousand-parts", multipart("ten-thousand-parts", [...Array.from({ length: 10_000 }, (_, i) => text("b1", `part ${i}`)), pdfPart("b1", 'Content-Disposition: attachment; filename="among-many.pdf"')]));
  add("nul-bytes", multipart("nul-bytes", [text("b1", "nul\x00in\x00body\x00"), pdfPart("b1", 'Content-Disposition: attachment; filename="n\x00ul.pdf"')], "b1", ["X-Nul: a\x00b"]));
  add("eight-bit-headers", [`From: Caf\xe9 \xff <eight-bit-headers@example.test>`, "To: <15551234567@fax.local>", "Subject: R\xe9sum\xe9 \x80\x81\xfe", "Message-ID: <eight-bit-headers@example.test>", "MIME-Version: 1.0", "Content-Type: text/plain", "", "body", ""].join(CRLF));
  add("duplicate-content-type", [headers("duplicate-content-type", ["Content-Type: text/plain", 'Content-Type: multipart/mixed; boundary="b1"']), "", text("b1", "which one?"), pdfPart("b1", 'Content-Disposition: attachment; filename="dup.pdf"'), "--b1--", ""].join(CRLF));
  add("no-headers-blank-first", `${CRLF}just a body${CRLF}`);
  add("garbage-binary", Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7919) % 256)));
  HOSTILE_FILENAMES.forEach((fn, i) => {
    add(`traversal-${i}`, multipart(`traversal-${i}`, [text("b1", "hostile name"), pdfPart("b1", `Content-Disposition: attachment; filename="${fn.replace(/"/g, '\\"')}"`).replace("Content-Type: application/pdf", `Content-Type: application/pdf; name="${fn}"`)]));
  });
  add("traversal-rfc2047", multipart("traversal-rfc2047", [pdfPart("b1", `Content-Disposition: attachment; filename="=?UTF-8?B?${Buffer.from("../../../tmp/evil-2047.pdf").toString("base64")}?="`)]));
  add("traversal-rfc2231", multipart("traversal-rfc2231", [pdfPart("b1", "Content-Disposition: attachment; filename*=UTF-8''%2E%2E%2F%2E%2E%2F%2E%2E%2Ftmp%2Fevil-2231.pdf")]));
  add("rfc2231-continuations", multipart("rfc2231-continuations", [pdfPart("b1", "Content-Disposition: attachment;\r\n filename*0*=UTF-8''R%C3%A9sum%C3%A9%20;\r\n filename*1*=de%20l%27%C3%A9t%C3%A9;\r\n filename*2=.pdf")]));
  add("rfc2231-bad-charset", multipart("rfc2231-bad-charset", [pdfPart("b1", "Content-Disposition: attachment; filename*=x-nope''%FF%FE%00%2F.pdf")]));
  add("long-filename-5000", multipart("long-filename-5000", [pdfPart("b1", `Content-Disposition: attachment; filename="${"n".repeat(5000)}.pdf"`)]));
  add("long-filename-multibyte", multipart("long-filename-multibyte", [pdfPart("b1", `Content-Disposition: attachment; filename*=UTF-8''${"%F0%9F%93%A0".repeat(400)}.pdf`)]));
  add("message-rfc822-loop", [headers("message-rfc822-loop", ["Content-Type: message/rfc822"]), "", ...Array.from({ length: 200 }, () => "Content-Type: message/rfc822\r\n"), "body", ""].join(CRLF));
  return cases;
}

/** The raw files in test/fixtures/malformed/ (each an .eml). */
export function fixtureCorpus(): MalformedCase[] {
  const dir = join(import.meta.dirname, "..", "fixtures", "malformed");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".eml"))
    .sort()
    .map((f) => ({ name: `fixture-${f.replace(/\.eml$/, "")}`, raw: readFileSync(join(dir, f)) }));
}
