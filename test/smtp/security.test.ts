import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DNSResolver } from "mailauth";
import nodemailer from "nodemailer";
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/smtp/password.js";
import { keyPair, signed as dkimSigned, tableResolver } from "../helpers/dkim.js";
import { capturingLogger, type LogLine } from "../helpers/log.js";
import { failure, type SmtpFailure } from "../helpers/smtp-failure.js";
import { refusalCount, startIntake, type Intake } from "../helpers/smtp-intake.js";

/**
 * The security policy end to end: a real SMTP server (createSmtpServer with
 * createSmtpPolicy) on loopback, driven by nodemailer, with exact reply lines.
 * DNS for SPF/DKIM/DMARC answers from a table (no network here).
 */

const NOW = Date.UTC(2030, 0, 15, 11, 0, 0);

const KEY = keyPair();
const ATTACKER_KEY = keyPair();

/** example.com: DKIM key s1, DMARC p=reject, SPF allowing only 192.0.2.0/24. nodmarc.example: no DMARC, SPF allows loopback. */
const DNS: Record<string, string[][]> = {
  "TXT s1._domainkey.example.com": [[KEY.dns]],
  "TXT _dmarc.example.com": [["v=DMARC1; p=reject"]],
  "TXT example.com": [["v=spf1 ip4:192.0.2.0/24 -all"]],
  "TXT s1._domainkey.nodmarc.example": [[KEY.dns]],
  "TXT nodmarc.example": [["v=spf1 ip4:127.0.0.1 -all"]],
};

const fromTable = tableResolver(DNS);
const resolver: DNSResolver = async (name, rrtype) => {
  if (name.toLowerCase().endsWith("slow.example")) return new Promise<never>(() => undefined);
  if (name.toLowerCase().endsWith("broken.example")) throw Object.assign(new Error(`queryTxt ESERVFAIL ${name}`), { code: "ESERVFAIL" });
  return fromTable(name, rrtype);
};

function message(from: string, extraHeaders = "", body = "Please fax this.\r\n"): string {
  return `${extraHeaders}From: ${from}\r\nTo: fax\r\nSubject: contract\r\nDate: Tue, 15 Jan 2030 11:00:00 +0000\r\nMessage-ID: <m-${Math.random().toString(36).slice(2)}@example.com>\r\n\r\n${body}`;
}

function signed(raw: string, domain: string, privateKey = KEY.privateKey): Promise<string> {
  return dkimSigned(raw, domain, privateKey);
}

interface StartOptions {
  smtp?: Record<string, unknown>;
  fax?: Record<string, unknown>;
  policy?: Record<string, unknown>;
  now?: () => number;
  /** Reuse the data directory of an earlier harness (restart). */
  dir?: string;
}

interface Harness extends Intake {
  logs: LogLine[];
}

describe("SMTP security policy", () => {
  const harnesses: Harness[] = [];
  const clients: { close(): void }[] = [];
  const dirs: string[] = [];

  async function start(opts: StartOptions = {}): Promise<Harness> {
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "faxbridge-security-")));
    if (opts.dir === undefined) dirs.push(dir);
    const logs: LogLine[] = [];
    const intake = await startIntake({ ...opts, dir, logger: capturingLogger("info", { lines: logs }), resolver });
    const h = { ...intake, logs };
    harnesses.push(h);
    return h;
  }

  async function stop(h: Harness): Promise<void> {
    harnesses.splice(harnesses.indexOf(h), 1);
    await h.close();
  }

  function transport(port: number, auth?: { user: string; pass: string }) {
    const t = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true, ...(auth && { auth }) });
    clients.push(t);
    return t;
  }

  function sendRaw(port: number, from: string, to: string[], raw: string, auth?: { user: string; pass: string }) {
    return transport(port, auth).sendMail({ envelope: { from, to }, raw });
  }

  const refusals = (h: Harness, reason: string): Promise<number> => refusalCount(h.metrics, reason);

  async function nothingQueued(h: Harness): Promise<void> {
    expect(await h.store.list()).toEqual([]);
    expect(await readdir(h.spool.msgDir)).toEqual([]);
    expect(await readdir(h.spool.tmpDir)).toEqual([]);
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const h of [...harnesses]) await stop(h);
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  describe("relaying", () => {
    it("refuses a domain that is not a fax domain and unauthenticated clients outside allowUnauthenticatedFrom", async () => {
      const h = await start({ smtp: { allowUnauthenticatedFrom: [] } });
      const err = await failure(sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com")));
      expect(err.response).toBe("530 5.7.0 Authentication required");
      const open = await start();
      const relay = await failure(sendRaw(open.port, "a@example.com", ["bob@example.org"], message("a@example.com")));
      expect(relay.response).toBe("550 5.1.1 relay not permitted: example.org is not a fax domain");
    });
  });

  describe("sender rules", () => {
    const allowlist = { default: { senders: ["@example.com", "bob@nodmarc.example"], verifySender: "dmarc" } };

    it("refuses an envelope sender that is not on the list at RCPT, logged and counted", async () => {
      const h = await start({ policy: allowlist });
      const err = await failure(sendRaw(h.port, "mallory@evil.example", ["12025550143@fax.local"], message("mallory@evil.example")));
      expect(err.response).toBe("550 5.1.1 sender mallory@evil.example is not allowed to fax via fax.local");
      expect(await refusals(h, "sender_not_allowed")).toBe(1);
      expect(h.logs.find((l) => l.event === "policy.refused")).toMatchObject({ reason: "sender_not_allowed" });
    });

    it("refuses a forged From (no DKIM, SPF fails) after DATA and records nothing", async () => {
      const h = await start({ policy: allowlist });
      const err = await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], message("Alice <alice@example.com>")));
      expect(err.response).toBe("550 5.1.1 DMARC verification failed for example.com: no aligned pass (dkim=none (no signature); spf=fail)");
      expect(await refusals(h, "sender_unverified")).toBe(1);
      await nothingQueued(h);
    });

    it("refuses a DKIM-signed mail whose body was changed on the way", async () => {
      const h = await start({ policy: allowlist });
      const raw = (await signed(message("alice@example.com"), "example.com")).replace("Please fax this.", "Please fax THAT.");
      const err = await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], raw));
      expect(err.response).toBe(
        "550 5.1.1 DMARC verification failed for example.com: no aligned pass (dkim=neutral (d=example.com: body hash did not verify); spf=fail)",
      );
      await nothingQueued(h);
    });

    it("refuses a mail signed with someone else's key for the From domain", async () => {
      const h = await start({ policy: allowlist });
      const raw = await signed(message("alice@example.com"), "example.com", ATTACKER_KEY.privateKey);
      const err = await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], raw));
      expect(err.response).toMatch(/^550 5\.1\.1 DMARC verification failed for example\.com: no aligned pass \(dkim=fail \(d=example\.com: .*\); spf=fail\)$/);
      await nothingQueued(h);
    });

    it("accepts a mail that passes DMARC through its DKIM signature", async () => {
      const h = await start({ policy: allowlist });
      const raw = await signed(message("Alice <alice@example.com>"), "example.com");
      const info = await sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], raw);
      expect(info.response).toMatch(/^250 2\.6\.0 Queued as \S+$/);
      expect(await h.store.list()).toHaveLength(1);
    });

    it("refuses a From address off the list even when the envelope sender is on it", async () => {
      const h = await start({ policy: allowlist });
      const raw = await signed(message("mallory@evil.example"), "example.com");
      const err = await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], raw));
      expect(err.response).toBe("550 5.1.1 sender mallory@evil.example is not allowed to fax via fax.local");
      await nothingQueued(h);
    });

    it("refuses a mail without exactly one From address", async () => {
      const h = await start({ policy: allowlist });
      const err = await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], message("alice@example.com, bob@example.com")));
      expect(err.response).toBe("550 5.7.1 the From header has more than one address; the sender rules need exactly one From address");
    });

    it("spf-dkim: needs both an SPF pass for the envelope sender and a DKIM signature of the From domain", async () => {
      const h = await start({ policy: { default: { senders: ["@nodmarc.example"], verifySender: "spf-dkim" } } });
      const good = await signed(message("bob@nodmarc.example"), "nodmarc.example");
      expect((await sendRaw(h.port, "bob@nodmarc.example", ["12025550143@fax.local"], good)).response).toMatch(/^250 /);
      const unsigned = await failure(sendRaw(h.port, "bob@nodmarc.example", ["12025550143@fax.local"], message("bob@nodmarc.example")));
      expect(unsigned.response).toBe("550 5.1.1 SPF/DKIM verification failed for nodmarc.example: no valid DKIM signature of nodmarc.example (dkim=none (no signature))");
      const dmarcMode = await start({ policy: { default: { senders: ["@nodmarc.example"], verifySender: "dmarc" } } });
      const noRecord = await failure(sendRaw(dmarcMode.port, "bob@nodmarc.example", ["12025550143@fax.local"], good));
      expect(noRecord.response).toBe("550 5.1.1 DMARC verification failed for nodmarc.example: nodmarc.example publishes no DMARC record");
    });

    it("answers 451 (try again) when DNS fails or is too slow, and records nothing", async () => {
      const h = await start({ policy: { default: { senders: ["@slow.example", "@broken.example"] }, verifyTimeoutMs: 100 } });
      const slow = await failure(sendRaw(h.port, "a@slow.example", ["12025550143@fax.local"], message("a@slow.example")));
      expect(slow.response).toBe("451 4.3.0 could not verify slow.example in time, try again later");
      const broken = await failure(sendRaw(h.port, "a@broken.example", ["12025550143@fax.local"], message("a@broken.example")));
      expect(broken.response).toBe("451 4.3.0 DMARC verification of broken.example hit a temporary DNS error, try again later");
      expect(await refusals(h, "verify_unavailable")).toBe(2);
      await nothingQueued(h);
    });

    it("verifySender none trusts the list alone (documented as forgeable)", async () => {
      const h = await start({ policy: { default: { senders: ["@example.com"], verifySender: "none" } } });
      expect((await sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], message("alice@example.com"))).response).toMatch(/^250 /);
    });

    it("applies per-domain rules: requireAuth on one fax domain, open on another", async () => {
      const h = await start({
        fax: { domains: ["fax.local", "fax.secure"] },
        policy: { domains: [{ domain: "fax.secure", requireAuth: true }] },
      });
      const err = await failure(sendRaw(h.port, "a@example.com", ["12025550143@fax.secure"], message("a@example.com")));
      expect(err.response).toBe("530 5.7.0 authentication required to fax via fax.secure");
      expect((await sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"))).response).toMatch(/^250 /);
    });

    it("refuses a policy.domains entry that is not a fax domain at start", async () => {
      await expect(start({ policy: { domains: [{ domain: "fax.typo" }] } })).rejects.toThrow(/policy\.domains \(config\): fax\.typo is not one of fax\.domains/);
    });
  });

  describe("Authentication-Results from a relay", () => {
    const vouched = message("alice@example.com", "Authentication-Results: mx.example.net; dkim=pass header.d=example.com; dmarc=pass (p=reject) header.from=example.com\r\n");
    const policy = (relays: string[]) => ({
      default: { senders: ["@example.com"], verifySender: "authentication-results" },
      trustedRelays: relays,
      authservIds: ["mx.example.net"],
    });

    it("is trusted from a trusted relay IP with the configured authserv-id", async () => {
      const h = await start({ policy: policy(["127.0.0.1/32"]) });
      expect((await sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], vouched)).response).toMatch(/^250 /);
    });

    it("is ignored from any other client, which gets our own DMARC check", async () => {
      const h = await start({ policy: policy(["10.0.0.0/8"]) });
      const err = await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], vouched));
      expect(err.response).toBe("550 5.1.1 DMARC verification failed for example.com: no aligned pass (dkim=none (no signature); spf=fail)");
    });

    it("needs the configured authserv-id and a pass for the From domain", async () => {
      const h = await start({ policy: policy(["127.0.0.1/32"]) });
      const otherId = vouched.replace("mx.example.net", "mx.evil.example");
      expect((await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], otherId))).response).toBe(
        "550 5.1.1 no Authentication-Results header from a trusted relay vouches for example.com",
      );
      const failed = message("alice@example.com", "Authentication-Results: mx.example.net; spf=fail smtp.mailfrom=example.com; dmarc=fail header.from=example.com\r\n");
      expect((await failure(sendRaw(h.port, "alice@example.com", ["12025550143@fax.local"], failed))).response).toBe(
        "550 5.1.1 sender verification failed for example.com: mx.example.net reports spf=fail dmarc=fail",
      );
    });
  });

  describe("SMTP AUTH", () => {
    it("binds a user to its addresses (envelope at MAIL FROM, From after DATA)", async () => {
      const passwordHash = await hashPassword("pw");
      const h = await start({
        smtp: { allowUnauthenticatedFrom: [], users: [{ username: "scanner", passwordHash }] },
        policy: { users: [{ username: "scanner", senders: ["scanner@example.com"] }] },
      });
      const auth = { user: "scanner", pass: "pw" };
      const env = await failure(sendRaw(h.port, "ceo@example.com", ["12025550143@fax.local"], message("scanner@example.com"), auth));
      expect(env.response).toBe("550 5.1.1 user scanner may not send as ceo@example.com");
      const hdr = await failure(sendRaw(h.port, "scanner@example.com", ["12025550143@fax.local"], message("ceo@example.com"), auth));
      expect(hdr.response).toBe("550 5.1.1 user scanner may not send as ceo@example.com");
      expect((await sendRaw(h.port, "scanner@example.com", ["12025550143@fax.local"], message("scanner@example.com"), auth)).response).toMatch(/^250 /);
      expect(await refusals(h, "user_sender_mismatch")).toBe(2);
    });

    it("locks out an IP after repeated failures, delaying each failure more, even for the right password", async () => {
      const passwordHash = await hashPassword("right");
      const h = await start({
        now: () => NOW,
        smtp: { users: [{ username: "scanner", passwordHash }] },
        policy: { abuse: { authMaxFailures: 3, authFailureDelayMs: 40, authLockoutSeconds: 900 } },
      });
      const took: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const err = await failure(sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"), { user: "scanner", pass: `wrong${i}` }));
        took.push(performance.now() - t0);
        expect(err.response).toBe("535 5.7.8 Authentication credentials invalid");
      }
      // 40, 80, 160 ms: doubling per failure.
      expect(took[0]).toBeGreaterThanOrEqual(38);
      expect(took[1]).toBeGreaterThanOrEqual(78);
      expect(took[2]).toBeGreaterThanOrEqual(158);
      const locked = await failure(sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"), { user: "scanner", pass: "right" }));
      expect(locked.response).toBe("454 4.7.0 too many failed logins from 127.0.0.1; AUTH refused until 11:15:00 UTC");
      expect(await refusals(h, "auth_locked")).toBe(1);
      expect(h.logs.some((l) => l.event === "policy.auth_lockout")).toBe(true);
    });

    it("lets the IP in again after the lockout", async () => {
      let now = NOW;
      const passwordHash = await hashPassword("right");
      const h = await start({ now: () => now, smtp: { users: [{ username: "scanner", passwordHash }] }, policy: { abuse: { authMaxFailures: 1 } } });
      await failure(sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"), { user: "scanner", pass: "wrong" }));
      now += 900_001;
      expect((await sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"), { user: "scanner", pass: "right" })).response).toMatch(/^250 /);
    });
  });

  describe("connections", () => {
    it("refuses new connections over the per-IP rate with 421 at the greeting", async () => {
      const h = await start({ policy: { abuse: { connectionsPerMinute: 2, exempt: [] } } });
      const connect = async (): Promise<SMTPConnection> => {
        const c = new SMTPConnection({ host: "127.0.0.1", port: h.port, secure: false, ignoreTLS: true });
        clients.push(c);
        await new Promise<void>((resolve, reject) => {
          c.once("error", reject);
          c.connect(() => resolve());
        });
        return c;
      };
      await connect();
      await connect();
      const err = await failure(connect());
      expect(err.response).toBe("421 4.7.0 too many connections from 127.0.0.1, try again in a minute");
      expect(await refusals(h, "connection_rate")).toBe(1);
    });

    it("does not limit exempt networks (loopback by default)", async () => {
      const h = await start({ policy: { abuse: { connectionsPerMinute: 1 } } });
      for (let i = 0; i < 3; i++) expect((await sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"))).response).toMatch(/^250 /);
    });
  });

  describe("destinations", () => {
    it("refuses premium-rate numbers", async () => {
      const h = await start();
      const err = await failure(sendRaw(h.port, "a@example.com", ["+19005551234@fax.local"], message("a@example.com")));
      expect(err.response).toBe("550 5.1.1 +19005551234 is a premium-rate number; faxing it is not allowed");
      expect(await refusals(h, "destination_type")).toBe(1);
    });

    it("refuses international numbers unless their country is allowed", async () => {
      const h = await start();
      const err = await failure(sendRaw(h.port, "a@example.com", ["+442071838750@fax.local"], message("a@example.com")));
      expect(err.response).toBe("550 5.1.1 +442071838750 is an international number (GB); faxing outside US is not allowed");
      const gb = await start({ policy: { destinations: { allowCountries: ["GB"] } } });
      expect((await sendRaw(gb.port, "a@example.com", ["+442071838750@fax.local"], message("a@example.com"))).response).toMatch(/^250 /);
    });

    it("refuses numbers matching a deny pattern, and lets allow patterns through the type rules", async () => {
      const h = await start({ policy: { destinations: { deny: ["+1202555*"], allow: ["+1900555*"] } } });
      const err = await failure(sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com")));
      expect(err.response).toBe("550 5.1.1 +12025550143 matches the denied destination pattern +1202555*; faxing it is not allowed");
      expect((await sendRaw(h.port, "a@example.com", ["+19005551234@fax.local"], message("a@example.com"))).response).toMatch(/^250 /);
    });

    it("keeps the allowed recipients of a mail when one is refused", async () => {
      const h = await start();
      const info = await sendRaw(h.port, "a@example.com", ["12025550143@fax.local", "+19005551234@fax.local"], message("a@example.com"));
      expect(info.rejected).toEqual(["+19005551234@fax.local"]);
      const [job] = await h.store.list();
      expect(job?.rcptTo.map((r) => r.e164)).toEqual(["+12025550143"]);
    });
  });

  describe("quotas", () => {
    it("refuses recipients over the per-sender hourly quota with 452 and when it frees up", async () => {
      const h = await start({ now: () => NOW, policy: { quotas: { perSenderPerHour: 2 } } });
      const info = await sendRaw(h.port, "a@example.com", ["12025550143@fax.local", "12025550144@fax.local", "12025550145@fax.local"], message("a@example.com"));
      expect(info.accepted).toHaveLength(2);
      expect((info.rejectedErrors?.[0] as SmtpFailure | undefined)?.response).toBe(
        "452 4.2.2 hourly fax quota of 2 for a@example.com reached; try again in 60 minutes (after 12:00:00 UTC)",
      );
      const err = await failure(sendRaw(h.port, "A@Example.com", ["12025550146@fax.local"], message("a@example.com")));
      expect(err.response).toBe("452 4.2.2 hourly fax quota of 2 for a@example.com reached; try again in 60 minutes (after 12:00:00 UTC)");
      // Another sender still may.
      expect((await sendRaw(h.port, "b@example.com", ["12025550146@fax.local"], message("b@example.com"))).response).toMatch(/^250 /);
      expect(await refusals(h, "quota_sender")).toBe(2);
    });

    it("refuses everyone over the global hourly quota", async () => {
      const h = await start({ now: () => NOW, policy: { quotas: { globalPerHour: 1 } } });
      expect((await sendRaw(h.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"))).response).toMatch(/^250 /);
      const err = await failure(sendRaw(h.port, "b@example.com", ["12025550144@fax.local"], message("b@example.com")));
      expect(err.response).toBe("452 4.2.2 this gateway's hourly fax quota of 1 is reached; try again in 60 minutes (after 12:00:00 UTC)");
    });

    it("counts the jobs of the last hour again after a restart", async () => {
      const first = await start({ policy: { quotas: { perSenderPerHour: 1 } } });
      expect((await sendRaw(first.port, "a@example.com", ["12025550143@fax.local"], message("a@example.com"))).response).toMatch(/^250 /);
      await stop(first);
      const second = await start({ dir: first.dir, policy: { quotas: { perSenderPerHour: 1 } } });
      const err = await failure(sendRaw(second.port, "a@example.com", ["12025550144@fax.local"], message("a@example.com")));
      expect(err.response).toMatch(/^452 4\.2\.2 hourly fax quota of 1 for a@example\.com reached; try again in (59|60) minutes \(after \d\d:\d\d:\d\d UTC\)$/);
    });
  });

  describe("limits that already existed", () => {
    it("refuses recipients past smtp.maxRecipients with 452", async () => {
      const h = await start({ smtp: { maxRecipients: 1 } });
      const info = await sendRaw(h.port, "a@example.com", ["12025550143@fax.local", "12025550144@fax.local"], message("a@example.com"));
      expect((info.rejectedErrors?.[0] as SmtpFailure | undefined)?.response).toBe("452 4.2.2 too many recipients");
    });

    it("refuses an oversized message with 552", async () => {
      const h = await start({ smtp: { maxMessageBytes: 5_000 } });
      const c = new SMTPConnection({ host: "127.0.0.1", port: h.port, secure: false, ignoreTLS: true });
      clients.push(c);
      await new Promise<void>((resolve, reject) => c.connect((err) => (err ? reject(err) : resolve())));
      const err = await failure(
        new Promise((resolve, reject) =>
          c.send({ from: "a@example.com", to: ["12025550143@fax.local"] }, message("a@example.com", "", "x".repeat(20_000) + "\r\n"), (e, info) => (e ? reject(e) : resolve(info))),
        ),
      );
      expect(err.response).toBe("552 5.2.2 message exceeds fixed maximum message size 5000");
      await nothingQueued(h);
    });
  });
});
