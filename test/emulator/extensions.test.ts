import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Emulator } from "../../src/emulator/index.js";
import { basic, Client, filePart, jsonPart, login, MS_PATH, multipart, pdf, start, tokenRequest, waitFor, webhookReceiver, type Hook } from "./helpers.js";

const JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const A = "200000001";
const B = "200000002";
const msPath = (ext: string): string => `/restapi/v1.0/account/~/extension/${ext}/message-store`;
const faxPath = (ext: string): string => `/restapi/v1.0/account/~/extension/${ext}/fax`;
const FILTER = "/restapi/v1.0/account/~/extension/~/message-store?type=Fax&direction=Inbound";

interface Record_ {
  id: number;
  uri: string;
  direction: string;
  extensionId: string;
  from: { phoneNumber: string; extensionId?: string };
  to: { phoneNumber: string }[];
  attachments: { uri: string }[];
}

function faxBody(to = "+14155550100"): { body: Buffer; boundary: string } {
  return multipart([jsonPart({ to: [{ phoneNumber: to }] }), filePart("attachment", "a.pdf", "application/pdf", pdf(1))]);
}

async function send(client: Client, ext = "~"): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const m = faxBody();
  return client.json(faxPath(ext), { method: "POST", headers: { "Content-Type": `multipart/form-data; boundary=${m.boundary}` }, body: m.body });
}

async function control<T>(emu: Emulator, method: string, path: string, body?: string | Buffer, type = "application/json"): Promise<{ status: number; body: T }> {
  const res = await fetch(`${emu.url}${path}`, { method, ...(body !== undefined && { body, headers: { "Content-Type": type } }) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function as(emu: Emulator, jwt: string): Promise<{ client: Client; ownerId: string }> {
  const t = (await login(emu, jwt)) as { access_token: string; owner_id?: string };
  return { client: new Client(emu, t.access_token), ownerId: t.owner_id ?? "" };
}

describe("emulator with several extensions (one per JWT)", () => {
  let emu: Emulator;
  let hook: Hook | undefined;
  afterEach(async () => {
    await emu.close();
    await hook?.close();
    hook = undefined;
  });

  it("each JWT logs in as its own extension: `~` is it, sent and received faxes stay in its own store", async () => {
    emu = await start();
    const a = await as(emu, "eyJ.pool-a.sig");
    const b = await as(emu, "eyJ.pool-b.sig");
    expect([a.ownerId, b.ownerId]).toEqual([A, B]);
    expect((await as(emu, "eyJ.pool-a.sig")).ownerId).toBe(A); // the same JWT again: the same extension

    const sentA = await send(a.client);
    const sentB = await send(b.client);
    expect(sentA.status).toBe(200);
    expect(sentB.status).toBe(200);
    expect(sentA.body["from"]).toMatchObject({ phoneNumber: "+16505550100", extensionId: A });
    expect(sentB.body["from"]).toMatchObject({ phoneNumber: "+16505550101", extensionId: B });
    expect(String(sentB.body["uri"])).toContain(`/account/100000001/extension/${B}/message-store/`);

    const listA = await a.client.json<{ uri: string; records: Record_[] }>(MS_PATH);
    const listB = await b.client.json<{ uri: string; records: Record_[] }>(MS_PATH);
    expect(listA.body.records.map((r) => r.id)).toEqual([sentA.body["id"]]);
    expect(listB.body.records.map((r) => r.id)).toEqual([sentB.body["id"]]);
    // `~` resolves to the token's extension in every returned URI.
    expect(listB.body.uri).toContain(`/account/100000001/extension/${B}/message-store`);
    expect(listB.body.records[0]).toMatchObject({ extensionId: B });
    expect(listB.body.records[0]?.attachments[0]?.uri).toContain(`/extension/${B}/message-store/`);
    // The explicit own id works like `~`.
    expect((await b.client.json<{ records: Record_[] }>(msPath(B))).body.records).toHaveLength(1);

    // Received faxes: by ?extensionId=, by the number dialled, else the first extension.
    expect((await control(emu, "POST", `/emulator/inbound-faxes?from=%2B14155550123&extensionId=${B}`, pdf(1), "application/pdf")).status).toBe(200);
    const dialled = await control<Record_>(emu, "POST", "/emulator/inbound-faxes?from=%2B14155550124&to=%2B16505550101", pdf(1), "application/pdf");
    expect(dialled.body).toMatchObject({ extensionId: B, to: [{ phoneNumber: "+16505550101" }] });
    expect((await control<Record_>(emu, "POST", "/emulator/inbound-faxes?from=%2B14155550125", pdf(1), "application/pdf")).body).toMatchObject({
      extensionId: A,
      to: [{ phoneNumber: "+16505550100" }],
    });
    const inboundB = await b.client.json<{ records: Record_[] }>(`${MS_PATH}?direction=Inbound`);
    expect(inboundB.body.records.map((r) => r.from.phoneNumber).sort()).toEqual(["+14155550123", "+14155550124"]);
    const inboundA = await a.client.json<{ records: Record_[] }>(`${MS_PATH}?direction=Inbound`);
    expect(inboundA.body.records.map((r) => r.from.phoneNumber)).toEqual(["+14155550125"]);

    // Per-extension state through the control API.
    const exts = await control<{ extensionId: string; faxNumber: string; loggedIn: boolean; messages: Record<string, number> }[]>(emu, "GET", "/emulator/extensions");
    expect(exts.body).toEqual([
      expect.objectContaining({ extensionId: A, extensionNumber: "101", faxNumber: "+16505550100", loggedIn: true, messages: { total: 2, inbound: 1, outbound: 1 } }),
      expect.objectContaining({ extensionId: B, extensionNumber: "102", faxNumber: "+16505550101", loggedIn: true, messages: { total: 3, inbound: 2, outbound: 1 } }),
    ]);
    expect(JSON.stringify(exts.body)).not.toContain("pool-");
    const msgsB = await control<Record_[]>(emu, "GET", `/emulator/extensions/${B}/messages`);
    expect(msgsB.body.map((m) => m.direction).sort()).toEqual(["Inbound", "Inbound", "Outbound"]);
    expect((await control(emu, "GET", "/emulator/extensions/299999999")).status).toBe(404);
    const sent = await control<{ id: string; extensionId: string }[]>(emu, "GET", "/emulator/sent-faxes");
    expect(sent.body.map((f) => [f.id, f.extensionId])).toEqual([[String(sentA.body["id"]), A], [String(sentB.body["id"]), B]]);
    expect((await control<unknown[]>(emu, "GET", `/emulator/sent-faxes?extensionId=${B}`)).body).toHaveLength(1);
  });

  it("each extension has its own rate-limit buckets: one held by 429 does not hold the other", async () => {
    emu = await start({ limits: { Heavy: 1 }, windowSeconds: 60, penaltySeconds: 60 });
    const a = await as(emu, "eyJ.bucket-a.sig");
    const b = await as(emu, "eyJ.bucket-b.sig");
    expect((await send(a.client)).status).toBe(200);
    const held = await send(a.client);
    expect(held.status).toBe(429);
    expect(held.headers.get("retry-after")).toBe("60");
    expect(held.body).toMatchObject({ errors: [{ errorCode: "CMN-301" }] });
    const other = await send(b.client);
    expect(other.status).toBe(200);
    expect(other.headers.get("x-rate-limit-remaining")).toBe("0");
    expect((await send(a.client)).status).toBe(429); // still held
    const calls = await control<{ byExtension: Record<string, { byGroupStatus: Record<string, Record<string, number>> }> }>(emu, "GET", "/emulator/calls");
    expect(calls.body.byExtension[A]?.byGroupStatus["Heavy"]).toEqual({ "200": 1, "429": 2 });
    expect(calls.body.byExtension[B]?.byGroupStatus["Heavy"]).toEqual({ "200": 1 });
  });

  it("the Auth group is counted per extension too (5 requests/user/min): logins and refreshes of one do not use up another's", async () => {
    emu = await start({ limits: { Auth: 2 }, windowSeconds: 60, penaltySeconds: 60 });
    const grant = (form: Record<string, string>) => tokenRequest(emu, form);
    const first = (await (await grant({ grant_type: JWT_GRANT, assertion: "eyJ.auth-a.sig" })).json()) as { refresh_token: string };
    expect((await grant({ grant_type: "refresh_token", refresh_token: first.refresh_token })).status).toBe(200);
    const held = await grant({ grant_type: JWT_GRANT, assertion: "eyJ.auth-a.sig" });
    expect(held.status).toBe(429);
    expect(held.headers.get("x-rate-limit-group")).toBe("auth");
    expect((await grant({ grant_type: JWT_GRANT, assertion: "eyJ.auth-b.sig" })).status).toBe(200);
    expect((await grant({ grant_type: JWT_GRANT, assertion: "eyJ.auth-b.sig" })).status).toBe(200);
    expect((await grant({ grant_type: JWT_GRANT, assertion: "eyJ.auth-b.sig" })).status).toBe(429);
  });

  it("another extension's id in a path answers 403 InsufficientPermissions (CMN-408), as for a user without rights to it", async () => {
    emu = await start();
    const a = await as(emu, "eyJ.cross-a.sig");
    const b = await as(emu, "eyJ.cross-b.sig");
    const faxB = await send(b.client);
    const idB = String(faxB.body["id"]);
    const denied = (permissionName: string) => ({
      errorCode: "InsufficientPermissions",
      permissionName,
      errors: [{ errorCode: "CMN-408", permissionName, message: `In order to call this API endpoint, user needs to have [${permissionName}] permission for requested resource.` }],
    });

    const list = await a.client.json(msPath(B));
    expect(list.status).toBe(403);
    expect(list.body).toMatchObject(denied("ReadMessages"));
    const sendOther = await send(a.client, B);
    expect(sendOther.status).toBe(403);
    expect(sendOther.body).toMatchObject(denied("OutboundFaxes"));
    expect((await a.client.json(`${msPath(B)}/${idB}`, { method: "DELETE" })).body).toMatchObject(denied("EditMessages"));
    expect((await a.client.json(`/restapi/v1.0/account/~/extension/${B}/message-sync?syncType=FSync`)).status).toBe(403);
    const content = await a.client.fetch(String((faxB.body["attachments"] as { uri: string }[])[0]?.uri));
    expect(content.status).toBe(403);
    // B's message through A's own store is simply not there; an unknown extension is not found.
    const viaOwn = await a.client.json(`${MS_PATH}/${idB}`);
    expect(viaOwn.status).toBe(404);
    expect(viaOwn.body).toMatchObject({ errors: [{ errorCode: "CMN-102", parameterName: "messageId" }] });
    const unknown = await a.client.json(msPath("299999999"));
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ errors: [{ errorCode: "CMN-102", parameterName: "extensionId" }] });
    // Nothing of B's changed, and B still reads it.
    expect((await b.client.json(`${msPath(B)}/${idB}`)).body).toMatchObject({ availability: "Alive" });
    // A sync token belongs to its extension's message-sync.
    const fsync = await a.client.json<{ syncInfo: { syncToken: string } }>("/restapi/v1.0/account/~/extension/~/message-sync?syncType=FSync");
    const isync = await b.client.json(`/restapi/v1.0/account/~/extension/~/message-sync?syncType=ISync&syncToken=${fsync.body.syncInfo.syncToken}`);
    expect(isync.status).toBe(400);
    expect(isync.body).toMatchObject({ errors: [{ errorCode: "MSG-333" }] });
  });

  it("subscriptions belong to their extension: its events only, invisible to the other's token", async () => {
    emu = await start();
    const a = await as(emu, "eyJ.subs-a.sig");
    const b = await as(emu, "eyJ.subs-b.sig");
    const receiver = await webhookReceiver();
    hook = receiver;
    const create = (c: Client, filter = FILTER) =>
      c.json("/restapi/v1.0/subscription", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ eventFilters: [filter], deliveryMode: { transportType: "WebHook", address: receiver.url }, expiresIn: 3600 }),
      });
    const subB = await create(b.client);
    expect(subB.body).toMatchObject({ eventFilters: [`/restapi/v1.0/account/100000001/extension/${B}/message-store?type=Fax&direction=Inbound`] });
    const id = String(subB.body["id"]);
    // A filter naming another extension is not one A can subscribe to.
    expect((await create(a.client, `/restapi/v1.0/account/~/extension/${B}/message-store`)).body).toMatchObject({ errors: [{ errorCode: "SUB-508" }] });

    expect((await a.client.json<{ records: unknown[] }>("/restapi/v1.0/subscription")).body.records).toHaveLength(0);
    expect((await b.client.json<{ records: unknown[] }>("/restapi/v1.0/subscription")).body.records).toHaveLength(1);
    expect((await a.client.json(`/restapi/v1.0/subscription/${id}`)).status).toBe(404);
    expect((await a.client.fetch(`/restapi/v1.0/subscription/${id}`, { method: "DELETE" })).status).toBe(404);
    expect((await b.client.json(`/restapi/v1.0/subscription/${id}`)).status).toBe(200);

    const handshakes = receiver.requests.length;
    await control(emu, "POST", "/emulator/inbound-faxes?from=%2B14155550130", pdf(1), "application/pdf"); // to A
    const forB = await control<Record_>(emu, "POST", `/emulator/inbound-faxes?from=%2B14155550131&extensionId=${B}`, pdf(1), "application/pdf");
    const delivered = await waitFor(() => receiver.requests.slice(handshakes).find((r) => r.body.includes(String(forB.body.id))));
    expect(JSON.parse(delivered.body)).toMatchObject({
      subscriptionId: id,
      ownerId: B,
      event: `/restapi/v1.0/account/100000001/extension/${B}/message-store?type=Fax&direction=Inbound`,
      body: { extensionId: B, changes: [{ newMessageIds: [forB.body.id] }] },
    });
    expect(receiver.requests.slice(handshakes)).toHaveLength(1); // A's fax notified nobody
    const listed = await control<{ id: string; extensionId: string }[]>(emu, "GET", "/emulator/subscriptions");
    expect(listed.body.map((s) => [s.id, s.extensionId])).toEqual([[id, B]]);
  });

  it("a WebSocket subscription carries its extension's events only", async () => {
    emu = await start();
    await as(emu, "eyJ.ws-a.sig");
    const b = await as(emu, "eyJ.ws-b.sig");
    const t = await b.client.json<{ ws_access_token: string; uri: string }>("/restapi/oauth/wstoken", { method: "POST" });
    const ws = new WebSocket(`${t.body.uri}?access_token=${t.body.ws_access_token}`);
    const frames: [Record<string, unknown>, Record<string, unknown> | undefined][] = [];
    ws.on("message", (d: Buffer) => frames.push(JSON.parse(d.toString("utf8")) as [Record<string, unknown>, Record<string, unknown>]));
    try {
      await waitFor(() => frames.find((f) => f[0]["type"] === "ConnectionDetails"));
      ws.send(JSON.stringify([
        { type: "ClientRequest", messageId: "m-1", method: "POST", path: "/restapi/v1.0/subscription" },
        { eventFilters: ["/restapi/v1.0/account/~/extension/~/message-store"], deliveryMode: { transportType: "WebSocket" } },
      ]));
      const resp = await waitFor(() => frames.find((f) => f[0]["messageId"] === "m-1"));
      expect(resp[1]).toMatchObject({ eventFilters: [`/restapi/v1.0/account/100000001/extension/${B}/message-store`] });
      const subId = String(resp[1]?.["id"]);
      await control(emu, "POST", "/emulator/inbound-faxes?from=%2B14155550140", pdf(1), "application/pdf"); // to A
      const forB = await control<Record_>(emu, "POST", `/emulator/inbound-faxes?from=%2B14155550141&extensionId=${B}`, pdf(1), "application/pdf");
      const note = await waitFor(() => frames.find((f) => f[0]["type"] === "ServerNotification"));
      expect(note[1]).toMatchObject({ subscriptionId: subId, ownerId: B, body: { extensionId: B, changes: [{ newMessageIds: [forB.body.id] }] } });
      expect(frames.filter((f) => f[0]["type"] === "ServerNotification")).toHaveLength(1);
      // A's token does not see B's WebSocket subscription either.
      const a = await as(emu, "eyJ.ws-a.sig");
      expect((await a.client.json(`/restapi/v1.0/subscription/${subId}`)).status).toBe(404);
    } finally {
      ws.close();
    }
  });

  it("strict credentials: the registered JWTs log in as extensions in order, others are refused until the control API adds them", async () => {
    emu = await start({ strictAuth: { clientId: "cid", clientSecret: "secret", jwt: "eyJ.strict-one.sig" }, extensions: ["eyJ.strict-two.sig"] });
    const grant = async (jwt: string) => tokenRequest(emu, { grant_type: JWT_GRANT, assertion: jwt }, basic("cid", "secret"));
    expect(await (await grant("eyJ.strict-one.sig")).json()).toMatchObject({ owner_id: A });
    expect(await (await grant("eyJ.strict-two.sig")).json()).toMatchObject({ owner_id: B });
    const third = await grant("eyJ.strict-three.sig");
    expect(third.status).toBe(400);
    expect(await third.json()).toMatchObject({ error: "invalid_grant", errors: [{ errorCode: "OAU-140" }] });

    const added = await control<Record<string, unknown>>(emu, "POST", "/emulator/extensions", JSON.stringify({ jwt: "eyJ.strict-three.sig" }));
    expect(added.body).toMatchObject({ extensionId: "200000003", extensionNumber: "103", faxNumber: "+16505550102", loggedIn: true });
    expect(JSON.stringify(added.body)).not.toContain("strict-three");
    expect(await (await grant("eyJ.strict-three.sig")).json()).toMatchObject({ owner_id: "200000003" });
    expect((await control(emu, "POST", "/emulator/extensions", JSON.stringify({}))).status).toBe(400);
  });

  it("a fault can target one extension's calls", async () => {
    emu = await start();
    const a = await as(emu, "eyJ.fault-a.sig");
    const b = await as(emu, "eyJ.fault-b.sig");
    expect((await control(emu, "POST", "/emulator/faults", JSON.stringify({ group: "Heavy", count: 1, kind: "429", retryAfter: 5, extensionId: B }))).status).toBe(204);
    expect((await send(a.client)).status).toBe(200);
    const held = await send(b.client);
    expect(held.status).toBe(429);
    expect(held.headers.get("retry-after")).toBe("5");
    expect((await send(b.client)).status).toBe(200);
  });
});
