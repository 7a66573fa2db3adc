import { afterEach, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Emulator } from "../../src/emulator/index.js";
import { Client, inboundFax, pdf, start, waitFor, webhookReceiver, type Hook } from "./helpers.js";

const FILTER = "/restapi/v1.0/account/~/extension/~/message-store?type=Fax&direction=Inbound";

describe("emulator subscriptions", () => {
  let emu: Emulator;
  let client: Client;
  let hook: Hook;
  beforeEach(async () => {
    emu = await start({ webhookBlacklistAfter: 2 });
    client = await Client.create(emu);
    hook = await webhookReceiver();
  });
  afterEach(async () => {
    await emu.close();
    await hook.close();
  });

  const create = (address: string, extra: Record<string, unknown> = {}) =>
    client.json("/restapi/v1.0/subscription", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ eventFilters: [FILTER], deliveryMode: { transportType: "WebHook", address, verificationToken: "vt-123" }, expiresIn: 3600, ...extra }),
    });

  it("validates the webhook, delivers with Verification-Token, renews, deletes", async () => {
    const r = await create(hook.url);
    expect(r.status).toBe(200);
    // RingCentral returns the filters with `~` resolved to the account and extension ids.
    expect(r.body).toMatchObject({ status: "Active", eventFilters: [FILTER.replace("account/~/extension/~", "account/100000001/extension/200000001")], deliveryMode: { transportType: "WebHook", address: hook.url, encryption: false } });
    expect(r.body["deliveryMode"]).not.toHaveProperty("verificationToken");
    expect(hook.requests[0]?.headers["validation-token"]).toMatch(/.+/);
    const id = String(r.body["id"]);

    const msg = await inboundFax(emu, pdf(1));
    const delivered = await waitFor(() => hook.requests.find((q) => q.headers["verification-token"] === "vt-123"));
    const n = JSON.parse(delivered.body) as Record<string, unknown>;
    expect(n).toMatchObject({
      subscriptionId: id,
      ownerId: "200000001",
      event: "/restapi/v1.0/account/100000001/extension/200000001/message-store?type=Fax&direction=Inbound",
      body: { extensionId: "200000001", changes: [{ type: "Fax", newCount: 1, updatedCount: 0, newMessageIds: [msg["id"]] }] },
    });

    const renewed = await client.json(`/restapi/v1.0/subscription/${id}/renew`, { method: "POST" });
    expect(renewed.status).toBe(200);
    const put = await client.json(`/restapi/v1.0/subscription/${id}`, { method: "PUT" });
    expect(put.status).toBe(200);
    expect((await client.json<{ records: unknown[] }>("/restapi/v1.0/subscription")).body.records).toHaveLength(1);
    expect((await client.fetch(`/restapi/v1.0/subscription/${id}`, { method: "DELETE" })).status).toBe(204);
    expect((await client.json(`/restapi/v1.0/subscription/${id}`)).status).toBe(404);
  });

  it("refuses a webhook that does not echo Validation-Token, or answers too much, with SUB-525", async () => {
    hook.respond = (_req, res) => {
      res.writeHead(200);
      res.end();
    };
    const r = await create(hook.url);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ errorCode: "SUB-525", errors: [{ errorCode: "SUB-525" }] });
    hook.respond = (req, res) => {
      res.writeHead(200, { "Validation-Token": String(req.headers["validation-token"]) });
      res.end("x".repeat(2000));
    };
    expect((await create(hook.url)).body["errorCode"]).toBe("SUB-525");
    expect((await client.json<{ records: unknown[] }>("/restapi/v1.0/subscription")).body.records).toEqual([]);
  });

  it("blacklists after consecutive delivery failures; expired subscriptions answer 404 SUB-507", async () => {
    const r = await create(hook.url);
    const id = String(r.body["id"]);
    hook.respond = (_req, res) => {
      res.writeHead(500);
      res.end();
    };
    // State is watched through the control API, which RingCentral's rate limits do not meter; the
    // REST API is asked once per state, so the test stays far under the Light limit (50 a minute).
    const controlSub = async (sid: string): Promise<Record<string, unknown> | undefined> =>
      ((await (await fetch(`${emu.url}/emulator/subscriptions`)).json()) as Record<string, unknown>[]).find((s) => s["id"] === sid);
    await inboundFax(emu, pdf(1));
    await waitFor(async () => ((await controlSub(id))?.["status"] === "Active" && hook.requests.length >= 2 ? true : undefined));
    expect((await client.json(`/restapi/v1.0/subscription/${id}`)).body["status"]).toBe("Active");
    await inboundFax(emu, pdf(1));
    await waitFor(async () => ((await controlSub(id))?.["status"] === "Blacklisted" ? true : undefined));
    const sub = (await client.json(`/restapi/v1.0/subscription/${id}`)).body;
    expect(sub["status"]).toBe("Blacklisted");
    expect(sub["blacklistedData"]).toMatchObject({ blacklistedAt: expect.any(String), reason: expect.any(String) });
    const before = hook.requests.length;
    await inboundFax(emu, pdf(1));
    const control = await (await fetch(`${emu.url}/emulator/subscriptions`)).json() as { id: string; deliveries: unknown[] }[];
    expect(control.find((s) => s.id === id)?.deliveries).toHaveLength(2);
    expect(hook.requests.length).toBe(before);

    hook.respond = (req, res) => {
      const t = req.headers["validation-token"];
      res.writeHead(200, typeof t === "string" ? { "Validation-Token": t } : {});
      res.end();
    };
    const short = await create(hook.url, { expiresIn: 1 });
    const sid = String(short.body["id"]);
    const expiry = Date.parse(String((await controlSub(sid))?.["expirationTime"]));
    await waitFor(() => (Date.now() > expiry ? true : undefined), 4000);
    const expired = await client.json(`/restapi/v1.0/subscription/${sid}`);
    expect(expired.status).toBe(404);
    expect(expired.body["errorCode"]).toBe("SUB-507");
  });

  it("subscribes over WebSocket and gets ServerNotification on an inbound fax", async () => {
    const wsToken = await client.json<{ ws_access_token: string; uri: string; expires_in: number }>("/restapi/oauth/wstoken", { method: "POST" });
    expect(wsToken.status).toBe(200);
    expect(wsToken.body.expires_in).toBe(30);
    expect(wsToken.body.uri).toBe(`${emu.url.replace("http", "ws")}/ws`);
    const ws = new WebSocket(`${wsToken.body.uri}?access_token=${wsToken.body.ws_access_token}`);
    const frames: [Record<string, unknown>, Record<string, unknown> | undefined][] = [];
    ws.on("message", (d: Buffer) => frames.push(JSON.parse(d.toString("utf8")) as [Record<string, unknown>, Record<string, unknown>]));
    try {
      const details = await waitFor(() => frames.find((f) => f[0]["type"] === "ConnectionDetails"));
      expect(details[0]).toMatchObject({ status: 200, wsc: { token: expect.any(String), sequence: expect.any(Number) } });
      expect(details[1]).toMatchObject({ recoveryTimeout: expect.any(Number), idleTimeout: expect.any(Number) });
      ws.send(JSON.stringify([
        { type: "ClientRequest", messageId: "m-1", method: "POST", path: "/restapi/v1.0/subscription/" },
        { eventFilters: ["/restapi/v1.0/account/~/extension/~/message-store"], deliveryMode: { transportType: "WebSocket" } },
      ]));
      const resp = await waitFor(() => frames.find((f) => f[0]["messageId"] === "m-1"));
      expect(resp[0]).toMatchObject({ type: "ClientRequest", status: 200 });
      expect(resp[1]).toMatchObject({ status: "Active", deliveryMode: { transportType: "WebSocket" } });
      ws.send(JSON.stringify([{ type: "Heartbeat", messageId: "hb-1" }]));
      await waitFor(() => frames.find((f) => f[0]["type"] === "Heartbeat" && f[0]["messageId"] === "hb-1"));

      const msg = await inboundFax(emu, pdf(1));
      const note = await waitFor(() => frames.find((f) => f[0]["type"] === "ServerNotification"));
      expect(note[1]).toMatchObject({ subscriptionId: resp[1]?.["id"], body: { changes: [{ type: "Fax", newCount: 1, newMessageIds: [msg["id"]] }] } });

      const reuse = new WebSocket(`${wsToken.body.uri}?access_token=${wsToken.body.ws_access_token}`);
      const err = await new Promise<[Record<string, unknown>]>((resolve) => reuse.once("message", (d: Buffer) => resolve(JSON.parse(d.toString("utf8")) as [Record<string, unknown>])));
      expect(err[0]).toMatchObject({ type: "Error", status: 401 });
      reuse.close();
    } finally {
      ws.close();
    }
  });
});
