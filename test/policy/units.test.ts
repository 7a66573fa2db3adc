import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import { silentLogger } from "../../src/log.js";
import { AuthLockout, ConnectionRate } from "../../src/policy/abuse.js";
import { createDestinationPolicy } from "../../src/policy/destination.js";
import { fromAddress, parseAuthenticationResults, parseHeaderBlock, readHeaders } from "../../src/policy/headers.js";
import { QuotaTracker } from "../../src/policy/quota.js";
import { isSingleMailbox, normaliseAddress, senderIdentity } from "../../src/policy/identity.js";
import { SenderRules, createSenderMatcher } from "../../src/policy/senders.js";
import type { OutboundStore } from "../../src/store/ports.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";
import { newId } from "../../src/util/ids.js";

const destinations = (over: Record<string, unknown> = {}) => createDestinationPolicy(configSchema.parse({ policy: { destinations: over } }).policy.destinations, "US");

describe("destination policy", () => {
  it.each([
    ["+12025550143", {}, "ok"],
    ["+15551234567", {}, "ok"], // fictional sandbox number: no country, but the US calling code
    ["+19005551234", {}, "+19005551234 is a premium-rate number; faxing it is not allowed"],
    ["+447012345678", { allowCountries: ["GB"] }, "+447012345678 is a personal (follow-me) number; faxing it is not allowed"],
    ["+448712345678", { allowCountries: ["*"] }, "+448712345678 is a premium-rate number; faxing it is not allowed"],
    ["+442071838750", {}, "+442071838750 is an international number (GB); faxing outside US is not allowed"],
    ["+442071838750", { allowCountries: ["*"] }, "ok"],
    ["+16135550123", {}, "+16135550123 is an international number (CA); faxing outside US is not allowed"],
    ["+18762345678", { blockTypes: [] }, "+18762345678 is an international number (JM); faxing outside US is not allowed"],
    ["+80012345678", { blockTypes: [] }, "+80012345678 is an international number (no country); faxing outside US is not allowed"],
    ["+12025550143", { deny: ["*0143"] }, "+12025550143 matches the denied destination pattern *0143; faxing it is not allowed"],
    ["+442071838750", { allow: ["+44207*"] }, "ok"],
    ["+19005551234", { allow: ["+1900*"], deny: ["+19005551234"] }, "+19005551234 matches the denied destination pattern +19005551234; faxing it is not allowed"],
    ["+12025550143", { blockTypes: ["MOBILE"] }, "ok"], // FIXED_LINE_OR_MOBILE is not MOBILE
  ])("%s with %j: %s", (number, cfg, expected) => {
    const v = destinations(cfg)(number);
    expect(v.ok ? "ok" : v.message).toBe(expected);
  });
});

describe("sender matching", () => {
  it("matches whole addresses and whole domains, ignoring case", () => {
    const m = createSenderMatcher(["Alice@Example.com", "@example.org"]);
    expect(m("alice@example.com")).toBe(true);
    expect(m("ALICE@EXAMPLE.COM")).toBe(true);
    expect(m("bob@example.com")).toBe(false);
    expect(m("bob@example.org")).toBe(true);
    expect(m("bob@sub.example.org")).toBe(false);
    expect(m("bob@evilexample.org")).toBe(false);
    expect(m("")).toBe(false);
  });

  it("resolves the rule of a fax domain, falling back to the default", () => {
    const policy = configSchema.parse({ policy: { default: { senders: ["@a.example"] }, domains: [{ domain: "Fax.Secure.", requireAuth: true }] } }).policy;
    const rules = new SenderRules(policy);
    expect(rules.forDomain("fax.secure")).toMatchObject({ requireAuth: true, restricted: false, verifySender: "dmarc" });
    expect(rules.forDomain("fax.local")).toMatchObject({ requireAuth: false, restricted: true });
    expect(rules.userBinding("nobody")).toBeUndefined();
  });

  it("rejects malformed entries in the configuration", () => {
    expect(() => configSchema.parse({ policy: { default: { senders: ["example.com"] } } })).toThrow(/a domain such as .*@example\.org/);
    expect(() => configSchema.parse({ policy: { destinations: { deny: ["1-900"] } } })).toThrow(/\+1900\*/);
  });
});

describe("headers", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "faxbridge-policy-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads only the header section, unfolding continuation lines (CRLF and LF)", async () => {
    for (const eol of ["\r\n", "\n"]) {
      const file = join(dir, `m${eol.length}.eml`);
      await writeFile(file, ["From: Alice", "  <alice@example.com>", "Subject: a", "", "From: not-a-header@example.org", ""].join(eol));
      expect(await readHeaders(file)).toEqual([
        { name: "from", value: "Alice <alice@example.com>" },
        { name: "subject", value: "a" },
      ]);
    }
  });

  it("gives no headers when the header section is absurdly long", async () => {
    const file = join(dir, "long.eml");
    await writeFile(file, `X-Long: ${"a".repeat(300_000)}\r\n\r\nbody`);
    expect(await readHeaders(file)).toEqual([]);
  });

  it("finds exactly one From address", () => {
    expect(fromAddress(parseHeaderBlock('From: "Roe, Jane" <jane@example.com>'))).toEqual({ ok: true, address: "jane@example.com" });
    expect(fromAddress(parseHeaderBlock("Subject: x"))).toEqual({ ok: false, reason: "the mail has no From header" });
    expect(fromAddress(parseHeaderBlock("From: a@example.com\r\nFrom: b@example.com"))).toEqual({ ok: false, reason: "the mail has more than one From header" });
    expect(fromAddress(parseHeaderBlock("From: undisclosed-recipients:;"))).toEqual({ ok: false, reason: "the From header has no address" });
  });

  it("parses Authentication-Results with comments, versions and quoted values", () => {
    const ar = parseAuthenticationResults(
      'MX.Example.NET 1; (comment; with semicolon) dkim=pass (2048-bit key) header.d=example.com header.i="@example.com"; spf=fail smtp.mailfrom=x@example.com; dmarc/1=pass header.from=example.com',
    );
    expect(ar).toEqual({
      authservId: "mx.example.net",
      results: [
        { method: "dkim", result: "pass", props: { "header.d": "example.com", "header.i": "@example.com" } },
        { method: "spf", result: "fail", props: { "smtp.mailfrom": "x@example.com" } },
        { method: "dmarc", result: "pass", props: { "header.from": "example.com" } },
      ],
    });
    expect(parseAuthenticationResults("   ")).toBeUndefined();
    expect(parseAuthenticationResults("mx.example.net; none")?.results).toEqual([]);
  });
});

describe("quotas", () => {
  // The quota ledger is the store's (src/store/ports.ts QuotaStore): SQLite here; the contract suite runs it on PostgreSQL too.
  let dir: string;
  let stores: TestStores;
  let store: OutboundStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "faxbridge-quota-"));
    stores = await openTestStores(dir, { logger: silentLogger(), groupCommit: "inline" });
    store = stores.outbound;
  });
  afterEach(async () => {
    await stores.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("slides the window and says when the quota frees up", async () => {
    let now = 1_000_000;
    const q = new QuotaTracker(stores.quota, "fax", { perSenderPerHour: 3, globalPerHour: 0 }, { now: () => now });
    expect((await q.reserve(["from:a"], 2)).ok).toBe(true);
    now += 600_000;
    expect((await q.reserve(["from:a"], 1)).ok).toBe(true);
    expect(await q.check(["from:a"], 0)).toEqual({ ok: false, scope: "sender", limit: 3, freeAt: 1_000_000 + 3_600_000 });
    // Two more need both units of the first mail to expire; three more, the second mail's too.
    expect(await q.check(["from:a"], 1)).toMatchObject({ freeAt: 1_000_000 + 3_600_000 });
    expect(await q.check(["from:a"], 2)).toMatchObject({ freeAt: 1_600_000 + 3_600_000 });
    expect(await q.check(["from:b"], 0)).toEqual({ ok: true });
    now = 1_000_000 + 3_600_000;
    expect(await q.check(["from:a"], 0)).toEqual({ ok: true });
  });

  it("gives a reservation back when the mail is not recorded", async () => {
    const q = new QuotaTracker(stores.quota, "fax", { perSenderPerHour: 0, globalPerHour: 2 }, { now: () => 5 });
    const r = await q.reserve(["from:a"], 2);
    expect((await q.check(["from:b"], 0)).ok).toBe(false);
    if (r.ok) await r.reservation?.release();
    expect((await q.check(["from:b"], 0)).ok).toBe(true);
  });

  it("keeps the scopes of the ledger apart and the usage across a reopen", async () => {
    const now = 7_000_000;
    const fax = new QuotaTracker(stores.quota, "fax", { perSenderPerHour: 1, globalPerHour: 0 }, { now: () => now });
    const pages = new QuotaTracker(stores.quota, "pages", { perSenderPerHour: 1, globalPerHour: 0 }, { now: () => now });
    expect((await fax.reserve(["from:a"], 1)).ok).toBe(true);
    expect((await pages.reserve(["from:a"], 1)).ok).toBe(true);
    await stores.close();
    stores = await openTestStores(dir, { logger: silentLogger(), groupCommit: "inline" });
    const again = new QuotaTracker(stores.quota, "fax", { perSenderPerHour: 1, globalPerHour: 0 }, { now: () => now });
    expect(await again.reserve(["from:a"], 1)).toMatchObject({ ok: false, scope: "sender", limit: 1 });
  });

  it("keys senders by SMTP user, else verified From, else the normalised envelope sender", () => {
    expect(senderIdentity({ user: "scanner", verifiedFrom: "a@example.com", mailFrom: "x@example.com" })).toEqual({ key: "user:scanner", source: "user" });
    expect(senderIdentity({ verifiedFrom: "Alice@Example.com", mailFrom: "x@example.com" })).toEqual({ key: "alice@example.com", source: "verified-from" });
    expect(senderIdentity({ mailFrom: "X@Example.com" }).key).toBe("x@example.com");
    expect(senderIdentity({ mailFrom: "" }).key).toBe("<>");
    // Tags and quoting do not make a new sender.
    expect(normaliseAddress("q1+x@Example.org")).toBe("q1@example.org");
    expect(normaliseAddress('"q1"@example.org')).toBe("q1@example.org");
    expect(normaliseAddress('"Q1+y"@example.org.')).toBe("q1@example.org");
  });

  it("accepts exactly one valid mailbox as a sender address", () => {
    for (const ok of ["a@example.com", "first.last+tag@sub.example.co.uk", '"john doe"@example.com', "a@[192.0.2.1]", "ü@bücher.example", "a@localhost"]) {
      expect([ok, isSingleMailbox(ok)]).toEqual([ok, true]);
    }
    for (const bad of ["alice,bob@example.org", "a@b@example.org", "@example.org", "a@", "a b@example.org", "a@exa mple.org", ".a@example.org", "a..b@example.org", "a@-x.example", `${"a".repeat(65)}@example.org`, "a@example.org,b@example.org", '"a"b"@example.org']) {
      expect([bad, isSingleMailbox(bad)]).toEqual([bad, false]);
    }
  });

  it("counts the recipients of jobs received within the last hour, once, when the ledger is new", async () => {
    const now = Date.UTC(2030, 0, 1, 12);
    const job = (at: number, from: string, n: number, user?: string) =>
      store.insertReceived({
        id: newId(at),
        mailFrom: from,
        rcptTo: Array.from({ length: n }, (_, i) => ({ address: `1202555010${i}@fax.local`, e164: `+1202555010${i}`, options: {} })),
        mailKey: "msg/nonexistent.eml",
        size: 1,
        receivedAt: at,
        client: user === undefined ? { ip: "127.0.0.1" } : { ip: "127.0.0.1", user },
      });
    await job(now - 3_700_000, "a@example.com", 5); // too old
    await job(now - 1_800_000, "a@example.com", 2);
    await job(now - 60_000, "x@example.com", 1, "scanner");
    const q = new QuotaTracker(stores.quota, "fax", { perSenderPerHour: 3, globalPerHour: 4 }, { now: () => now });
    expect(await q.load(store, (j) => ({ keys: [j.identity], n: j.rcptTo.length }))).toBe(2);
    expect(await q.check(["a@example.com"], 1)).toMatchObject({ ok: false, scope: "sender", freeAt: now + 1_800_000 });
    expect(await q.check(["user:scanner"], 0)).toEqual({ ok: true });
    expect(await q.check(["user:scanner"], 1)).toMatchObject({ ok: false, scope: "global" });
    // Another instance starting later finds the ledger seeded: nothing is counted twice.
    expect(await q.load(store, (j) => ({ keys: [j.identity], n: j.rcptTo.length }))).toBe(0);
    expect(await q.check(["a@example.com"], 0)).toEqual({ ok: true });
  });
});

describe("abuse limits", () => {
  it("admits a limited number of connections per IP per minute", () => {
    let now = 0;
    const rate = new ConnectionRate(2, { now: () => now });
    expect([rate.admit("192.0.2.1"), rate.admit("192.0.2.1"), rate.admit("192.0.2.1"), rate.admit("192.0.2.2")]).toEqual([true, true, false, true]);
    now = 60_001;
    expect(rate.admit("192.0.2.1")).toBe(true);
    expect(new ConnectionRate(0).admit("192.0.2.1")).toBe(true);
  });

  it("locks out after repeated AUTH failures within the window, with doubling delays capped at 8x", () => {
    let now = 0;
    const lock = new AuthLockout({ maxFailures: 5, windowMs: 900_000, lockoutMs: 900_000, baseDelayMs: 100, now: () => now });
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) delays.push(lock.failed("192.0.2.1").delayMs);
    expect(delays).toEqual([100, 200, 400, 800]);
    expect(lock.lockedUntil("192.0.2.1")).toBeUndefined();
    expect(lock.failed("192.0.2.1")).toEqual({ delayMs: 800, locked: true, failures: 5 });
    expect(lock.lockedUntil("192.0.2.1")).toBe(900_000);
    expect(lock.lockedUntil("192.0.2.2")).toBeUndefined();
    lock.succeeded("192.0.2.1"); // cannot lift an active lockout
    expect(lock.lockedUntil("192.0.2.1")).toBe(900_000);
    now = 900_000;
    expect(lock.lockedUntil("192.0.2.1")).toBeUndefined();
  });

  it("forgets failures older than the window and after a success", () => {
    let now = 0;
    const lock = new AuthLockout({ maxFailures: 2, windowMs: 1000, lockoutMs: 5000, baseDelayMs: 0, now: () => now });
    lock.failed("ip");
    now = 1001;
    expect(lock.failed("ip").locked).toBe(false);
    lock.succeeded("ip");
    expect(lock.failed("ip").locked).toBe(false);
  });
});
