import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import { attachmentFilename, composeInboundMail, renderSubject, replyToAddress } from "../../src/inbound/compose.js";
import { classifyDeliveryError, DownloadMismatchError } from "../../src/inbound/deliver.js";
import { matchNumberPattern, routeFax } from "../../src/inbound/route.js";
import { notificationMode } from "../../src/inbound/service.js";
import { isDeliverableFax, toNewFax } from "../../src/inbound/sync.js";
import { concernsFax, messageEventSchema, tokensEqual } from "../../src/inbound/webhook.js";
import { silentLogger } from "../../src/log.js";
import { MailDeliveryError } from "../../src/mail/transport.js";
import { RcApiError, RcNetworkError } from "../../src/rc/errors.js";
import { messageInfoSchema } from "../../src/rc/types.js";
import type { InboundFax, NewInboundFax } from "../../src/store/ports.js";
import { openDatabase, type Db } from "../../src/store/sqlite/db.js";
import { inboundMigration, SqliteInboundStore } from "../../src/store/sqlite/inbound.js";
import { tempDir } from "../helpers/tmp.js";

function newFax(rcId: string, extension = "200000001"): NewInboundFax {
  return {
    extension,
    rcMessageId: rcId,
    message: {
      from: "+15551234567",
      to: ["+16505550100"],
      pages: 3,
      creationTime: "2026-11-22T14:05:09.000Z",
      attachments: [{ id: rcId, uri: `https://media.example/${rcId}`, type: "RenderedDocument", contentType: "application/pdf", size: 10 }],
    },
  };
}

describe("SqliteInboundStore", () => {
  let dir: ReturnType<typeof tempDir>;
  let db: Db;
  let store: SqliteInboundStore;

  beforeEach(() => {
    dir = tempDir();
    db = openDatabase(`${dir.path}/t.db`, [inboundMigration]);
    store = new SqliteInboundStore({ db, logger: silentLogger() });
  });
  afterEach(() => {
    db.close();
    dir.cleanup();
  });

  it("inserts each (extension, message id) once and stores the cursor in the same transaction", async () => {
    const c1 = { syncToken: "t1", syncTime: "2026-11-22T14:00:00Z", lastFullSyncAt: 1 };
    const first = await store.recordSync("~", c1, [newFax("1"), newFax("2")], 1000);
    expect(first.map((f) => f.rcMessageId)).toEqual(["1", "2"]);
    expect(first[0]?.mailMessageId).toBe("<fax-200000001-1@faxbridge>");
    // the 5 s overlap returns "2" again
    const second = await store.recordSync("~", { ...c1, syncToken: "t2" }, [newFax("2"), newFax("3"), newFax("3")], 2000);
    expect(second.map((f) => f.rcMessageId)).toEqual(["3"]);
    expect((await store.getCursor("~"))?.syncToken).toBe("t2");
    // another extension may have the same id
    expect(await store.recordSync("other", c1, [newFax("1", "300")], 3000)).toHaveLength(1);
    expect((await store.countByState()).discovered).toBe(4);
  });

  it("a failed transaction keeps neither the cursor nor the faxes", async () => {
    const bad = { ...newFax("9"), message: undefined } as unknown as NewInboundFax;
    await expect(store.recordSync("~", { syncToken: "tx", syncTime: null, lastFullSyncAt: null }, [newFax("8"), bad], 1)).rejects.toThrow();
    expect(await store.getCursor("~")).toBeUndefined();
    expect(await store.listInbound()).toHaveLength(0);
  });

  it("claims with an expiring lease, defers, delivers, kills and redelivers", async () => {
    await store.recordSync("~", { syncToken: "t", syncTime: null, lastFullSyncAt: null }, [newFax("1"), newFax("2")], 0);
    const claimed = await store.claimDue({ limit: 10, leaseMs: 1000, now: 100 });
    expect(claimed).toHaveLength(2);
    expect(await store.claimDue({ limit: 10, leaseMs: 1000, now: 500 })).toHaveLength(0);
    // a crashed worker's lease expires
    expect(await store.claimDue({ limit: 1, leaseMs: 1000, now: 1200 })).toHaveLength(1);
    const [a, b] = claimed as [InboundFax, InboundFax];
    const deferred = await store.defer(a.id, 5000, "mail 451: try later", 1300);
    expect(deferred.attempts).toBe(1);
    expect(deferred.leaseUntil).toBeNull();
    expect(await store.nextWakeAt()).toBe(1100); // b's lease (taken at 100) has run out: b is claimable again
    const delivered = await store.markDelivered(b.id, { route: -1, mailTo: ["x@y"] }, 1400);
    expect(delivered.state).toBe("delivered");
    expect(delivered.route?.mailTo).toEqual(["x@y"]);
    await expect(store.markDelivered(b.id, { route: -1, mailTo: [] }, 1500)).rejects.toThrow(/delivered, expected discovered/);
    const dead = await store.markDead(a.id, "mail 554", 6000);
    expect(dead.state).toBe("dead");
    expect(dead.attempts).toBe(2);
    const again = await store.redeliver(a.id, 7000);
    expect(again?.state).toBe("discovered");
    expect(again?.attempts).toBe(0);
    expect((await store.claimDue({ limit: 10, leaseMs: 1000, now: 7000 })).map((f) => f.id)).toEqual([a.id]);
    expect(await store.redeliver("nope", 1)).toBeUndefined();
    expect((await store.listInbound({ state: ["delivered"] })).map((f) => f.id)).toEqual([b.id]);
  });

  it("keeps small key/values", async () => {
    expect(await store.getValue("k")).toBeUndefined();
    await store.setValue("k", "v1", 1);
    await store.setValue("k", "v2", 2);
    expect(await store.getValue("k")).toBe("v2");
    await store.deleteValue("k");
    expect(await store.getValue("k")).toBeUndefined();
  });
});

describe("routing", () => {
  const routes = [
    { from: "+1555999*", mailTo: ["a@x"] },
    { to: "+1 650 555 0199", mailTo: ["b@x"] },
    { extension: "~", from: "*4567", mailTo: ["c@x"] },
  ];
  it.each([
    [{ to: ["+16505550100"], extensions: ["1"], from: "+15559990000" }, 0],
    [{ to: ["+16505550199"], extensions: ["1"], from: "+15550000000" }, 1],
    [{ to: ["+16505550100"], extensions: ["1", "~"], from: "+15551234567" }, 2],
    [{ to: ["+16505550100"], extensions: ["1"], from: "+15551234567" }, -1],
    [{ to: [], extensions: ["1"], from: "" }, -1],
  ])("%j → route %i", (input, route) => {
    expect(routeFax(input, routes, "d@x").route).toBe(route);
  });
  it("matches number patterns", () => {
    expect(matchNumberPattern("+1555*", "+1 (555) 000-1111")).toBe(true);
    expect(matchNumberPattern("+1555*", "+1666")).toBe(false);
    expect(matchNumberPattern("*", "")).toBe(true);
    expect(matchNumberPattern("+15551234567", "+15551234567")).toBe(true);
  });
});

describe("composition", () => {
  const fax: InboundFax = {
    id: "0abc",
    extension: "200000001",
    rcMessageId: "42",
    state: "discovered",
    attempts: 0,
    nextAttemptAt: 0,
    leaseUntil: null,
    message: newFax("42").message,
    route: null,
    mailMessageId: "<fax-200000001-42@faxbridge>",
    discoveredAt: 0,
    deliveredAt: null,
    lastError: null,
    updatedAt: 0,
  };
  const settings = { from: "fb <fb@x>", faxDomain: "fax.local", defaultCountry: "US", subjectTemplate: "Fax from {from} ({pages} pages)", delivery: "attachment" as const };

  it("names the file after the time received and the sender", () => {
    expect(attachmentFilename(fax, 0, "application/pdf")).toBe("fax-2026-11-22T1405Z-from-15551234567.pdf");
    expect(attachmentFilename(fax, 1, "image/tiff")).toBe("fax-2026-11-22T1405Z-from-15551234567-2.tif");
    expect(attachmentFilename({ ...fax, message: { ...fax.message, from: "" } }, 0, "application/pdf")).toBe("fax-2026-11-22T1405Z-from-unknown.pdf");
  });

  it("renders the default subject", () => {
    expect(renderSubject(settings.subjectTemplate, fax)).toBe("Fax from +1 555-123-4567 (3 pages)");
    expect(renderSubject("{from}\r\nBcc: evil@x", fax)).toBe("+1 555-123-4567 Bcc: evil@x");
  });

  it("builds Reply-To addresses that fax the sender back", () => {
    expect(replyToAddress("+15551234567", "fax.local", "US")).toBe("15551234567@fax.local");
    // Digits that are no US number read with their country code (issue 12), so no "+" is needed.
    expect(replyToAddress("+442071838750", "fax.local", "US")).toBe("442071838750@fax.local");
    expect(replyToAddress("+442071838750", "fax.local", "GB")).toBe("442071838750@fax.local");
    expect(replyToAddress("", "fax.local", "US")).toBeUndefined();
    expect(replyToAddress("Anonymous", "fax.local", "US")).toBeUndefined();
  });

  it("attaches from the file path and sets the stable headers", () => {
    const mail = composeInboundMail({ fax, mailTo: ["a@x"], files: [{ path: "/tmp/f.pdf", contentType: "application/pdf", size: 10 }] }, settings);
    expect(mail.messageId).toBe("<fax-200000001-42@faxbridge>");
    expect(mail.replyTo).toBe("15551234567@fax.local");
    expect(mail.attachments).toEqual([{ filename: "fax-2026-11-22T1405Z-from-15551234567.pdf", path: "/tmp/f.pdf", contentType: "application/pdf" }]);
    expect(mail.headers).toMatchObject({ "X-Faxbridge-Message-Id": "42", "X-Faxbridge-From": "+15551234567", "X-Faxbridge-To": "+16505550100", "X-Faxbridge-Pages": "3" });
    const link = composeInboundMail({ fax, mailTo: ["a@x"], files: [], storedDir: "/data/inbound/0abc" }, { ...settings, delivery: "link" });
    expect(link.attachments).toEqual([]);
    expect(String(link.text)).toContain("/data/inbound/0abc");
  });
});

describe("failure classification", () => {
  const api = (status: number, errorCode?: string, retryAfterMs?: number): RcApiError =>
    new RcApiError({ status, errorCode, serverMessage: undefined, operation: "readMessageContent", group: "Medium", retryAfterMs });
  it.each([
    [new MailDeliveryError("x", true, 451), true],
    [new MailDeliveryError("x", true), true],
    [new MailDeliveryError("x", false, 554), false],
    [api(404, "CMN-102"), false],
    [api(400, "CMN-101"), false],
    [api(429, "CMN-301", 30_000), true],
    [api(503), true],
    [api(401, "OAU-128"), true],
    [new RcNetworkError({ operation: "x", group: "Medium", code: "ECONNRESET", detail: "d", maybeProcessed: true }), true],
    [new DownloadMismatchError("short"), true],
    [new Error("ENOSPC"), true],
  ])("%s → retry %s", (err, retry) => {
    expect(classifyDeliveryError(err).kind === "transient").toBe(retry);
  });
  it("keeps Retry-After", () => {
    expect(classifyDeliveryError(api(429, "CMN-301", 30_000)).retryAfterMs).toBe(30_000);
  });
});

describe("sync records and events", () => {
  it("only received, alive, inbound faxes become deliveries", () => {
    const base = { id: 1, type: "Fax", direction: "Inbound", messageStatus: "Received", availability: "Alive" };
    const ok = messageInfoSchema.parse(base);
    expect(isDeliverableFax(ok)).toBe(true);
    expect(isDeliverableFax(messageInfoSchema.parse({ ...base, availability: "Deleted" }))).toBe(false);
    expect(isDeliverableFax(messageInfoSchema.parse({ ...base, direction: "Outbound", messageStatus: "Sent" }))).toBe(false);
    expect(isDeliverableFax(messageInfoSchema.parse({ ...base, type: "SMS" }))).toBe(false);
    expect(isDeliverableFax(messageInfoSchema.parse({ id: 5, availability: "Purged" }))).toBe(false);
    expect(toNewFax(ok, "~", 0).extension).toBe("~");
    expect(toNewFax(messageInfoSchema.parse({ ...base, extensionId: 77 }), "~", 0).extension).toBe("77");
  });

  it("parses message events and compares tokens", () => {
    const ev = messageEventSchema.parse({ event: "/restapi/v1.0/account/1/extension/2/message-store", body: { extensionId: 2, changes: [{ type: "SMS", newCount: 1 }] } });
    expect(ev.body?.extensionId).toBe("2");
    expect(concernsFax(ev)).toBe(false);
    expect(concernsFax({ ...ev, body: { changes: [{ type: "Fax" }] } })).toBe(true);
    expect(tokensEqual("abc", "abc")).toBe(true);
    expect(tokensEqual("abc", "abcd")).toBe(false);
  });

  it("chooses the notification transport", () => {
    expect(notificationMode(configSchema.parse({}))).toBe("websocket");
    expect(notificationMode(configSchema.parse({ inbound: { webhookUrl: "https://x/webhook/ringcentral" } }))).toBe("webhook");
    expect(notificationMode(configSchema.parse({ inbound: { notifications: "none", webhookUrl: "https://x" } }))).toBe("none");
    expect(() => notificationMode(configSchema.parse({ inbound: { notifications: "webhook" } }))).toThrow(/webhookUrl/);
  });
});
