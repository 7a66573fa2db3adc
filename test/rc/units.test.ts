import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import busboy from "busboy";
import {
  RcApiError,
  isSyncTokenInvalid,
  parseErrorBody,
  parseRetryAfter,
} from "../../src/rc/errors.js";
import { safeFilename } from "../../src/fax/files.js";
import { buildFaxBody, faxRequestJson, safeFilenames } from "../../src/rc/multipart.js";
import { parseJsonKeepingIds } from "../../src/rc/client.js";
import { parseGroupHeader } from "../../src/rc/groups.js";
import { messageInfoSchema } from "../../src/rc/types.js";

describe("parseErrorBody", () => {
  it("prefers errors[0] over the top level", () => {
    const body = JSON.stringify({
      errorCode: "InvalidParameter",
      message: "top",
      errors: [{ errorCode: "CMN-101", message: "Parameter [to] value is invalid.", parameterName: "to" }],
    });
    expect(parseErrorBody(body)).toEqual({ errorCode: "CMN-101", message: "Parameter [to] value is invalid.", parameterName: "to" });
  });
  it("falls back to top-level errorCode/message", () => {
    expect(parseErrorBody(JSON.stringify({ errorCode: "MSG-333", message: "full sync required" }))).toMatchObject({
      errorCode: "MSG-333",
      message: "full sync required",
    });
  });
  it("reads OAuth error/error_description", () => {
    expect(parseErrorBody(JSON.stringify({ error: "invalid_grant", error_description: "Token is expired" }))).toMatchObject({
      errorCode: "invalid_grant",
      message: "Token is expired",
    });
  });
  it("survives non-JSON and odd JSON", () => {
    expect(parseErrorBody("<html>Bad Gateway</html>")).toMatchObject({ errorCode: undefined, message: "<html>Bad Gateway</html>" });
    expect(parseErrorBody("")).toMatchObject({ errorCode: undefined, message: undefined });
    expect(parseErrorBody("[1,2]")).toMatchObject({ errorCode: undefined });
  });
});

describe("RcApiError", () => {
  const base = { operation: "syncMessages", group: "Light" as const, retryAfterMs: undefined, serverMessage: "x" };
  it("is retryable for 429 and 5xx, not for 4xx", () => {
    expect(new RcApiError({ ...base, status: 429, errorCode: "CMN-301" }).retryable).toBe(true);
    expect(new RcApiError({ ...base, status: 503, errorCode: undefined }).retryable).toBe(true);
    expect(new RcApiError({ ...base, status: 400, errorCode: "MSG-349" }).retryable).toBe(false);
    expect(new RcApiError({ ...base, status: 401, errorCode: "OAU-128" }).retryable).toBe(false);
  });
  it("isSyncTokenInvalid recognises MSG-333 only", () => {
    expect(isSyncTokenInvalid(new RcApiError({ ...base, status: 400, errorCode: "MSG-333" }))).toBe(true);
    expect(isSyncTokenInvalid(new RcApiError({ ...base, status: 400, errorCode: "CMN-101" }))).toBe(false);
    expect(isSyncTokenInvalid(new Error("MSG-333"))).toBe(false);
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("7", now)).toBe(7000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
  });
});

describe("parseGroupHeader", () => {
  it("maps any case onto our groups", () => {
    expect(parseGroupHeader("heavy")).toBe("Heavy");
    expect(parseGroupHeader("LIGHT")).toBe("Light");
    expect(parseGroupHeader("auth")).toBe("Auth");
    expect(parseGroupHeader("ultra")).toBeUndefined();
  });
});

describe("ids", () => {
  it("keeps int64 ids exact and as strings", () => {
    const json = parseJsonKeepingIds('{"id": 9007199254740993, "attachments":[{"id":1724099032020,"uri":"https://x"}], "coverPageText":"\\"id\\": 12345678901234567"}');
    const m = messageInfoSchema.parse(json);
    expect(m.id).toBe("9007199254740993");
    expect(m.attachments?.[0]?.id).toBe("1724099032020");
    expect(m.coverPageText).toBe('"id": 12345678901234567');
  });
});

/** The name a document is uploaded under: the one file-name rule of src/fax/files.ts (the report shows the same name). */
function uploadName(filename: string, contentType: string): string | undefined {
  return safeFilenames([{ path: "/x", filename, contentType }])[0];
}

describe("safeFilename", () => {
  it.each([
    ["/tmp/spool/abc/Invoice & Co.pdf", "application/pdf", "Invoice _ Co.pdf"],
    ["C:\\Users\\me\\report@#$%^*.PDF", "application/pdf", "report.pdf"],
    ["Ärger über Öl.tiff", "image/tiff", "Ärger über Öl.tiff"],
    ["scan", "image/png", "scan.png"],
    ["&&&.pdf", "application/pdf", "document-1.pdf"],
    ["", "application/pdf", "document-1.pdf"],
    [".hidden", "text/plain", "hidden.txt"],
    ["a b\tc\"d'e.txt", "text/plain", "a bc_d_e.txt"],
  ])("%s → %s", (input, type, expected) => {
    expect(uploadName(input, type)).toBe(expected);
  });
  it("bounds the length and keeps the extension", () => {
    const out = uploadName("x".repeat(300) + ".pdf", "application/pdf") ?? "";
    expect(out.endsWith(".pdf")).toBe(true);
    expect(out.length).toBeLessThanOrEqual(100);
  });
  it("is the same rule the parser names documents by: a parsed name is uploaded unchanged", () => {
    for (const name of ["Invoice _ Co.pdf", "Größe _ Übersicht.docx", "日本語の書類.pdf", "document-3.pdf", "report.final version.pdf"]) {
      expect(uploadName(safeFilename(name, 3, "pdf"), "application/pdf")).toBe(safeFilename(name, 3, "pdf"));
    }
  });
  it("makes names distinct", () => {
    const names = safeFilenames([
      { path: "/a", filename: "a&b.pdf", contentType: "application/pdf" },
      { path: "/b", filename: "a@b.pdf", contentType: "application/pdf" },
    ]);
    expect(names).toEqual(["a_b.pdf", "a_b_2.pdf"]);
  });
});

describe("fax multipart body", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "rc-form-"));
  });
  afterEach(async () => {
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  it("json part first, then attachments in order with real types, sized, byte-identical", async () => {
    const a = path.join(dir, "a.pdf");
    const b = path.join(dir, "b.png");
    const aBytes = crypto.randomBytes(200_000);
    const bBytes = crypto.randomBytes(70_001);
    await fs.promises.writeFile(a, aBytes);
    await fs.promises.writeFile(b, bBytes);
    const built = await buildFaxBody(
      { to: [{ phoneNumber: "+15551230000", name: "Bob" }], coverIndex: 0, coverPageText: "hello", faxResolution: "High" },
      [
        { path: a, filename: "My & Report.pdf", contentType: "application/pdf" },
        { path: b, filename: "chart.png", contentType: "image/png" },
      ],
    );
    expect(built.contentType).toMatch(/^multipart\/form-data; boundary=/);
    const parts: { name: string; filename: string; mimeType: string; data: Buffer }[] = [];
    let total = 0;
    await new Promise<void>((resolve, reject) => {
      const bb = busboy({ headers: { "content-type": built.contentType } });
      bb.on("file", (name, stream, info) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => parts.push({ name, filename: info.filename ?? "", mimeType: info.mimeType, data: Buffer.concat(chunks) }));
      });
      bb.on("field", (name) => reject(new Error(`unexpected non-file field ${name}`)));
      bb.on("close", () => resolve());
      bb.on("error", reject);
      built.body.on("data", (c: Buffer) => {
        total += c.length;
      });
      built.body.pipe(bb);
    });
    expect(total).toBe(built.contentLength);
    expect(parts.map((p) => [p.name, p.filename, p.mimeType])).toEqual([
      ["json", "request.json", "application/json"],
      ["attachment", "My _ Report.pdf", "application/pdf"],
      ["attachment", "chart.png", "image/png"],
    ]);
    expect(JSON.parse(parts[0]?.data.toString("utf8") ?? "")).toEqual({
      to: [{ phoneNumber: "+15551230000", name: "Bob" }],
      faxResolution: "High",
      coverIndex: 0,
      coverPageText: "hello",
    });
    expect(parts[1]?.data.equals(aBytes)).toBe(true);
    expect(parts[2]?.data.equals(bBytes)).toBe(true);
  });

  it("faxRequestJson omits undefined fields", () => {
    expect(JSON.parse(faxRequestJson({ to: [{ phoneNumber: "+1555" }] }))).toEqual({ to: [{ phoneNumber: "+1555" }] });
  });
});
