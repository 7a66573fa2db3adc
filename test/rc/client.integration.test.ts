/**
 * The RingCentral client against the RingCentral emulator over real HTTP.
 */
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import { createLogger } from "../../src/log.js";
import { RingCentralClient, type RcCall, type RcClientOptions } from "../../src/rc/client.js";
import { RcApiError, isSyncTokenInvalid } from "../../src/rc/errors.js";
import { waitFor } from "../helpers/wait.js";
import { capturingLogger } from "../helpers/log.js";
import { EmulatorControl, type CallsSnapshot } from "../helpers/emulator-control.js";

const CREDS = { clientId: "test-client-id", clientSecret: "s3cret-client-secret", jwt: "eyJ.test-jwt-assertion.sig" };
const FAX_TO = "+15551234567";

interface Harness {
  emu: Emulator;
  client: RingCentralClient;
  calls: (RcCall & { at: number })[];
  logLines: string[];
  dir: string;
}

let h: Harness | undefined;
const agents: Agent[] = [];
const servers: http.Server[] = [];

async function setup(emuOpts: EmulatorOptions = {}, clientOpts: Partial<RcClientOptions> = {}): Promise<Harness> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "rc-client-"));
  const emu = await startEmulator({ strictAuth: CREDS, faxTimings: { queuedMs: 50, pageMs: 50 }, ...emuOpts });
  const calls: Harness["calls"] = [];
  const logLines: string[] = [];
  const agent = new Agent({ keepAliveTimeout: 10 });
  agents.push(agent);
  const client = new RingCentralClient({
    serverUrl: emu.url,
    ...CREDS,
    logger: capturingLogger("debug", { raw: logLines }),
    dispatcher: agent,
    requestTimeoutMs: 5_000,
    retry: { baseDelayMs: 20, maxDelayMs: 100 },
    onCall: (c) => calls.push({ ...c, at: Date.now() }),
    mediaOrigins: [emu.mediaUrl],
    ...clientOpts,
  });
  h = { emu, client, calls, logLines, dir };
  return h;
}

afterEach(async () => {
  if (h) {
    await h.client.close();
    await h.emu.close();
    await fs.promises.rm(h.dir, { recursive: true, force: true });
    h = undefined;
  }
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  for (const a of agents.splice(0)) await a.close();
});

function control<T>(emu: Emulator, method: "GET" | "POST" | "PUT", p: string, body?: unknown, contentType?: string): Promise<T> {
  return new EmulatorControl(emu.url).request<T>(method, p, body, contentType);
}

const emuCalls = (emu: Emulator): Promise<CallsSnapshot> => control<CallsSnapshot>(emu, "GET", "/emulator/calls");

function pdf(tag: string): Buffer {
  return Buffer.from(`%PDF-1.4\n% ${tag} ${crypto.randomBytes(32).toString("hex")}\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n`);
}

async function inboundFax(emu: Emulator, from = "+15557654321"): Promise<{ id: string | number }> {
  return control(emu, "POST", `/emulator/inbound-faxes?from=${encodeURIComponent(from)}`, pdf("in"), "application/pdf");
}

const tokenCalls = (c: CallsSnapshot): number => c.byRoute["POST /restapi/oauth/token"] ?? 0;

describe("RingCentralClient against the emulator", () => {
  beforeEach(() => {
    h = undefined;
  });

  it("logs in with the JWT grant and Basic client auth; bad credentials are a typed, secret-free error", async () => {
    const { client, emu, logLines } = await setup();
    await client.login();
    expect(client.ownerId).toBeDefined();
    const pages = await client.listCoverPages();
    expect(pages.length).toBeGreaterThan(0);
    expect(tokenCalls(await emuCalls(emu))).toBe(1);

    const bad = new RingCentralClient({
      serverUrl: emu.url,
      ...CREDS,
      jwt: "eyJ.wrong-jwt.sig",
      logger: createLogger({ level: "silent" }),
      retry: { baseDelayMs: 10, maxDelayMs: 20 },
    });
    try {
      const err = await bad.login().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RcApiError);
      const e = err as RcApiError;
      expect(e.status).toBe(400);
      expect(e.errorCode).toBe("OAU-140");
      expect(e.retryable).toBe(false);
      expect(e.group).toBe("Auth");
      expect(e.message).not.toContain("wrong-jwt");
      expect(e.message).not.toContain(CREDS.clientSecret);
    } finally {
      await bad.close();
    }
    const allLogs = logLines.join("");
    expect(allLogs).toContain('"event":"rc.call"');
    for (const secret of [CREDS.clientSecret, CREDS.jwt]) expect(allLogs).not.toContain(secret);
  });

  it("refreshes the access token before it expires (no 401 seen)", async () => {
    // The client's clock (injected) moves 50 ms per call: the 2 s token ages without the test waiting for it.
    let skew = 0;
    const { client, emu, logLines } = await setup({ accessTokenTtlSeconds: 2, limits: { Light: 1000, Auth: 100 } }, { now: () => Date.now() + skew });
    let n = 0;
    for (; skew < 2_600; skew += 50) {
      await client.listCoverPages();
      n++;
    }
    const c = await emuCalls(emu);
    expect(n).toBeGreaterThan(10);
    expect(c.byStatus["401"]).toBeUndefined();
    expect(tokenCalls(c)).toBeGreaterThanOrEqual(2);
    expect(logLines.some((l) => l.includes('"event":"rc.auth.refreshed"'))).toBe(true);
    expect(logLines.some((l) => l.includes('"event":"rc.auth.refresh_rejected"'))).toBe(false);
  });

  it("when the server rejects a reused refresh token, re-authenticates with the JWT", async () => {
    let skew = 0;
    const { client, emu, logLines } = await setup({}, { now: () => Date.now() + skew });
    await client.login();
    // Someone else spends our refresh token first (refresh tokens are single use).
    // The test reaches into the client for it: there is deliberately no public accessor.
    const stolen = (client as unknown as { token: { refreshToken: string } }).token.refreshToken;
    const res = await request(`${emu.url}/restapi/oauth/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: "Basic " + Buffer.from(`${CREDS.clientId}:${CREDS.clientSecret}`).toString("base64"),
      },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: stolen }).toString(),
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    // Our access token is now dead too; move our clock close to expiry so the client refreshes first.
    skew = 3_590_000;
    const pages = await client.listCoverPages();
    expect(pages.length).toBeGreaterThan(0);
    const c = await emuCalls(emu);
    // login, the stolen refresh, our rejected refresh, the JWT re-login
    expect(c.byRouteStatus["POST /restapi/oauth/token"]).toEqual({ "200": 3, "400": 1 });
    expect(c.byStatus["401"]).toBeUndefined();
    expect(logLines.some((l) => l.includes('"event":"rc.auth.refresh_rejected"'))).toBe(true);
    expect(logLines.join("")).not.toContain(stolen);
  });

  it("401 → exactly one refresh and one retry; a second 401 is thrown", async () => {
    const { client, emu } = await setup();
    const msg = await inboundFax(emu);
    await client.login();
    await control(emu, "POST", "/emulator/faults", { path: "/message-store/", count: 1, kind: "status", status: 401 });
    const got = await client.getMessage(String(msg.id));
    expect(got.id).toBe(String(msg.id));
    let c = await emuCalls(emu);
    expect(c.byRouteStatus["GET /restapi/v1.0/account/{accountId}/extension/{extensionId}/message-store/{messageId}"]).toEqual({
      "401": 1,
      "200": 1,
    });
    expect(tokenCalls(c)).toBe(2);

    await control(emu, "POST", "/emulator/faults", { path: "/message-store/", count: 5, kind: "status", status: 401 });
    await expect(client.getMessage(String(msg.id))).rejects.toMatchObject({ name: "RcApiError", status: 401 });
    c = await emuCalls(emu);
    expect(c.byRouteStatus["GET /restapi/v1.0/account/{accountId}/extension/{extensionId}/message-store/{messageId}"]?.["401"]).toBe(3);
    expect(tokenCalls(c)).toBe(3);
  });

  it("a fax POST answered 401 is re-sent once after re-auth (it was not processed)", async () => {
    const { client, emu, dir } = await setup();
    const file = path.join(dir, "a.pdf");
    await fs.promises.writeFile(file, pdf("401"));
    await client.login();
    await control(emu, "POST", "/emulator/faults", { path: "/fax", group: "Heavy", count: 1, kind: "status", status: 401 });
    const res = await client.sendFax({ to: [{ phoneNumber: FAX_TO }] }, [{ path: file, filename: "a.pdf", contentType: "application/pdf" }]);
    expect(res.messageStatus).toBe("Queued");
    const sent = await control<{ id: string }[]>(emu, "GET", "/emulator/sent-faxes");
    expect(sent).toHaveLength(1);
  });

  it("cancels a scheduled fax by deleting its message (deleteMessage), then purges it", async () => {
    const { client, emu, dir } = await setup();
    const file = path.join(dir, "a.pdf");
    await fs.promises.writeFile(file, pdf("scheduled"));
    const sendTime = new Date(Date.now() + 3_600_000).toISOString();
    const res = await client.sendFax({ to: [{ phoneNumber: FAX_TO }], sendTime }, [{ path: file, filename: "a.pdf", contentType: "application/pdf" }]);
    await client.deleteMessage(res.id);
    const sent = await control<{ id: string; cancelledAt: string | null }[]>(emu, "GET", "/emulator/sent-faxes");
    expect(sent).toEqual([expect.objectContaining({ id: String(res.id), cancelledAt: expect.any(String) })]);
    expect((await client.getMessage(res.id)).availability).toBe("Deleted");
    await client.deleteMessage(res.id, { purge: true });
    await expect(client.getMessage(res.id)).rejects.toMatchObject({ status: 404 });
  });

  it("a fax POST answered 503 is not retried inside the client", async () => {
    const { client, emu, dir } = await setup();
    const file = path.join(dir, "a.pdf");
    await fs.promises.writeFile(file, pdf("503"));
    await client.login();
    await control(emu, "POST", "/emulator/faults", { group: "Heavy", count: 1, kind: "status", status: 503, retryAfter: 1 });
    const err = await client
      .sendFax({ to: [{ phoneNumber: FAX_TO }] }, [{ path: file, filename: "a.pdf", contentType: "application/pdf" }])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(RcApiError);
    expect((err as RcApiError).retryable).toBe(true);
    expect((err as RcApiError).retryAfterMs).toBe(1000);
    expect((await emuCalls(emu)).byGroup["Heavy"]).toBe(1);
  });

  it("429 with Retry-After holds the whole group: nothing in the group reaches the server until it ends", async () => {
    const { client, emu, calls } = await setup();
    const msg = await inboundFax(emu);
    await client.login();
    await control(emu, "POST", "/emulator/faults", { group: "Light", count: 1, kind: "429", retryAfter: 2 });
    const a = client.getMessage(String(msg.id));
    const hit = await waitFor(() => calls.find((c) => c.status === 429), 5_000);
    const lightAt429 = (await emuCalls(emu)).byGroup["Light"] ?? 0;
    expect(client.rateLimitState().Light.heldUntil).toBeGreaterThanOrEqual(hit.at + 1_500);
    // a second request in the same group, started during the hold, waits
    const b = client.syncMessages({ syncType: "FSync", dateFrom: new Date(Date.now() - 3_600_000).toISOString() });
    // sample the server during the hold: no Light call arrives
    while (Date.now() < hit.at + 1_800) {
      expect((await emuCalls(emu)).byGroup["Light"] ?? 0).toBe(lightAt429);
      await new Promise((r) => setTimeout(r, 100));
    }
    const [ga, gb] = await Promise.all([a, b]);
    expect(ga.id).toBe(String(msg.id));
    expect(gb.syncInfo.syncType).toBe("FSync");
    const after = calls.filter((c) => c.group === "Light" && c.at > hit.at);
    expect(after).toHaveLength(2);
    for (const c of after) expect(c.at - c.durationMs).toBeGreaterThanOrEqual(hit.at + 1_500);
    const snap = await emuCalls(emu);
    expect(snap.byStatus["429"]).toBe(1);
  });

  it("paces the Heavy group at its limit with zero 429s", async () => {
    const { client, emu, dir } = await setup(
      { limits: { Heavy: 5 }, windowSeconds: 2, penaltySeconds: 2 },
      { rateLimits: { light: 50, medium: 40, heavy: 5, auth: 5, windowSeconds: 2 } },
    );
    const file = path.join(dir, "p.pdf");
    await fs.promises.writeFile(file, pdf("pace"));
    await client.login();
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 12 }, () =>
        client.sendFax({ to: [{ phoneNumber: FAX_TO }] }, [{ path: file, filename: "p.pdf", contentType: "application/pdf" }]),
      ),
    );
    const elapsed = Date.now() - started;
    expect(results).toHaveLength(12);
    const c = await emuCalls(emu);
    expect(c.byStatus["429"]).toBeUndefined();
    expect(c.byGroup["Heavy"]).toBe(12);
    // 12 at 5 per 2 s: two full waits are unavoidable; at most a little pacing slack beyond that
    expect(elapsed).toBeGreaterThanOrEqual(4_000);
    expect(elapsed).toBeLessThan(9_000);
  });

  it("a fax waiting for a Heavy slot can be aborted; it never reaches the server", async () => {
    const { client, emu, dir } = await setup({ limits: { Heavy: 1 } });
    const file = path.join(dir, "w.pdf");
    await fs.promises.writeFile(file, pdf("wait"));
    const doc = [{ path: file, filename: "w.pdf", contentType: "application/pdf" }];
    await client.sendFax({ to: [{ phoneNumber: FAX_TO }] }, doc);
    const ac = new AbortController();
    const waiting = client.sendFax({ to: [{ phoneNumber: FAX_TO }] }, doc, { signal: ac.signal });
    // learned from X-Rate-Limit-*: 1 per 60 s, used up; the second fax queues
    await waitFor(() => (client.rateLimitState().Heavy.waiting === 1 ? true : undefined), 2_000);
    expect(client.rateLimitState().Heavy).toMatchObject({ limit: 1, remaining: 0, windowSeconds: 60 });
    ac.abort(new Error("shutting down"));
    await expect(waiting).rejects.toThrow("shutting down");
    expect(client.rateLimitState().Heavy.waiting).toBe(0);
    expect((await emuCalls(emu)).byGroup["Heavy"]).toBe(1);
  });

  it("sends a fax with two attachments, in order and byte-identical", async () => {
    const { client, emu, dir } = await setup();
    const a = path.join(dir, "first doc & co.pdf");
    const b = path.join(dir, "second.txt");
    const aBytes = Buffer.concat([pdf("one"), crypto.randomBytes(300_000)]);
    const bBytes = Buffer.from("page two\n".repeat(5000));
    await fs.promises.writeFile(a, aBytes);
    await fs.promises.writeFile(b, bBytes);
    const res = await client.sendFax(
      { to: [{ phoneNumber: FAX_TO, name: "Dr. Who" }], coverIndex: 0, coverPageText: "Two docs", faxResolution: "High" },
      [
        { path: a, filename: "first doc & co.pdf", contentType: "application/pdf" },
        { path: b, filename: "second.txt", contentType: "text/plain" },
      ],
    );
    expect(typeof res.id).toBe("string");
    expect(res.messageStatus).toBe("Queued");
    const sent = await control<
      { id: string; layout: string; to: { phoneNumber: string; name?: string }[]; coverPageText: string | null; attachments: { filename: string; contentType: string; size: number; sha256: string }[] }[]
    >(emu, "GET", "/emulator/sent-faxes");
    expect(sent).toHaveLength(1);
    const s = sent[0];
    expect(String(s?.id)).toBe(res.id);
    expect(s?.layout).toBe("form-data-json");
    expect(s?.to).toEqual([{ phoneNumber: FAX_TO, name: "Dr. Who" }]);
    expect(s?.coverPageText).toBe("Two docs");
    const sha = (buf: Buffer): string => crypto.createHash("sha256").update(buf).digest("hex");
    expect(s?.attachments).toEqual([
      { filename: "first doc _ co.pdf", contentType: "application/pdf", size: aBytes.length, sha256: sha(aBytes) },
      { filename: "second.txt", contentType: "text/plain", size: bBytes.length, sha256: sha(bBytes) },
    ]);
    // the status follows in the message store
    const final = await waitFor(async () => {
      const m = await client.getMessage(res.id);
      return m.messageStatus === "Delivered" || m.messageStatus === "Sent" ? m : undefined;
    }, 5_000);
    expect(final.id).toBe(res.id);
  });

  it("sends the multipart/mixed layout of RingCentral's guide (faxLayout: mixed) with isoCode, byte-identical", async () => {
    const { client, emu, dir } = await setup({}, { faxLayout: "mixed" });
    const a = path.join(dir, "scan.pdf");
    const aBytes = Buffer.concat([pdf("mixed"), crypto.randomBytes(200_000)]);
    await fs.promises.writeFile(a, aBytes);
    const res = await client.sendFax(
      { to: [{ phoneNumber: "+442079460000" }], faxResolution: "Low", isoCode: "GB", coverPageText: "Mixed" },
      [{ path: a, filename: "scan.pdf", contentType: "application/pdf" }],
    );
    expect(res.messageStatus).toBe("Queued");
    const sent = await control<{ layout: string; isoCode: string | null; coverPageText: string | null; attachments: { filename: string; size: number; sha256: string }[] }[]>(
      emu,
      "GET",
      "/emulator/sent-faxes",
    );
    expect(sent[0]).toMatchObject({
      layout: "mixed",
      isoCode: "GB",
      coverPageText: "Mixed",
      attachments: [{ filename: "scan.pdf", size: aBytes.length, sha256: crypto.createHash("sha256").update(aBytes).digest("hex") }],
    });
  });

  it("resends by originalMessageId", async () => {
    const { client, emu, dir } = await setup();
    const file = path.join(dir, "r.pdf");
    await fs.promises.writeFile(file, pdf("resend"));
    const first = await client.sendFax({ to: [{ phoneNumber: FAX_TO }] }, [{ path: file, filename: "r.pdf", contentType: "application/pdf" }]);
    // while the original is still Queued RingCentral refuses the resend (MSG-343, 406)
    await expect(client.resendFax({ originalMessageId: first.id })).rejects.toMatchObject({
      name: "RcApiError",
      status: 406,
      errorCode: "MSG-343",
      retryable: false,
    });
    await waitFor(async () => ((await client.getMessage(first.id)).messageStatus !== "Queued" ? true : undefined), 5_000);
    const again = await client.resendFax({ originalMessageId: first.id, to: [{ phoneNumber: "+15559876543" }] });
    expect(again.id).not.toBe(first.id);
    const sent = await control<{ id: string; originalMessageId: string | null; to: { phoneNumber: string }[] }[]>(emu, "GET", "/emulator/sent-faxes");
    expect(sent).toHaveLength(2);
    expect(sent[1]?.originalMessageId).toBe(first.id);
    expect(sent[1]?.to).toEqual([{ phoneNumber: "+15559876543" }]);
  });

  it("pages through 250 messages following navigation.nextPage", async () => {
    const { client, emu } = await setup({ limits: { Light: 1000 } });
    const injected = new Set<string>();
    for (let i = 0; i < 250; i++) injected.add(String((await inboundFax(emu)).id));
    const seen: string[] = [];
    for await (const m of client.listMessages({
      messageType: ["Fax"],
      direction: ["Inbound"],
      dateFrom: new Date(Date.now() - 3_600_000).toISOString(),
      perPage: 100,
    })) {
      seen.push(m.id);
    }
    expect(seen).toHaveLength(250);
    expect(new Set(seen)).toEqual(injected);
    const c = await emuCalls(emu);
    expect(c.byRoute["GET /restapi/v1.0/account/{accountId}/extension/{extensionId}/message-store"]).toBe(3);
  });

  it("ISync after FSync returns the new messages; an invalidated token is MSG-333", async () => {
    const { client, emu } = await setup();
    const old = await inboundFax(emu);
    const full = await client.syncMessages({
      syncType: "FSync",
      messageType: ["Fax"],
      direction: ["Inbound"],
      dateFrom: new Date(Date.now() - 3_600_000).toISOString(),
    });
    expect(full.records.map((r) => r.id)).toEqual([String(old.id)]);
    const n1 = await inboundFax(emu);
    const n2 = await inboundFax(emu);
    const inc = await client.syncMessages({ syncType: "ISync", syncToken: full.syncInfo.syncToken });
    expect(inc.syncInfo.syncType).toBe("ISync");
    const ids = inc.records.map((r) => r.id);
    expect(ids).toEqual(expect.arrayContaining([String(n1.id), String(n2.id)]));
    // RingCentral overlaps sync periods by ~5 s: anything else must be a message that existed in that overlap
    expect(ids.filter((id) => id !== String(n1.id) && id !== String(n2.id))).toEqual(
      ids.includes(String(old.id)) ? [String(old.id)] : [],
    );
    // nothing new → the next ISync has no records outside the overlap, and a fresh token
    expect(inc.syncInfo.syncToken).not.toBe(full.syncInfo.syncToken);

    await control(emu, "POST", "/emulator/sync/invalidate");
    const err = await client.syncMessages({ syncType: "ISync", syncToken: inc.syncInfo.syncToken }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RcApiError);
    expect((err as RcApiError).errorCode).toBe("MSG-333");
    expect((err as RcApiError).status).toBe(400);
    expect((err as RcApiError).retryable).toBe(false);
    expect(isSyncTokenInvalid(err)).toBe(true);
  });

  it("downloads an attachment as a stream, byte-identical, and marks the message read", async () => {
    const { client, emu } = await setup();
    const body = Buffer.concat([pdf("dl"), crypto.randomBytes(500_000)]);
    const created = await control<{ id: string | number }>(emu, "POST", "/emulator/inbound-faxes?from=%2B15557654321", body, "application/pdf");
    const msg = await client.getMessage(String(created.id));
    const att = msg.attachments?.[0];
    expect(att).toBeDefined();
    // Content lives on the media host, a second origin, as on media.ringcentral.com.
    expect(new URL(att?.uri ?? "").origin).toBe(emu.mediaUrl);
    expect(emu.mediaUrl).not.toBe(emu.url);
    const dl = await client.downloadContent(att?.uri ?? "");
    expect(dl.contentType).toContain("application/pdf");
    const chunks: Buffer[] = [];
    for await (const c of dl.body) chunks.push(c as Buffer);
    const got = Buffer.concat(chunks);
    expect(got.equals(body)).toBe(true);
    expect(dl.contentLength).toBe(body.length);
    expect(client.rateLimitState().Medium.remaining).toBeLessThan(client.rateLimitState().Medium.limit);

    await client.setReadStatus(msg.id, "Read");
    expect((await client.getMessage(msg.id)).readStatus).toBe("Read");
  });

  it("refuses to send the token to a foreign host", async () => {
    const { client } = await setup();
    await expect(client.downloadContent("https://evil.example.com/x")).rejects.toThrow(/untrusted host/);
  });

  it("sends the token to the media host only when ringcentral.mediaOrigins lists it", async () => {
    const { client, emu } = await setup({}, { mediaOrigins: [] });
    const created = await control<{ id: string | number }>(emu, "POST", "/emulator/inbound-faxes?from=%2B15557654321", pdf("media"), "application/pdf");
    const uri = (await client.getMessage(String(created.id))).attachments?.[0]?.uri ?? "";
    await control(emu, "POST", "/emulator/calls/reset");
    await expect(client.downloadContent(uri)).rejects.toThrow(/untrusted host 127\.0\.0\.1:\d+/);
    // Refused before any request: the media host saw no call, so no token left the process.
    expect((await emuCalls(emu)).total).toBe(0);
    // The media host serves content only; the API is not reachable there.
    expect((await fetch(`${emu.mediaUrl}/restapi/v1.0/account/~/extension/~/message-store`)).status).toBe(404);
  });

  it("retries idempotent GETs on 5xx and connection resets", async () => {
    const { client, emu } = await setup();
    const msg = await inboundFax(emu);
    await client.login();
    await control(emu, "POST", "/emulator/faults", { path: "/message-store/", count: 1, kind: "status", status: 503 });
    await control(emu, "POST", "/emulator/faults", { path: "/message-store/", count: 1, kind: "reset" });
    const got = await client.getMessage(String(msg.id));
    expect(got.id).toBe(String(msg.id));
    const route = (await emuCalls(emu)).byRouteStatus["GET /restapi/v1.0/account/{accountId}/extension/{extensionId}/message-store/{messageId}"];
    expect(route).toEqual({ "503": 1, reset: 1, "200": 1 });
  });

  it("subscriptions: create (webhook handshake), get, renew, delete; WebSocket token", async () => {
    const { client } = await setup();
    const hook = http.createServer((req, res) => {
      const token = req.headers["validation-token"];
      if (typeof token === "string") res.setHeader("Validation-Token", token);
      res.setHeader("content-type", "application/json");
      req.resume();
      res.end();
    });
    servers.push(hook);
    hook.listen(0, "127.0.0.1");
    await once(hook, "listening");
    const port = (hook.address() as AddressInfo).port;
    const sub = await client.createSubscription({
      eventFilters: ["/restapi/v1.0/account/~/extension/~/message-store?type=Fax&direction=Inbound"],
      expiresIn: 3600,
      deliveryMode: { transportType: "WebHook", address: `http://127.0.0.1:${port}/webhook/ringcentral`, verificationToken: "vtok-123" },
    });
    expect(sub.status).toBe("Active");
    expect((await client.getSubscription(sub.id)).id).toBe(sub.id);
    const renewed = await client.renewSubscription(sub.id);
    expect(renewed.id).toBe(sub.id);
    await client.deleteSubscription(sub.id);
    await expect(client.getSubscription(sub.id)).rejects.toMatchObject({ name: "RcApiError", status: 404 });

    const ws = await client.getWsToken();
    expect(ws.wsAccessToken.length).toBeGreaterThan(0);
    expect(ws.uri).toMatch(/^wss?:\/\//);
    expect(ws.expiresIn).toBeGreaterThan(0);
  });

  it("close() revokes the session", async () => {
    const { client, emu } = await setup();
    await client.login();
    const token = (client as unknown as { token: { accessToken: string } }).token.accessToken;
    await client.close();
    const c = await emuCalls(emu);
    expect(c.byRouteStatus["POST /restapi/oauth/revoke"]).toEqual({ "200": 1 });
    const res = await request(`${emu.url}/restapi/v1.0/dictionary/fax-cover-page`, { headers: { authorization: `Bearer ${token}` } });
    await res.body.dump();
    expect(res.statusCode).toBe(401);
  });
});
