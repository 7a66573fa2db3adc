import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Emulator } from "../../src/emulator/index.js";
import { Client, inboundFax, MS_PATH, pdf, start } from "./helpers.js";

interface List {
  records: { id: number; attachments: { id: number; uri: string; contentType: string }[] }[];
  navigation: { nextPage?: { uri: string }; previousPage?: { uri: string }; firstPage?: { uri: string }; lastPage?: { uri: string } };
  paging: { page: number; perPage: number; totalElements: number; totalPages: number; pageStart?: number; pageEnd?: number };
}

describe("emulator message store and sync", () => {
  let emu: Emulator;
  let client: Client;
  beforeEach(async () => {
    emu = await start({ limits: { Light: 1000, Medium: 1000 } });
    client = await Client.create(emu);
  });
  afterEach(async () => {
    await emu.close();
  });

  it("pages over 250 messages with navigation uris", async () => {
    for (let i = 0; i < 250; i++) await inboundFax(emu, pdf(1));
    const seen = new Set<number>();
    let next: string | undefined = `${MS_PATH}?messageType=Fax&direction=Inbound&perPage=100`;
    const pages: List["paging"][] = [];
    while (next) {
      const r: { status: number; body: List } = await client.json<List>(next);
      expect(r.status).toBe(200);
      pages.push(r.body.paging);
      for (const m of r.body.records) seen.add(m.id);
      next = r.body.navigation.nextPage?.uri;
    }
    expect(seen.size).toBe(250);
    expect(pages.map((p) => [p.page, p.pageStart, p.pageEnd])).toEqual([[1, 0, 99], [2, 100, 199], [3, 200, 249]]);
    expect(pages[0]).toMatchObject({ totalElements: 250, totalPages: 3, perPage: 100 });
    const outbound = await client.json<List>(`${MS_PATH}?direction=Outbound`);
    expect(outbound.body.records).toEqual([]);
    const bad = await client.json(`${MS_PATH}?messageType=Telegram`);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ errorCode: "CMN-101", errors: [{ parameterName: "messageType" }] });
  });

  it("downloads attachments byte-identical, with Range and 416", async () => {
    const doc = pdf(3, 5000);
    const msg = await inboundFax(emu, doc);
    expect(msg).toMatchObject({ direction: "Inbound", messageStatus: "Received", faxPageCount: 3, readStatus: "Unread" });
    const att = (msg["attachments"] as { uri: string; type: string; contentType: string }[])[0];
    expect(att).toMatchObject({ type: "RenderedDocument", contentType: "application/pdf" });
    // Content is on the media host, a second origin (media.ringcentral.com in production).
    expect(att?.uri.startsWith(`${emu.mediaUrl}/restapi/v1.0/account/100000001/extension/200000001/message-store/`)).toBe(true);
    const full = await client.fetch(att?.uri ?? "");
    expect(full.status).toBe(200);
    expect(full.headers.get("content-type")).toBe("application/pdf");
    expect(full.headers.get("content-length")).toBe(String(doc.length));
    expect(full.headers.get("x-rate-limit-group")).toBe("medium");
    expect(Buffer.from(await full.arrayBuffer()).equals(doc)).toBe(true);
    const part = await client.fetch(att?.uri ?? "", { headers: { Range: "bytes=10-19" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 10-19/${doc.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(doc.subarray(10, 20))).toBe(true);
    const tail = await client.fetch(att?.uri ?? "", { headers: { Range: "bytes=-5" } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(doc.subarray(doc.length - 5))).toBe(true);
    const bad = await client.fetch(att?.uri ?? "", { headers: { Range: `bytes=${doc.length + 10}-` } });
    expect(bad.status).toBe(416);
    expect(((await bad.json()) as Record<string, unknown>)["errorCode"]).toBe("CMN-107");
  });

  it("updates readStatus, deletes then purges", async () => {
    const msg = await inboundFax(emu, pdf(1));
    const path = `${MS_PATH}/${String(msg["id"])}`;
    const put = await client.json(path, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ readStatus: "Read" }) });
    expect(put.status).toBe(200);
    expect(put.body["readStatus"]).toBe("Read");
    expect((await client.fetch(path, { method: "DELETE" })).status).toBe(204);
    expect((await client.json(path)).body["availability"]).toBe("Deleted");
    const restore = await client.json(path, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ availability: "Alive" }) });
    expect(restore.body["availability"]).toBe("Alive");
    await client.fetch(path, { method: "DELETE" });
    expect((await client.fetch(path, { method: "DELETE" })).status).toBe(204);
    const gone = await client.json(path);
    expect(gone.status).toBe(404);
    expect(gone.body["errorCode"]).toBe("CMN-102");
  });

  it("FSync then ISync returns only changes since the token (with the 5 s overlap); MSG-333 after invalidate", async () => {
    const old = await inboundFax(emu, pdf(1));
    const f = await client.json<{ records: { id: number }[]; syncInfo: { syncType: string; syncToken: string; syncTime: string } }>(
      "/restapi/v1.0/account/~/extension/~/message-sync?syncType=FSync&messageType=Fax",
    );
    expect(f.status).toBe(200);
    expect(f.body.syncInfo.syncType).toBe("FSync");
    expect(f.body.records.map((r) => r.id)).toEqual([old["id"]]);
    const fresh = await inboundFax(emu, pdf(1));
    const i = await client.json<{ records: { id: number; lastModifiedTime?: string }[]; syncInfo: { syncType: string; syncToken: string } }>(
      `/restapi/v1.0/account/~/extension/~/message-sync?syncType=ISync&syncToken=${encodeURIComponent(f.body.syncInfo.syncToken)}`,
    );
    expect(i.body.syncInfo.syncType).toBe("ISync");
    const ids = i.body.records.map((r) => r.id);
    expect(ids).toContain(fresh["id"]);
    const syncTime = Date.parse(f.body.syncInfo.syncTime);
    const overlapOnly = i.body.records.filter((r) => r.id !== fresh["id"]);
    expect(overlapOnly.every((r) => Date.parse(r.lastModifiedTime ?? "") >= syncTime - 5000)).toBe(true);
    const again = await client.json<{ records: { id: number }[] }>(
      `/restapi/v1.0/account/~/extension/~/message-sync?syncType=ISync&syncToken=${encodeURIComponent(i.body.syncInfo.syncToken)}`,
    );
    expect(again.status).toBe(200);
    await fetch(`${emu.url}/emulator/sync/invalidate`, { method: "POST" });
    const stale = await client.json(`/restapi/v1.0/account/~/extension/~/message-sync?syncType=ISync&syncToken=${encodeURIComponent(i.body.syncInfo.syncToken)}`);
    expect(stale.status).toBe(400);
    expect(stale.body).toMatchObject({ errorCode: "MSG-333", errors: [{ errorCode: "MSG-333" }] });
  });

  it("lists the cover pages", async () => {
    const r = await client.json<{ records: { id: string; name: string }[] }>("/restapi/v1.0/dictionary/fax-cover-page");
    expect(r.body.records.map((c) => c.id)).toEqual(Array.from({ length: 14 }, (_, i) => String(i)));
  });
});
