import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Emulator } from "../../src/emulator/index.js";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { countTiffPages, renderTiff } from "../../src/emulator/render.js";
import WebSocket from "ws";
import { Client, filePart, inboundFax, jsonPart, MS_PATH, multipart, pdf, start, tokenRequest, waitFor, webhookReceiver, type Hook } from "./helpers.js";

async function countTiffPagesOf(body: Buffer): Promise<number | undefined> {
  const dir = await mkdtemp(join(tmpdir(), "tiff-"));
  try {
    await writeFile(join(dir, "f.tif"), body);
    return await countTiffPages(join(dir, "f.tif"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const ACCOUNT = "100000001";
const EXTENSION = "200000001";
const FILTER = "/restapi/v1.0/account/~/extension/~/message-store?type=Fax&direction=Inbound";

/** Places where the emulator used to differ from RingCentral (issue 9, items 3, 7, 8). */
describe("emulator fidelity: errors, limits and resolved ids as RingCentral has them", () => {
  let emu: Emulator;
  let client: Client;
  beforeEach(async () => {
    emu = await start();
    client = await Client.create(emu);
  });
  afterEach(async () => {
    await emu.close();
  });

  it("answers unparsable JSON with CMN-103, an unknown URI with CMN-120, a wrong method without CMN-405", async () => {
    const bad = await client.json("/restapi/v1.0/subscription", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{nope" });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ errorCode: "CMN-103", errors: [{ errorCode: "CMN-103", message: "JSON can't be parsed." }] });

    const unknown = await client.json("/restapi/v1.0/account/~/extension/~/no-such-thing");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ errorCode: "CMN-120", errors: [{ errorCode: "CMN-120" }] });

    const wrong = await client.json(`${MS_PATH}`, { method: "POST" });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("GET");
    expect(wrong.body["errorCode"]).not.toBe("CMN-405");
    expect(wrong.body).toMatchObject({ errorCode: "CMN-120" });
  });

  it("stores an injected TIFF fax as image/tiff with its pages counted; other types are refused", async () => {
    const tiff = renderTiff(4);
    expect(await countTiffPagesOf(tiff)).toBe(4);
    const res = await fetch(`${emu.url}/emulator/inbound-faxes?from=%2B14155550123`, { method: "POST", headers: { "Content-Type": "image/tiff" }, body: tiff });
    expect(res.status).toBe(200);
    const msg = (await res.json()) as { id: number; faxPageCount: number; attachments: { uri: string; contentType: string; fileName: string; type: string }[] };
    expect(msg.faxPageCount).toBe(4);
    expect(msg.attachments).toEqual([expect.objectContaining({ type: "RenderedDocument", contentType: "image/tiff", fileName: `fax-${msg.id}.tif` })]);
    const content = await client.fetch(msg.attachments[0]?.uri ?? "");
    expect(content.headers.get("content-type")).toBe("image/tiff");
    expect(Buffer.from(await content.arrayBuffer()).equals(tiff)).toBe(true);
    const png = await fetch(`${emu.url}/emulator/inbound-faxes?from=%2B14155550123`, { method: "POST", headers: { "Content-Type": "image/png" }, body: "x" });
    expect(png.status).toBe(400);
  });

  it("stores sent faxes as TIFF when the extension's format is TIFF", async () => {
    const t = await start({ faxFormat: "tiff" });
    try {
      const c = await Client.create(t);
      const m = multipart([jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.pdf", "application/pdf", pdf(2))]);
      const sent = await c.sendMultipart(m.body, m.boundary);
      const att = (sent.body["attachments"] as { uri: string; contentType: string }[])[0];
      expect(att?.contentType).toBe("image/tiff");
      const body = Buffer.from(await (await c.fetch(att?.uri ?? "")).arrayBuffer());
      expect(await countTiffPagesOf(body)).toBe(2);
    } finally {
      await t.close();
    }
  });

  it("resolves ~ to the account and extension ids in uri, navigation and subscription eventFilters", async () => {
    await inboundFax(emu, pdf(1));
    await inboundFax(emu, pdf(1));
    const list = await client.json<{ uri: string; navigation: Record<string, { uri: string }>; records: { uri: string }[] }>(`${MS_PATH}?perPage=1`);
    const prefix = `${emu.url}/restapi/v1.0/account/${ACCOUNT}/extension/${EXTENSION}/message-store`;
    expect(list.body.uri.startsWith(`${prefix}?`)).toBe(true);
    for (const n of Object.values(list.body.navigation)) expect(n.uri.startsWith(`${prefix}?`)).toBe(true);
    expect(Object.keys(list.body.navigation).sort()).toEqual(["firstPage", "lastPage", "nextPage"]);
    expect(list.body.records[0]?.uri.startsWith(prefix)).toBe(true);
    const sync = await client.json<{ uri: string }>("/restapi/v1.0/account/~/extension/~/message-sync?syncType=FSync");
    expect(sync.body.uri).toContain(`/account/${ACCOUNT}/extension/${EXTENSION}/message-sync`);
    expect(JSON.stringify(list.body) + JSON.stringify(sync.body)).not.toContain("/~/");
  });

  it("refuses access_token_ttl under 600 (and over 3600) as the spec's TokenRequest does", async () => {
    const grant = { grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: "jwt" };
    const short = await tokenRequest(emu, { ...grant, access_token_ttl: "599" });
    expect(short.status).toBe(400);
    expect(await short.json()).toMatchObject({ error: "invalid_request", errors: [{ errorCode: "OAU-101" }] });
    expect((await tokenRequest(emu, { ...grant, access_token_ttl: "3601" })).status).toBe(400);
    const ok = await tokenRequest(emu, { ...grant, access_token_ttl: "600" });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { expires_in: number }).expires_in).toBe(600);
  });

  it("answers permission errors as RingCentral does: InsufficientPermissions with permissionName, item CMN-401", async () => {
    const limited = await start({ permissions: ["Faxes"] });
    try {
      const c = await Client.create(limited);
      const r = await c.json(MS_PATH);
      expect(r.status).toBe(403);
      expect(r.body).toEqual({
        errorCode: "InsufficientPermissions",
        message: "In order to call this API endpoint, application needs to have [ReadMessages] permission",
        permissionName: "ReadMessages",
        errors: [{ errorCode: "CMN-401", message: "In order to call this API endpoint, application needs to have [ReadMessages] permission", permissionName: "ReadMessages" }],
      });
    } finally {
      await limited.close();
    }
  });

  it("recovers a WebSocket session by its wsc token, replaying missed notifications; an unknown token is Failed", async () => {
    type Frame = [Record<string, unknown>, Record<string, unknown> | undefined];
    const connect = async (wsc?: string): Promise<{ ws: WebSocket; frames: Frame[] }> => {
      const t = await client.json<{ ws_access_token: string; uri: string }>("/restapi/oauth/wstoken", { method: "POST" });
      const ws = new WebSocket(`${t.body.uri}?access_token=${t.body.ws_access_token}${wsc === undefined ? "" : `&wsc=${encodeURIComponent(wsc)}`}`);
      const frames: Frame[] = [];
      ws.on("message", (d: Buffer) => frames.push(JSON.parse(d.toString("utf8")) as Frame));
      await waitFor(() => frames.find((f) => f[0]["type"] === "ConnectionDetails"));
      return { ws, frames };
    };
    const first = await connect();
    const details = first.frames[0] as Frame;
    expect(details[1]).not.toHaveProperty("recoveryState");
    const token = (details[0]["wsc"] as { token: string }).token;
    first.ws.send(JSON.stringify([
      { type: "ClientRequest", messageId: "s-1", method: "POST", path: "/restapi/v1.0/subscription" },
      { eventFilters: [FILTER], deliveryMode: { transportType: "WebSocket" } },
    ]));
    const created = await waitFor(() => first.frames.find((f) => f[0]["messageId"] === "s-1"));
    const subscriptionId = created[1]?.["id"];
    first.ws.close();
    await new Promise((r) => first.ws.once("close", r));
    const missed = await inboundFax(emu, pdf(1));

    const second = await connect(token);
    try {
      const d2 = second.frames[0] as Frame;
      expect(d2[1]).toMatchObject({ recoveryState: "Successful", recoveryTimeout: 180, recoveryBufferSize: 100 });
      expect((d2[0]["wsc"] as { token: string }).token).toBe(token);
      const replayed = await waitFor(() => second.frames.find((f) => f[0]["type"] === "ServerNotification"));
      expect(replayed[1]).toMatchObject({ subscriptionId, body: { changes: [{ newMessageIds: [missed["id"]] }] } });
      // Same subscription, now live on the new connection.
      const live = await inboundFax(emu, pdf(1));
      await waitFor(() => second.frames.find((f) => f[0]["type"] === "ServerNotification" && JSON.stringify(f[1]).includes(String(live["id"]))));
      const subs = (await (await fetch(`${emu.url}/emulator/subscriptions`)).json()) as { id: string }[];
      expect(subs.map((s) => s.id)).toEqual([subscriptionId]);
    } finally {
      second.ws.close();
    }

    const third = await connect("no-such-token");
    try {
      expect((third.frames[0] as Frame)[1]).toMatchObject({ recoveryState: "Failed" });
    } finally {
      third.ws.close();
    }
  });

  describe("subscription limit", () => {
    let hook: Hook;
    beforeEach(async () => {
      hook = await webhookReceiver();
    });
    afterEach(async () => {
      await hook.close();
    });

    it("allows 30 subscriptions per extension and answers the 31st 403 SUB-505; deleting one frees a place", async () => {
      const create = () =>
        client.json("/restapi/v1.0/subscription", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ eventFilters: [FILTER], deliveryMode: { transportType: "WebHook", address: hook.url }, expiresIn: 3600 }),
        });
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await create();
        expect(r.status).toBe(200);
        ids.push(String(r.body["id"]));
      }
      const over = await create();
      expect(over.status).toBe(403);
      expect(over.body).toMatchObject({ errorCode: "SUB-505", errors: [{ errorCode: "SUB-505", message: "Subscriptions limit exceeded" }] });
      expect((await client.fetch(`/restapi/v1.0/subscription/${ids[0] ?? ""}`, { method: "DELETE" })).status).toBe(204);
      expect((await create()).status).toBe(200);
    });
  });
});
