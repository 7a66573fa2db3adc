import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Emulator } from "../../src/emulator/index.js";
import { Client, filePart, jsonPart, MS_PATH, multipart, pdf, sha256, start, waitFor, FAX_PATH } from "./helpers.js";

interface SentFax {
  id: string;
  layout: string;
  to: { phoneNumber: string; name?: string }[];
  faxResolution: string;
  coverIndex: number | null;
  coverPageText: string | null;
  originalMessageId: string | null;
  attachments: { filename: string; contentType: string; size: number; sha256: string }[];
}

describe("emulator fax send", () => {
  let emu: Emulator;
  let client: Client;
  const doc1 = pdf(2, 1000);
  const doc2 = Buffer.from("hello fax\n");

  beforeEach(async () => {
    emu = await start({ limits: { Heavy: 100 }, faxOutcomes: { "+15550000003": { messageStatus: "DeliveryFailed", faxErrorCode: "CallDeclined" } } });
    client = await Client.create(emu);
  });
  afterEach(async () => {
    await emu.close();
  });

  const sentFaxes = async (): Promise<SentFax[]> => (await (await fetch(`${emu.url}/emulator/sent-faxes`)).json()) as SentFax[];

  it("accepts layout B (JSON part + files), layout A (field per part) and multipart/mixed, in order with hashes", async () => {
    const b = multipart([
      jsonPart({ to: [{ phoneNumber: "+14155550100", name: "Ann" }], faxResolution: "High", coverIndex: 0, coverPageText: "hi" }, "request.json"),
      filePart("attachments", "one.pdf", "application/pdf", doc1),
      filePart("attachments", "two.txt", "text/plain", doc2),
    ]);
    const rb = await client.sendMultipart(b.body, b.boundary);
    expect(rb.status).toBe(200);
    expect(rb.headers.get("x-rate-limit-group")).toBe("heavy");
    expect(rb.body).toMatchObject({ type: "Fax", direction: "Outbound", messageStatus: "Queued", faxResolution: "High", coverIndex: 0 });
    expect(rb.body["to"]).toEqual([{ recipientId: "1", phoneNumber: "+14155550100", name: "Ann", messageStatus: "Queued" }]);

    const a = multipart([
      filePart("coverPageText", "", "text/plain", "cover"),
      filePart("faxResolution", "", "text/plain", "Low"),
      filePart("to", "", "text/plain", "14155550101"),
      filePart("to", "", "text/plain", "+14155550102"),
      filePart("attachment", "one.pdf", "application/pdf", doc1),
      filePart("attachment", "two.txt", "text/plain", doc2),
    ]);
    expect((await client.sendMultipart(a.body, a.boundary)).status).toBe(200);

    const m = multipart([
      { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ to: [{ phoneNumber: "+14155550103" }] }) },
      { headers: { "Content-Type": "application/pdf", "Content-Disposition": 'attachment; filename="one.pdf"' }, body: doc1 },
      { headers: { "Content-Type": "text/plain", "Content-Disposition": 'attachment; filename="two.txt"' }, body: doc2 },
    ]);
    expect((await client.sendMultipart(m.body, m.boundary, "mixed")).status).toBe(200);

    const sent = await sentFaxes();
    expect(sent.map((s) => s.layout)).toEqual(["form-data-json", "form-data-fields", "mixed"]);
    const expected = [
      { filename: "one.pdf", contentType: "application/pdf", size: doc1.length, sha256: sha256(doc1) },
      { filename: "two.txt", contentType: "text/plain", size: doc2.length, sha256: sha256(doc2) },
    ];
    for (const s of sent) expect(s.attachments).toEqual(expected);
    expect(sent[1]?.to).toEqual([{ phoneNumber: "+14155550101" }, { phoneNumber: "+14155550102" }]);
    expect(sent[1]).toMatchObject({ faxResolution: "Low", coverPageText: "cover" });
  });

  it("progresses Queued → Sent → Delivered with per-recipient statuses and page count", async () => {
    const b = multipart([jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.pdf", "application/pdf", doc1)]);
    const sent = await client.sendMultipart(b.body, b.boundary);
    expect(sent.body["faxPageCount"]).toBe(0);
    const final = await waitFor(async () => {
      const r = await client.json(`${MS_PATH}/${String(sent.body["id"])}`);
      return r.body["messageStatus"] === "Delivered" ? r.body : undefined;
    });
    expect(final["faxPageCount"]).toBe(2);
    expect(final["to"]).toEqual([expect.objectContaining({ phoneNumber: "+14155550100", messageStatus: "Delivered" })]);
  });

  it("fails the documented numbers with faxErrorCode and aggregates the status", async () => {
    const send = async (numbers: string[]): Promise<string> => {
      const b = multipart([jsonPart({ to: numbers.map((phoneNumber) => ({ phoneNumber })) }), filePart("attachment", "a.txt", "text/plain", doc2)]);
      return String((await client.sendMultipart(b.body, b.boundary)).body["id"]);
    };
    const busy = await send(["+15550000001"]);
    const noAnswer = await send(["+15550000002"]);
    const declined = await send(["+15550000003"]);
    const mixed = await send(["+15550000001", "+14155550100"]);
    const settled = async (id: string, status: string): Promise<Record<string, unknown>> =>
      waitFor(async () => {
        const r = await client.json(`${MS_PATH}/${id}`);
        return r.body["messageStatus"] === status ? r.body : undefined;
      });
    expect((await settled(busy, "SendingFailed"))["to"]).toEqual([expect.objectContaining({ messageStatus: "SendingFailed", faxErrorCode: "LineBusy" })]);
    expect((await settled(noAnswer, "DeliveryFailed"))["to"]).toEqual([expect.objectContaining({ messageStatus: "DeliveryFailed", faxErrorCode: "NoAnswer" })]);
    expect((await settled(declined, "DeliveryFailed"))["to"]).toEqual([expect.objectContaining({ faxErrorCode: "CallDeclined" })]);
    const m = await settled(mixed, "SendingFailed");
    await waitFor(async () => {
      const r = await client.json<{ to: { messageStatus: string }[] }>(`${MS_PATH}/${mixed}`);
      return r.body.to[1]?.messageStatus === "Delivered" ? true : undefined;
    });
    expect(m["messageStatus"]).toBe("SendingFailed");
  });

  it("answers each validation error with RingCentral's code", async () => {
    const cases: { parts: Parameters<typeof multipart>[0]; status: number; code: string; param?: string }[] = [
      { parts: [jsonPart({}), filePart("attachment", "a.pdf", "application/pdf", doc1)], status: 400, code: "CMN-101", param: "to" },
      { parts: [jsonPart({ to: [{ phoneNumber: "12" }] }), filePart("attachment", "a.pdf", "application/pdf", doc1)], status: 400, code: "CMN-101", param: "to.phoneNumber" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), { headers: { "Content-Type": "application/pdf" }, body: doc1 }], status: 400, code: "MSG-350" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", undefined, "application/pdf", doc1)], status: 400, code: "MSG-351" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.pdf", "application/pdf", "")], status: 400, code: "MSG-347" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.exe", "application/x-msdownload", "MZ")], status: 415, code: "MSG-348" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.pdf", "video/mp4", "x")], status: 415, code: "MSG-348" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }], coverPageText: "x".repeat(1025) }), filePart("attachment", "a.pdf", "application/pdf", doc1)], status: 400, code: "CMN-101", param: "coverPageText" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }], faxResolution: "Medium" }), filePart("attachment", "a.pdf", "application/pdf", doc1)], status: 400, code: "CMN-101", param: "faxResolution" },
      { parts: [jsonPart({ to: [{ phoneNumber: "+14155550100" }], coverIndex: 99 }), filePart("attachment", "a.pdf", "application/pdf", doc1)], status: 400, code: "CMN-101", param: "coverIndex" },
      { parts: [{ headers: { "Content-Type": "application/json", "Content-Disposition": 'form-data; name="json"' }, body: "{not json" }, filePart("attachment", "a.pdf", "application/pdf", doc1)], status: 400, code: "MSG-349" },
    ];
    for (const c of cases) {
      const m = multipart(c.parts);
      const r = await client.sendMultipart(m.body, m.boundary);
      expect({ status: r.status, code: r.body["errorCode"] }).toEqual({ status: c.status, code: c.code });
      const item = c.param === undefined ? { errorCode: c.code } : { errorCode: c.code, parameterName: c.param };
      expect(r.body["errors"]).toEqual([expect.objectContaining({ ...item, message: expect.any(String) })]);
    }
    expect(await sentFaxes()).toEqual([]);
  });

  it("refuses more than 50 MB in total with MSG-337, streaming", async () => {
    const big = Buffer.alloc(26 * 1024 * 1024, 0x41);
    const m = multipart([
      jsonPart({ to: [{ phoneNumber: "+14155550100" }] }),
      filePart("attachment", "a.txt", "text/plain", big),
      filePart("attachment", "b.txt", "text/plain", big),
    ]);
    const r = await client.sendMultipart(m.body, m.boundary);
    expect(r.status).toBe(400);
    expect(r.body["errorCode"]).toBe("MSG-337");
  });

  it("resends by originalMessageId; unknown id 404 CMN-102; still Queued 406 MSG-343", async () => {
    const slow = await start({ faxTimings: { queuedMs: 60_000, sentMs: 10 } });
    try {
      const c2 = await Client.create(slow);
      const b = multipart([jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.pdf", "application/pdf", doc1)]);
      const queued = await c2.sendMultipart(b.body, b.boundary);
      const r = await c2.json(FAX_PATH, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ originalMessageId: String(queued.body["id"]) }) });
      expect(r.status).toBe(406);
      expect(r.body["errorCode"]).toBe("MSG-343");
    } finally {
      await slow.close();
    }
    const unknown = await client.json(FAX_PATH, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ originalMessageId: "999" }) });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ errorCode: "CMN-102", errors: [{ parameterName: "originalMessageId" }] });

    const b = multipart([jsonPart({ to: [{ phoneNumber: "+15550000001" }] }), filePart("attachment", "a.pdf", "application/pdf", doc1)]);
    const failed = await client.sendMultipart(b.body, b.boundary);
    const id = String(failed.body["id"]);
    await waitFor(async () => ((await client.json(`${MS_PATH}/${id}`)).body["messageStatus"] === "SendingFailed" ? true : undefined));
    const resent = await client.json(FAX_PATH, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ originalMessageId: id, to: [{ phoneNumber: "+14155550199" }] }),
    });
    expect(resent.status).toBe(200);
    const log = await sentFaxes();
    expect(log.at(-1)).toMatchObject({ layout: "resend", originalMessageId: id, to: [{ phoneNumber: "+14155550199" }] });
    expect(log.at(-1)?.attachments[0]?.sha256).toBe(sha256(doc1));
  });
});
