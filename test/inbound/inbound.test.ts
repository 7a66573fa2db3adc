import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import type { SinkMessage } from "../helpers/smtp-sink.js";
import { renderTiff } from "../../src/emulator/render.js";
import { Harness, headerText, sha256, type HarnessOptions, type InjectedFax } from "./harness.js";

const EXT = "200000001"; // the emulator's extension (what "~" resolves to)

let h: Harness | undefined;

async function harness(opts: HarnessOptions = {}): Promise<Harness> {
  h = await new Harness(opts).start();
  return h;
}

afterEach(async () => {
  await h?.close();
  h = undefined;
});

interface CallSnapshot {
  total: number;
  byRoute: Record<string, number>;
}

async function calls(x: Harness): Promise<CallSnapshot> {
  return (await x.control("GET", "/emulator/calls")) as CallSnapshot;
}

function routeCount(c: CallSnapshot, fragment: string): number {
  return Object.entries(c.byRoute)
    .filter(([k]) => k.includes(fragment))
    .reduce((n, [, v]) => n + v, 0);
}

async function oneMail(x: Harness, fax: InjectedFax, timeoutMs = 5000): Promise<SinkMessage> {
  const mails = await waitFor(() => {
    const m = x.mailsFor(fax.id);
    return m.length > 0 && m;
  }, timeoutMs, `mail for fax ${fax.id}`);
  expect(mails).toHaveLength(1);
  return mails[0] as SinkMessage;
}

function expectFaxMail(m: SinkMessage, fax: InjectedFax, pages: number): void {
  const p = m.parsed;
  expect(p.attachments).toHaveLength(1);
  const att = p.attachments[0];
  expect(att?.contentType).toBe("application/pdf");
  expect(sha256(att?.content ?? Buffer.alloc(0))).toBe(sha256(fax.pdf));
  const digits = fax.from.replace(/\D/g, "");
  expect(att?.filename).toMatch(new RegExp(`^fax-\\d{4}-\\d{2}-\\d{2}T\\d{4}Z-from-${digits}\\.pdf$`));
  const stamp = fax.creationTime.slice(0, 16).replace(":", "");
  expect(att?.filename).toBe(`fax-${stamp}Z-from-${digits}.pdf`);
  expect(p.messageId).toBe(`<fax-${EXT}-${fax.id}@faxbridge>`);
  expect(p.replyTo?.value[0]?.address).toBe(`${digits}@fax.example.test`);
  expect(p.from?.value[0]?.address).toBe("faxbridge@example.test");
  expect(headerText(m, "x-faxbridge-message-id")).toBe(fax.id);
  expect(headerText(m, "x-faxbridge-from")).toBe(fax.from);
  expect(headerText(m, "x-faxbridge-to")).toBe(fax.to);
  expect(headerText(m, "x-faxbridge-pages")).toBe(String(pages));
  expect(p.text).toContain(fax.id);
  expect(p.html).toContain(fax.id);
}

describe("inbound: discovery paths", () => {
  it("delivers a fax found through a webhook notification, once, with the identical PDF", async () => {
    const x = await harness({ webhook: true });
    const svc = x.service();
    await svc.start();
    await svc.syncNow(); // the start-up FSync is done; from now on only notifications (the timer is 1 h) can find faxes

    const subs = (await x.control("GET", "/emulator/subscriptions")) as { status: string; transportType: string; eventFilters: string[] }[];
    expect(subs).toHaveLength(1);
    expect(subs[0]?.status).toBe("Active");
    expect(subs[0]?.transportType).toBe("WebHook");
    // RingCentral answers with `~` resolved to the account and extension ids.
    expect(subs[0]?.eventFilters).toEqual(["/restapi/v1.0/account/100000001/extension/200000001/message-store?type=Fax&direction=Inbound"]);
    expect(x.events("webhook.validated")).toHaveLength(1);
    expect(x.events("subscription.created")).toHaveLength(1);

    const fax = await x.inject({ pages: 3 });
    const mail = await oneMail(x, fax);
    expectFaxMail(mail, fax, 3);
    expect(mail.parsed.subject).toBe("Fax from +1 555-123-4567 (3 pages)");
    expect(mail.to).toEqual(["fax-inbox@example.test"]);
    expect(x.events("webhook.received").length).toBeGreaterThanOrEqual(1);
    expect(x.events("inbound.discovered").map((l) => l["via"])).toEqual(["ISync"]);

    // More syncs (overlap window) do not deliver it again.
    await svc.syncNow();
    await svc.syncNow();
    expect(x.mailsFor(fax.id)).toHaveLength(1);
    const stored = await x.store.findByRcId(EXT, fax.id);
    expect(stored?.state).toBe("delivered");
    // The downloaded file is gone after delivery.
    await waitFor(() => !existsSync(join(x.dir.path, "inbound", stored?.id ?? "x")), 2000, "files removed");

    await svc.stop();
    expect(x.events("subscription.deleted")).toHaveLength(1);
    expect(((await x.control("GET", "/emulator/subscriptions")) as unknown[]).length).toBe(0);
  });

  it("delivers through WebSocket notifications", async () => {
    const x = await harness({ inbound: { notifications: "websocket" } });
    const svc = x.service();
    await svc.start();
    expect(x.events("ws.subscribed")).toHaveLength(1);
    await svc.syncNow();
    const fax = await x.inject({ from: "+442071838750", pages: 2 });
    const mail = await oneMail(x, fax);
    expect(mail.parsed.subject).toBe("Fax from +44 20 7183 8750 (2 pages)");
    // A non-US sender keeps its + so the reply is not read as a US number.
    // Digits that are no US number are read with their country code (issue 12): no "+" needed.
    expect(mail.parsed.replyTo?.value[0]?.address).toBe("442071838750@fax.example.test");
    expect(sha256(mail.parsed.attachments[0]?.content ?? Buffer.alloc(0))).toBe(sha256(fax.pdf));
    expect(x.events("ws.notification").length).toBeGreaterThanOrEqual(1);
    expect(x.events("inbound.discovered").map((l) => l["via"])).toEqual(["ISync"]);
  });

  it("reconnects the WebSocket after RingCentral drops it and catches up through a fresh sync", async () => {
    // Re-login after the restart costs Auth calls (wstoken, refresh, login, wstoken): more than the default 5 a minute.
    const x = await harness({
      inbound: { notifications: "websocket" },
      emulator: { limits: { Auth: 50 } },
      config: { ringcentral: { rateLimits: { auth: 50 } } },
    });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    await x.restartEmulator();
    await waitFor(() => x.events("ws.subscribed").length >= 2, 5000, "re-subscription");
    expect(x.events("ws.closed").length).toBeGreaterThanOrEqual(1);
    const fax = await x.inject();
    expectFaxMail(await oneMail(x, fax), fax, 1);
    // the old sync token means nothing to the new server: MSG-333, then a full sync
    expect(x.events("inbound.sync_reset").length).toBeGreaterThanOrEqual(1);
  });

  it("delivers with the periodic sync alone (notifications none), a single fax in a few RingCentral calls", async () => {
    const x = await harness({ inbound: { notifications: "none" } });
    const svc = x.service({ syncIntervalMs: 200 });
    await svc.start();
    await svc.syncNow();
    await x.control("POST", "/emulator/calls/reset");
    const faxes = [await x.inject(), await x.inject({ pages: 1 })];
    for (const f of faxes) expectFaxMail(await oneMail(x, f), f, 1);
    expect((await oneMail(x, faxes[1] as InjectedFax)).parsed.subject).toBe("Fax from +1 555-123-4567 (1 page)");
    const c = await calls(x);
    // one download per fax, no per-fax getMessage; the rest are the timer's ISyncs
    expect(routeCount(c, "/content/")).toBe(2);
    expect(Object.keys(c.byRoute).filter((k) => /message-store\/\{[^}]+\}$/.test(k))).toEqual([]);
  });
});

describe("inbound: document formats", () => {
  it("mails a fax RingCentral stored as TIFF as a .tif attachment, byte-identical, with the TIFF's page count", async () => {
    const x = await harness({ inbound: { notifications: "none" } });
    const svc = x.service();
    await svc.start();
    const tiff = renderTiff(3);
    const fax = await x.inject({ pdf: tiff, contentType: "image/tiff" });
    await svc.syncNow();
    const m = await oneMail(x, fax);
    const att = m.parsed.attachments[0];
    expect(m.parsed.attachments).toHaveLength(1);
    expect(att?.contentType).toBe("image/tiff");
    expect(att?.filename).toMatch(/^fax-\d{4}-\d{2}-\d{2}T\d{4}Z-from-15551234567\.tif$/);
    expect(sha256(att?.content ?? Buffer.alloc(0))).toBe(sha256(tiff));
    expect(headerText(m, "x-faxbridge-pages")).toBe("3");
    expect(m.parsed.subject).toBe("Fax from +1 555-123-4567 (3 pages)");
  });
});

describe("inbound: durability", () => {
  it("keeps a fax while the mail server is down and delivers it once when it is back", async () => {
    const x = await harness();
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    await x.sink.down();
    const fax = await x.inject();
    await svc.syncNow();
    await waitFor(() => x.events("inbound.deferred").length >= 2, 5000, "two deferrals");
    expect(x.sink.messages).toHaveLength(0);
    await x.sink.up();
    await oneMail(x, fax);
    const stored = await x.store.findByRcId(EXT, fax.id);
    expect(stored?.state).toBe("delivered");
    expect(stored?.attempts).toBeGreaterThanOrEqual(2);
    // the document was downloaded once and reused across attempts
    expect(routeCount(await calls(x), "/content/")).toBe(1);
    await svc.syncNow();
    expect(x.mailsFor(fax.id)).toHaveLength(1);
  });

  it("retries a download RingCentral keeps failing, then delivers once", async () => {
    const x = await harness();
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    // more resets than the client retries internally: the fax is deferred, then fetched on a later attempt
    await x.control("POST", "/emulator/faults", { kind: "reset", path: "/content/", count: 4 });
    const fax = await x.inject();
    await svc.syncNow();
    expectFaxMail(await oneMail(x, fax), fax, 1);
    expect(x.events("inbound.deferred").length).toBeGreaterThanOrEqual(1);
    expect(x.events("inbound.deferred")[0]?.["reason"]).toBe("ringcentral network");
  });

  it("delivers 25 faxes that arrived while stopped, after a restart on the same database, none twice", async () => {
    const x = await harness();
    const first = x.service();
    await first.start();
    await first.syncNow();
    const before = await x.inject();
    await first.syncNow();
    await oneMail(x, before);
    await first.stop();

    const faxes: InjectedFax[] = [];
    for (let i = 0; i < 25; i++) faxes.push(await x.inject({ from: `+1555000${String(1000 + i)}` }));

    // a new process: database reopened, new client, new service
    await x.db.close();
    await x.openDb();
    await x.client.close();
    x.client = x.newClient();
    const second = x.service();
    await second.start();
    await waitFor(() => x.sink.messages.length >= 26, 15_000, "26 mails");
    await second.syncNow();
    await second.syncNow();
    for (const f of [before, ...faxes]) {
      const m = x.mailsFor(f.id);
      expect(m).toHaveLength(1);
      expect(sha256(m[0]?.parsed.attachments[0]?.content ?? Buffer.alloc(0))).toBe(sha256(f.pdf));
    }
    expect(x.sink.messages).toHaveLength(26);
    expect((await x.store.countByState()).delivered).toBe(26);
  });

  it("recovers from an invalidated sync token (MSG-333) without duplicates", async () => {
    const x = await harness();
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    const a = await x.inject();
    await svc.syncNow();
    await oneMail(x, a);
    await x.control("POST", "/emulator/sync/invalidate");
    const b = await x.inject();
    await svc.syncNow();
    await oneMail(x, b);
    expect(x.events("inbound.sync_reset")).toHaveLength(1);
    await svc.syncNow();
    expect(x.mailsFor(a.id)).toHaveLength(1);
    expect(x.sink.messages).toHaveLength(2);
  });

  it("honours inbound.lookbackHours after a sync-token reset: faxes older than the lookback are not mailed (issue 12)", async () => {
    const x = await harness({ inbound: { lookbackHours: 1 } });
    const first = x.service();
    await first.start();
    await first.syncNow();
    await first.stop();
    const old = await x.inject();
    await x.control("POST", "/emulator/sync/invalidate");
    // The daemon comes back three hours later: the fax is now older than the one-hour lookback.
    const later = x.service({}, x.config, () => Date.now() + 3 * 3_600_000);
    await later.start();
    await later.syncNow();
    const reset = x.events("inbound.sync_reset");
    expect(reset).toHaveLength(1);
    expect(Date.parse(String(reset[0]?.["dateFrom"]))).toBeGreaterThan(Date.parse(old.creationTime));
    await later.syncNow();
    expect(x.mailsFor(old.id)).toHaveLength(0);
    expect(x.sink.messages).toHaveLength(0);
  });

  it("still delivers when webhook notifications are lost (the periodic sync is the safety net)", async () => {
    const x = await harness({ webhook: true });
    const svc = x.service({ syncIntervalMs: 300, subscriptionCheckMs: 3_600_000 });
    await svc.start();
    await svc.syncNow();
    const [sub] = (await x.control("GET", "/emulator/subscriptions")) as { id: string }[];
    await x.control("POST", `/emulator/subscriptions/${sub?.id ?? ""}/blacklist`); // RingCentral stops notifying
    const fax = await x.inject();
    expectFaxMail(await oneMail(x, fax), fax, 1);
    expect(x.events("webhook.received")).toHaveLength(0);
  });

  it("renews the webhook subscription well before it expires", async () => {
    const x = await harness({ webhook: true });
    const svc = x.service({ subscriptionExpiresInSeconds: 4, subscriptionCheckMs: 200 });
    await svc.start();
    const [before] = (await x.control("GET", "/emulator/subscriptions")) as { id: string; expirationTime: string }[];
    await waitFor(() => x.events("subscription.renewed").length > 0, 5000, "renewal");
    const [after] = (await x.control("GET", "/emulator/subscriptions")) as { id: string; expirationTime: string }[];
    expect(after?.id).toBe(before?.id);
    expect(Date.parse(after?.expirationTime ?? "")).toBeGreaterThan(Date.parse(before?.expirationTime ?? ""));
    expect(x.events("subscription.recreated")).toHaveLength(0);
  });

  it("re-creates a blacklisted webhook subscription and keeps receiving", async () => {
    const x = await harness({ webhook: true });
    const svc = x.service({ subscriptionCheckMs: 150 });
    await svc.start();
    await svc.syncNow();
    const [sub] = (await x.control("GET", "/emulator/subscriptions")) as { id: string }[];
    expect(sub).toBeDefined();
    await x.control("POST", `/emulator/subscriptions/${sub?.id ?? ""}/blacklist`);
    await waitFor(() => x.events("subscription.recreated").length > 0, 5000, "re-creation");
    const subs = (await x.control("GET", "/emulator/subscriptions")) as { id: string; status: string }[];
    const active = subs.filter((s) => s.status === "Active");
    expect(active).toHaveLength(1);
    expect(active[0]?.id).not.toBe(sub?.id);
    const fax = await x.inject();
    await oneMail(x, fax);
    expect(x.events("inbound.discovered").map((l) => l["via"])).toEqual(["ISync"]);
  });
});

describe("inbound: webhook endpoint", () => {
  it("answers the Validation-Token handshake and refuses deliveries without the right verification token", async () => {
    const x = await harness({ webhook: true });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    const url = x.webhookUrl;

    const hs = await fetch(url, { method: "POST", headers: { "Validation-Token": "abc123" } });
    expect(hs.status).toBe(200);
    expect(hs.headers.get("validation-token")).toBe("abc123");
    expect(await hs.text()).toBe("{}");

    await x.control("POST", "/emulator/calls/reset");
    const event = JSON.stringify({
      uuid: "u-1",
      event: "/restapi/v1.0/account/100000001/extension/200000001/message-store",
      timestamp: new Date().toISOString(),
      subscriptionId: "s",
      body: { extensionId: 200000001, changes: [{ type: "Fax", newCount: 1, newMessageIds: [1] }] },
    });
    const post = (headers: Record<string, string>, body = event): Promise<Response> =>
      fetch(url, { method: "POST", headers: { "content-type": "application/json; charset=UTF-8", ...headers }, body });

    expect((await post({})).status).toBe(401);
    expect((await post({ "Verification-Token": "wrong" })).status).toBe(403);
    expect((await post({ "Validation-Token": "wrong" })).status).toBe(403);
    expect((await post({ "Verification-Token": "s3cret-verification-token" }, "x".repeat(70_000))).status).toBe(413);
    expect((await post({ "Verification-Token": "s3cret-verification-token" }, "{not json")).status).toBe(400);
    // nothing was synced for the refused deliveries
    expect(routeCount(await calls(x), "message-sync")).toBe(0);
    expect(x.events("webhook.refused").length).toBeGreaterThanOrEqual(5);

    // the current guide's header name works too
    expect((await post({ "Validation-Token": "s3cret-verification-token" })).status).toBe(200);
    await waitFor(async () => routeCount(await calls(x), "message-sync") >= 1, 3000, "a sync");
  });
});

describe("inbound: routing and modes", () => {
  it("routes by sender pattern and receiving number to several mailboxes, else to the default", async () => {
    const x = await harness({
      inbound: {
        routes: [
          { from: "+1555999*", mailTo: ["a@example.test", "b@example.test"] },
          { to: "+16505550199", mailTo: ["c@example.test"] },
          { extension: "999", mailTo: ["never@example.test"] },
        ],
      },
    });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    const f1 = await x.inject({ from: "+15559990000" });
    const f2 = await x.inject({ from: "+15551112222", to: "+16505550199" });
    const f3 = await x.inject({ from: "+15551112222" });
    await svc.syncNow();
    expect((await oneMail(x, f1)).to.sort()).toEqual(["a@example.test", "b@example.test"]);
    expect((await oneMail(x, f2)).to).toEqual(["c@example.test"]);
    expect((await oneMail(x, f3)).to).toEqual(["fax-inbox@example.test"]);
    expect(x.events("inbound.unrouted")).toHaveLength(1);
  });

  it("link mode mails a notice without the PDF and keeps the document", async () => {
    const x = await harness({ inbound: { delivery: "link" } });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    const fax = await x.inject({ pages: 2 });
    await svc.syncNow();
    const m = await oneMail(x, fax);
    expect(m.parsed.attachments).toHaveLength(0);
    expect(m.parsed.text).toContain(`message ${fax.id}`);
    expect(m.parsed.text).toContain("faxbridge inbound");
    const stored = await x.store.findByRcId(EXT, fax.id);
    const dir = join(x.dir.path, "inbound", stored?.id ?? "x");
    expect(m.parsed.text).toContain(dir);
    expect(readdirSync(dir)).toHaveLength(1);
  });

  it("a permanent mail rejection makes the fax dead (alert), and redeliver brings it back", async () => {
    const x = await harness();
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    x.sink.failNext(1, 554);
    const fax = await x.inject();
    await svc.syncNow();
    await waitFor(() => x.events("inbound.dead").length === 1, 5000, "dead letter");
    const dead = x.events("inbound.dead")[0];
    expect(dead?.level).toBe("error");
    const stored = await x.store.findByRcId(EXT, fax.id);
    expect(stored?.state).toBe("dead");
    expect(stored?.lastError).toContain("554");
    expect(x.sink.messages).toHaveLength(0);
    expect((await x.metrics.inboundFailed.get()).values[0]?.value).toBe(1);
    expect((await x.store.listInbound({ state: "dead" })).map((f) => f.rcMessageId)).toEqual([fax.id]);

    await x.store.redeliver(stored?.id ?? "", Date.now());
    await svc.stop();
    const again = x.service();
    await again.start();
    await oneMail(x, fax);
  });

  it("clears the stale error text once a later delivery succeeds (inbound list shows no old error; issue 12)", async () => {
    const x = await harness({ inbound: { retrySchedule: "50ms,50ms,50ms" } });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    x.sink.failNext(1, 451);
    const fax = await x.inject();
    await svc.syncNow();
    await oneMail(x, fax);
    expect(x.events("inbound.deferred")).toHaveLength(1);
    const row = await waitFor(async () => {
      const r = await x.store.findByRcId(EXT, fax.id);
      return r?.state === "delivered" ? r : undefined;
    }, 5000, "delivered row");
    expect(row.lastError).toBeNull();
  });

  it("gives up after the retry schedule on temporary failures", async () => {
    const x = await harness({ inbound: { retrySchedule: "50ms,50ms" } });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    x.sink.failNext(10, 451);
    const fax = await x.inject();
    await svc.syncNow();
    await waitFor(() => x.events("inbound.dead").length === 1, 5000, "dead letter");
    expect(x.events("inbound.deferred")).toHaveLength(2);
    expect((await x.store.findByRcId(EXT, fax.id))?.attempts).toBe(3);
  });

  it("marks delivered faxes as read when configured", async () => {
    const x = await harness({ inbound: { markAsRead: true } });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    const fax = await x.inject();
    await svc.syncNow();
    await oneMail(x, fax);
    await waitFor(async () => (await x.client.getMessage(fax.id)).readStatus === "Read", 3000, "read status");
  });

  it("shows the received time in mail.timeZone, to the second (issue 12)", async () => {
    const x = await harness({ config: { mail: { timeZone: "Asia/Tokyo" } }, inbound: { subjectTemplate: "Fax at {received}" } });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    const fax = await x.inject();
    await svc.syncNow();
    const m = await oneMail(x, fax);
    const d = new Date(Date.parse(fax.creationTime) + 9 * 3_600_000);
    const local = `${d.toISOString().slice(0, 19).replace("T", " ")} GMT+9`;
    expect(m.parsed.subject).toBe(`Fax at ${local}`);
    expect(m.parsed.text).toContain(local);
  });

  it("a custom subject template fills every field", async () => {
    const x = await harness({ inbound: { subjectTemplate: "[fax] {from} → {to}, {pages}p at {received}" } });
    const svc = x.service();
    await svc.start();
    await svc.syncNow();
    const fax = await x.inject({ pages: 2 });
    await svc.syncNow();
    const m = await oneMail(x, fax);
    expect(m.parsed.subject).toMatch(/^\[fax\] \+1 555-123-4567 → \+1 650-555-0100, 2p at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
  });

});
