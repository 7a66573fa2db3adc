/**
 * Conformance: the emulator driven by RingCentral's own JavaScript clients,
 * `@ringcentral/sdk` (REST, OAuth, fax send as RingCentral's docs show it)
 * and `@ringcentral/subscriptions` (WebSocket subscriptions through
 * @rc-ex/ws). If these clients and the emulator disagree, our tests trust an
 * emulator that is not RingCentral. Offline: everything is on loopback.
 */
import { createHash } from "node:crypto";
import FormData from "form-data";
import { SDK } from "@ringcentral/sdk";
import { Subscriptions } from "@ringcentral/subscriptions";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { pdf } from "./helpers.js";
import { waitFor } from "../helpers/wait.js";

const CREDS = { clientId: "conformance-client", clientSecret: "conformance-secret", jwt: "conformance-jwt" };
const EXT = "/restapi/v1.0/account/~/extension/~";

interface SentFax {
  id: string;
  layout: string;
  to: { phoneNumber: string }[];
  sendTime: string | null;
  originalMessageId: string | null;
  cancelledAt: string | null;
  attachments: { filename: string; contentType: string; sha256: string }[];
  messageStatus: string | null;
  recipients: { phoneNumber: string; messageStatus: string; faxErrorCode?: string }[];
}

interface MessageRecord {
  id: number;
  uri: string;
  messageStatus: string;
  direction: string;
  to: { phoneNumber: string; messageStatus: string; faxErrorCode?: string }[];
  attachments: { uri: string; contentType: string; type: string }[];
}

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("conformance with @ringcentral/sdk and @ringcentral/subscriptions", () => {
  let emu: Emulator;
  let sdk: SDK;

  beforeEach(async () => {
    // The real limits, except Auth: this file logs in, refreshes, revokes and asks for WebSocket tokens.
    emu = await startEmulator({ strictAuth: CREDS, limits: { Auth: 30 }, faxTimings: { queuedMs: 50, pageMs: 20 } });
    sdk = new SDK({ server: emu.url, clientId: CREDS.clientId, clientSecret: CREDS.clientSecret, appName: "faxbridge-conformance", appVersion: "1.0" });
  });
  afterEach(async () => {
    await emu.close();
  });

  const control = async <T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> => {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = Buffer.isBuffer(body) ? body : JSON.stringify(body);
      init.headers = { "Content-Type": contentType };
    }
    const res = await fetch(`${emu.url}${path}`, init);
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  };
  const sentFaxes = (): Promise<SentFax[]> => control<SentFax[]>("GET", "/emulator/sent-faxes");
  const receive = (body: Buffer, from = "+14155550123"): Promise<MessageRecord> =>
    control<MessageRecord>("POST", `/emulator/inbound-faxes?from=${encodeURIComponent(from)}`, body, "application/pdf");

  it("JWT login, refresh and revoke", async () => {
    const platform = sdk.platform();
    await platform.login({ jwt: CREDS.jwt });
    const first = await platform.auth().data();
    expect(first.owner_id).toBe("200000001");
    expect(await platform.loggedIn()).toBe(true);
    await platform.refresh();
    const second = await platform.auth().data();
    expect(second.access_token).not.toBe(first.access_token);
    // The old token is dead, the new one works.
    const old = await fetch(`${emu.url}${EXT}/message-store`, { headers: { Authorization: `Bearer ${first.access_token ?? ""}` } });
    expect(old.status).toBe(401);
    expect((await platform.get(`${EXT}/message-store`)).status).toBe(200);
    await platform.logout();
    const revoked = await fetch(`${emu.url}${EXT}/message-store`, { headers: { Authorization: `Bearer ${second.access_token ?? ""}` } });
    expect(revoked.status).toBe(401);
    // A wrong JWT is refused as RingCentral refuses it, and the SDK surfaces it as an error.
    await expect(sdk.platform().login({ jwt: "not-the-jwt" })).rejects.toThrow();
  });

  it("sends a fax as RingCentral's docs show it (form-data JSON part + attachments), several recipients, sendTime, resend", async () => {
    const platform = sdk.platform();
    await platform.login({ jwt: CREDS.jwt });
    const doc = pdf(2, 300);
    const note = Buffer.from("Second document, plain text.\n");
    const form = new FormData();
    const body = { to: [{ phoneNumber: "+14155550100", name: "Ann" }, { phoneNumber: "+15550000001" }], faxResolution: "High", coverIndex: 0 };
    form.append("json", Buffer.from(JSON.stringify(body)), { filename: "request.json", contentType: "application/json" });
    form.append("attachment", doc, { filename: "contract.pdf", contentType: "application/pdf" });
    form.append("attachment", note, { filename: "note.txt", contentType: "text/plain" });
    const res = await platform.post(`${EXT}/fax`, form);
    const fax = (await res.json()) as MessageRecord;
    expect(fax.messageStatus).toBe("Queued");
    expect(fax.to.map((t) => t.phoneNumber)).toEqual(["+14155550100", "+15550000001"]);

    const [record] = await sentFaxes();
    expect(record).toMatchObject({ layout: "form-data-json", id: String(fax.id) });
    expect(record?.attachments).toEqual([
      expect.objectContaining({ filename: "contract.pdf", contentType: "application/pdf", sha256: sha256(doc) }),
      expect.objectContaining({ filename: "note.txt", contentType: "text/plain", sha256: sha256(note) }),
    ]);

    // One recipient fails (line busy), so the fax aggregates to SendingFailed; the other recipient is Sent.
    // Watched through the unmetered control API, then read once through the SDK.
    const watched = await waitFor(async () => (await sentFaxes()).find((f) => f.id === String(fax.id) && f.messageStatus !== "Queued"), 10_000, "the fax to leave Queued");
    expect(watched.recipients.map((r) => r.messageStatus)).toEqual(["Sent", "SendingFailed"]);
    const done = (await (await platform.get(`${EXT}/message-store/${fax.id}`)).json()) as MessageRecord;
    expect(done.messageStatus).toBe("SendingFailed");
    expect(done.to).toEqual([
      expect.objectContaining({ phoneNumber: "+14155550100", messageStatus: "Sent" }),
      expect.objectContaining({ phoneNumber: "+15550000001", messageStatus: "SendingFailed", faxErrorCode: "LineBusy" }),
    ]);

    // Resend to the failed recipient by originalMessageId (a JSON body, no upload).
    const resent = (await (await platform.post(`${EXT}/fax`, { originalMessageId: String(fax.id), to: [{ phoneNumber: "+14155550101" }] })).json()) as MessageRecord;
    expect(resent.messageStatus).toBe("Queued");
    expect((await sentFaxes()).at(-1)).toMatchObject({ layout: "resend", originalMessageId: String(fax.id), to: [{ phoneNumber: "+14155550101" }] });

    // A fax scheduled for later is cancelled by deleting its message, as RingCentral documents.
    const later = new FormData();
    const sendTime = new Date(Date.now() + 3_600_000).toISOString();
    later.append("json", Buffer.from(JSON.stringify({ to: [{ phoneNumber: "+14155550102" }], sendTime })), { filename: "request.json", contentType: "application/json" });
    later.append("attachment", doc, { filename: "contract.pdf", contentType: "application/pdf" });
    const scheduled = (await (await platform.post(`${EXT}/fax`, later)).json()) as MessageRecord;
    expect((await sentFaxes()).at(-1)?.sendTime).toBe(sendTime);
    await platform.delete(`${EXT}/message-store/${scheduled.id}`);
    expect((await sentFaxes()).find((f) => f.id === String(scheduled.id))?.cancelledAt).toEqual(expect.any(String));
  });

  it("lists the message store page by page, downloads from the media host, and syncs", async () => {
    const platform = sdk.platform();
    await platform.login({ jwt: CREDS.jwt });
    const fsync = (await (await platform.get(`${EXT}/message-sync`, { syncType: "FSync", messageType: ["Fax"], dateFrom: new Date(Date.now() - 3_600_000).toISOString() })).json()) as {
      records: unknown[];
      syncInfo: { syncToken: string; syncType: string };
    };
    expect(fsync.syncInfo.syncType).toBe("FSync");
    const docs = [pdf(1, 100), pdf(2, 100), pdf(3, 100)];
    const received: MessageRecord[] = [];
    for (const d of docs) received.push(await receive(d));

    const seen: number[] = [];
    let page = (await (await platform.get(`${EXT}/message-store`, { messageType: ["Fax"], direction: ["Inbound"], perPage: 2 })).json()) as {
      records: MessageRecord[];
      navigation: { nextPage?: { uri: string } };
      paging: { totalElements: number };
    };
    expect(page.paging.totalElements).toBe(3);
    for (;;) {
      seen.push(...page.records.map((r) => r.id));
      if (page.navigation.nextPage === undefined) break;
      page = (await (await platform.get(page.navigation.nextPage.uri)).json()) as typeof page;
    }
    expect(seen).toEqual(received.map((r) => r.id).reverse());

    const att = received[1]?.attachments[0];
    expect(new URL(att?.uri ?? "").origin).toBe(emu.mediaUrl);
    const content = await platform.get(att?.uri ?? "");
    expect(content.headers.get("content-type")).toBe("application/pdf");
    expect(Buffer.from(await content.arrayBuffer()).equals(docs[1] as Buffer)).toBe(true);

    const isync = (await (await platform.get(`${EXT}/message-sync`, { syncType: "ISync", syncToken: fsync.syncInfo.syncToken })).json()) as { records: MessageRecord[]; syncInfo: { syncType: string } };
    expect(isync.syncInfo.syncType).toBe("ISync");
    expect(isync.records.map((r) => r.id).sort()).toEqual(received.map((r) => r.id).sort());
  });

  it("delivers a received-fax event to a WebSocket subscription made with @ringcentral/subscriptions", async () => {
    const platform = sdk.platform();
    await platform.login({ jwt: CREDS.jwt });
    const subscriptions = new Subscriptions({ sdk });
    const subscription = subscriptions.createSubscription();
    const events: { subscriptionId: string; body: { changes: { type: string; newMessageIds?: number[] }[] } }[] = [];
    subscription.on(subscription.events.notification, (e: (typeof events)[number]) => events.push(e));
    subscription.setEventFilters([`${EXT}/message-store?type=Fax&direction=Inbound`]);
    const ws = await subscription.register();
    try {
      expect(ws.subscriptionInfo?.id).toEqual(expect.any(String));
      const fax = await receive(pdf(1));
      const event = await waitFor(() => events.find((e) => e.body.changes.some((c) => c.newMessageIds?.includes(fax.id))), 5000, "the notification");
      expect(event.subscriptionId).toBe(ws.subscriptionInfo?.id);
      expect(event.body.changes[0]?.type).toBe("Fax");
    } finally {
      // The extension's revoke deletes the subscription over the socket, stops auto-recovery and closes it
      // (its public interface type omits the method the implementation has).
      await (ws.wse as unknown as { revoke(): Promise<void> }).revoke();
    }
    await waitFor(async () => ((await control<unknown[]>("GET", "/emulator/subscriptions")).length === 0 ? true : undefined), 5000, "the subscription to go");
  });

  it("answers 429 as RingCentral does, and the SDK sees it as a rate-limit error", async () => {
    const platform = sdk.platform();
    await platform.login({ jwt: CREDS.jwt });
    const rateLimited: unknown[] = [];
    platform.on(platform.events.rateLimitError, (e: unknown) => rateLimited.push(e));
    await control("POST", "/emulator/faults", { group: "Light", count: 1, kind: "429", retryAfter: 7 });
    const err = (await platform.get(`${EXT}/message-store`).then(
      () => undefined,
      (e: unknown) => e,
    )) as { response?: { status: number; headers: { get(n: string): string | null } }; message: string } | undefined;
    expect(err?.response?.status).toBe(429);
    expect(err?.response?.headers.get("retry-after")).toBe("7");
    expect(err?.response?.headers.get("x-rate-limit-group")).toBe("light");
    expect(err?.message).toBe("Request rate exceeded");
    expect(rateLimited).toHaveLength(1);
    // The fault was one call: the next one goes through.
    expect((await platform.get(`${EXT}/message-store`)).status).toBe(200);
  });
});
