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
  cancelledAt: string | null;
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

  // Was Queued → Sent → Delivered; RingCentral's spec and FAQ say a fax that went through ends Sent.
  it("progresses Queued → Sent with per-recipient statuses and page count, and stores the rendered fax", async () => {
    const b = multipart([
      jsonPart({ to: [{ phoneNumber: "+14155550100" }, { phoneNumber: "+14155550101" }] }),
      filePart("attachment", "a.pdf", "application/pdf", doc1),
      filePart("attachment", "b.txt", "text/plain", doc2),
    ]);
    const sent = await client.sendMultipart(b.body, b.boundary);
    expect(sent.body["faxPageCount"]).toBe(0);
    const final = await waitFor(async () => {
      const r = await client.json(`${MS_PATH}/${String(sent.body["id"])}`);
      return r.body["messageStatus"] !== "Queued" ? r.body : undefined;
    });
    expect(final["messageStatus"]).toBe("Sent");
    expect(final["faxPageCount"]).toBe(3);
    expect(final["to"]).toEqual([
      expect.objectContaining({ phoneNumber: "+14155550100", messageStatus: "Sent" }),
      expect.objectContaining({ phoneNumber: "+14155550101", messageStatus: "Sent" }),
    ]);
    // One rendered PDF, not the uploads in their own types.
    const atts = final["attachments"] as { uri: string; type: string; contentType: string }[];
    expect(atts).toEqual([expect.objectContaining({ type: "RenderedDocument", contentType: "application/pdf" })]);
    const content = await client.fetch(atts[0]!.uri);
    expect(content.status).toBe(200);
    const text = Buffer.from(await content.arrayBuffer()).toString("latin1");
    expect(text.startsWith("%PDF-")).toBe(true);
    expect(text.match(/\/Type \/Page\b(?!s)/g)).toHaveLength(3);
  });

  it("stays Queued for queuedMs plus pageMs per page (timings are configurable)", async () => {
    const slow = await start({ faxTimings: { queuedMs: 10, pageMs: 60_000 } });
    try {
      const c2 = await Client.create(slow);
      const b = multipart([jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.pdf", "application/pdf", doc1)]);
      const sent = await c2.sendMultipart(b.body, b.boundary);
      await new Promise((r) => setImmediate(r));
      expect((await c2.json(`${MS_PATH}/${String(sent.body["id"])}`)).body["messageStatus"]).toBe("Queued");
    } finally {
      await slow.close();
    }
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
    // Was DeliveryFailed: RingCentral reports a fax that did not go through as SendingFailed.
    expect((await settled(noAnswer, "SendingFailed"))["to"]).toEqual([expect.objectContaining({ messageStatus: "SendingFailed", faxErrorCode: "NoAnswer" })]);
    // A scripted per-recipient DeliveryFailed aggregates to Sent (only SendingFailed makes the top level fail).
    expect((await settled(declined, "Sent"))["to"]).toEqual([expect.objectContaining({ messageStatus: "DeliveryFailed", faxErrorCode: "CallDeclined" })]);
    const m = await settled(mixed, "SendingFailed");
    expect(m["to"]).toEqual([
      expect.objectContaining({ messageStatus: "SendingFailed", faxErrorCode: "LineBusy" }),
      expect.not.objectContaining({ faxErrorCode: expect.anything() }),
    ]);
    expect((m["to"] as { messageStatus: string }[])[1]?.messageStatus).toBe("Sent");
  });

  it("lets the control API script any per-recipient outcome from the spec's enums", async () => {
    const put = (body: unknown): Promise<Response> =>
      fetch(`${emu.url}/emulator/fax-outcomes`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    expect((await put({ "+14155550111": { messageStatus: "Delivered" }, "+14155550112": { messageStatus: "SendingFailed", faxErrorCode: "CallFailed" } })).status).toBe(204);
    expect((await put({ "+14155550111": { messageStatus: "Bounced" } })).status).toBe(400);
    expect((await put({ "+14155550111": { messageStatus: "SendingFailed", faxErrorCode: "Gremlins" } })).status).toBe(400);
    expect((await put({ "+14155550111": { messageStatus: "SendingFailed" } })).status).toBe(400);
    const b = multipart([jsonPart({ to: [{ phoneNumber: "+14155550111" }, { phoneNumber: "+14155550112" }] }), filePart("attachment", "a.txt", "text/plain", doc2)]);
    const id = String((await client.sendMultipart(b.body, b.boundary)).body["id"]);
    const m = await waitFor(async () => {
      const r = await client.json(`${MS_PATH}/${id}`);
      return r.body["messageStatus"] !== "Queued" ? r.body : undefined;
    });
    expect(m["messageStatus"]).toBe("SendingFailed");
    expect(m["to"]).toEqual([
      expect.objectContaining({ phoneNumber: "+14155550111", messageStatus: "Delivered" }),
      expect.objectContaining({ phoneNumber: "+14155550112", messageStatus: "SendingFailed", faxErrorCode: "CallFailed" }),
    ]);
  });

  it("cancels a scheduled fax when its message is deleted before sendTime; an immediate one still goes out", async () => {
    const sendTime = new Date(Date.now() + 150).toISOString();
    const b = multipart([jsonPart({ to: [{ phoneNumber: "+14155550100" }], sendTime }), filePart("attachment", "a.pdf", "application/pdf", doc1)]);
    const scheduled = String((await client.sendMultipart(b.body, b.boundary)).body["id"]);
    const i = multipart([jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.pdf", "application/pdf", doc1)]);
    const immediate = String((await client.sendMultipart(i.body, i.boundary)).body["id"]);
    expect((await client.fetch(`${MS_PATH}/${scheduled}`, { method: "DELETE" })).status).toBe(204);
    expect((await client.fetch(`${MS_PATH}/${immediate}`, { method: "DELETE" })).status).toBe(204);
    expect((await sentFaxes()).find((f) => f.id === scheduled)?.cancelledAt).toEqual(expect.any(String));
    // The immediate fax reaches Sent although deleted; the scheduled one never leaves Queued.
    await waitFor(async () => ((await client.json(`${MS_PATH}/${immediate}`)).body["messageStatus"] === "Sent" ? true : undefined));
    await new Promise((r) => setTimeout(r, Date.parse(sendTime) - Date.now() + 100));
    const s = await client.json(`${MS_PATH}/${scheduled}`);
    expect(s.body).toMatchObject({ availability: "Deleted", messageStatus: "Queued", faxPageCount: 0 });
    expect((await sentFaxes()).find((f) => f.id === immediate)?.cancelledAt).toBeNull();
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
    const slow = await start({ faxTimings: { queuedMs: 60_000, pageMs: 10 } });
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
