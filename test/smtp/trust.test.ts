import { readdir, rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import type { InboundStore } from "../../src/store/ports.js";
import { newId } from "../../src/util/ids.js";
import { sendRaw, type SendOutcome } from "../fault/smtp-client.js";
import { keyPair, signed, tableResolver } from "../helpers/dkim.js";
import { refusalCount, startIntake, type Intake } from "../helpers/smtp-intake.js";

/**
 * Issue 8, the trust boundary at SMTP time: each attack goes through the real
 * listener (createSmtpServer + createSmtpPolicy on loopback) byte for byte,
 * and the test pins the exact reply line and that nothing was queued.
 */

const KEY = keyPair();
const ATTACKER_KEY = keyPair();

/** example.com is the allowlisted domain; evil.example is the attacker's own, with working DKIM and DMARC. */
const DNS: Record<string, string[][]> = {
  "TXT s1._domainkey.example.com": [[KEY.dns]],
  "TXT _dmarc.example.com": [["v=DMARC1; p=reject"]],
  "TXT example.com": [["v=spf1 -all"]],
  "TXT s1._domainkey.evil.example": [[ATTACKER_KEY.dns]],
  "TXT _dmarc.evil.example": [["v=DMARC1; p=reject"]],
  "TXT evil.example": [["v=spf1 ip4:127.0.0.1 -all"]],
};

const resolver = tableResolver(DNS);

function message(from: string, extraHeaders = ""): string {
  return `${extraHeaders}From: ${from}\r\nTo: fax\r\nSubject: contract\r\nDate: Tue, 15 Jan 2030 11:00:00 +0000\r\nMessage-ID: <m-${Math.random().toString(36).slice(2)}@example.com>\r\n\r\nPlease fax this.\r\n`;
}

type Harness = Intake & { inbound: InboundStore };

describe("trust boundary at SMTP time (issue 8)", () => {
  const harnesses: Harness[] = [];

  async function start(opts: { smtp?: Record<string, unknown>; policy?: Record<string, unknown> } = {}): Promise<Harness> {
    const intake = await startIntake({ ...opts, prefix: "faxbridge-trust-", resolver, inbound: true, groupCommit: "inline" });
    const h = { ...intake, inbound: intake.inbound as InboundStore };
    harnesses.push(h);
    return h;
  }

  afterEach(async () => {
    for (const h of harnesses.splice(0)) {
      await h.close();
      await rm(h.dir, { recursive: true, force: true });
    }
  });

  function send(h: Harness, from: string, raw: string, to = ["12025550143@fax.local"]): Promise<SendOutcome> {
    return sendRaw({ port: h.port, from, to, raw: Buffer.from(raw, "latin1") });
  }

  /** The reply line of the stage that ended the transaction. */
  function line(o: SendOutcome): string {
    if (o.kind !== "reply") throw new Error(`connection broke at ${o.stage}: ${o.error}`);
    return `${o.code} ${o.text}`;
  }

  const refusals = (h: Harness, reason: string): Promise<number> => refusalCount(h.metrics, reason);

  async function nothingQueued(h: Harness): Promise<void> {
    expect(await h.store.list()).toEqual([]);
    expect(await readdir(h.spool.msgDir)).toEqual([]);
  }

  describe("envelope sender", () => {
    it("refuses at MAIL FROM a sender that is a list or not a mailbox (553 5.1.7): one mail can never become several reports", async () => {
      const h = await start();
      for (const from of ["alice,bob,carol@example.org", "alice@example.org,bob@example.org", "a b@example.org", "@example.org"]) {
        const o = await send(h, from, message("alice@example.org"));
        expect([from, o]).toMatchObject([from, { kind: "reply", stage: "mail" }]);
        expect([from, line(o)]).toEqual([from, "553 5.1.7 the sender address must be exactly one valid mailbox"]);
      }
      // Three of them smtp-server's own parser refuses first (same reply); the list with one "@" reaches the policy.
      expect(await refusals(h, "bad_sender_address")).toBe(1);
      await nothingQueued(h);
      // The null sender stays legal (reports to it are suppressed).
      expect(line(await send(h, "", message("alice@example.org")))).toMatch(/^250 2\.6\.0 Queued as /);
    });
  });

  describe("one From identity", () => {
    const allowlist = { default: { senders: ["@example.com"], verifySender: "dmarc" } };

    it("refuses a From header that the sender rules and the DMARC verifier read as different senders (550 5.7.1)", async () => {
      const h = await start({ policy: allowlist });
      // Folded with a form feed: a plain header reader sees alice@example.com, a looser one sees the attacker, whose own domain signs and passes DMARC.
      const raw = await signed(message("alice@example.com (\r\n\f) attacker@evil.example"), "evil.example", ATTACKER_KEY.privateKey);
      const o = await send(h, "alice@example.com", raw);
      expect(o).toMatchObject({ kind: "reply", stage: "end" });
      expect(line(o)).toBe("550 5.7.1 the From header can be read as more than one sender; send it with exactly one plain address");
      expect(await refusals(h, "from_ambiguous")).toBe(1);
      await nothingQueued(h);
    });

    it("refuses a mail with zero or several From mailboxes (550 5.7.1)", async () => {
      const h = await start({ policy: allowlist });
      const none = message("undisclosed-sender:;");
      expect(line(await send(h, "alice@example.com", none))).toBe("550 5.7.1 the From header has no address; the sender rules need exactly one From address");
      const two = message("alice@example.com, attacker@evil.example");
      expect(line(await send(h, "alice@example.com", two))).toBe("550 5.7.1 the From header has more than one address; the sender rules need exactly one From address");
      await nothingQueued(h);
    });

    it("still accepts a plainly written From that passes DMARC, and stores the verified From as the identity", async () => {
      const h = await start({ policy: allowlist });
      const raw = await signed(message("Alice <Alice+fax@example.com>"), "example.com", KEY.privateKey);
      expect(line(await send(h, "bounces+123@example.com", raw))).toMatch(/^250 2\.6\.0 Queued as /);
      const [job] = await h.store.list();
      expect(job).toMatchObject({ identity: "alice@example.com", reportTo: "Alice+fax@example.com", mailFrom: "bounces+123@example.com" });
    });
  });

  describe("quotas keyed on the identity", () => {
    it("does not give q1+x@, \"q1\"@ or Q1@ a fresh quota", async () => {
      const h = await start({ policy: { quotas: { perSenderPerHour: 2, perClientIpPerHour: 0 } } });
      expect(line(await send(h, "q1+a@example.org", message("q1@example.org")))).toMatch(/^250 /);
      expect(line(await send(h, '"q1"@example.org', message("q1@example.org")))).toMatch(/^250 /);
      const o = await send(h, "Q1+b@Example.org", message("q1@example.org"));
      expect(o).toMatchObject({ stage: "rcpt" });
      expect(line(o)).toMatch(/^452 4\.2\.2 hourly fax quota of 2 for q1@example\.org reached; try again in 60 minutes/);
      expect(await refusals(h, "quota_sender")).toBe(1);
    });

    it("holds an unauthenticated client IP to its own quota whatever sender addresses it invents", async () => {
      const h = await start({ policy: { quotas: { perSenderPerHour: 100, perClientIpPerHour: 2 } } });
      expect(line(await send(h, "a1@example.org", message("a1@example.org")))).toMatch(/^250 /);
      expect(line(await send(h, "a2@example.org", message("a2@example.org")))).toMatch(/^250 /);
      const o = await send(h, "a3@example.org", message("a3@example.org"));
      expect(line(o)).toMatch(/^452 4\.2\.2 hourly fax quota of 2 for unauthenticated mail from 127\.0\.0\.1 reached; try again in 60 minutes/);
      expect(await refusals(h, "quota_client")).toBe(1);
    });

    it("does not apply the client IP quota to a trusted relay", async () => {
      const h = await start({ policy: { trustedRelays: ["127.0.0.1/32"], quotas: { perClientIpPerHour: 1 } } });
      expect(line(await send(h, "a1@example.org", message("a1@example.org")))).toMatch(/^250 /);
      expect(line(await send(h, "a2@example.org", message("a2@example.org")))).toMatch(/^250 /);
    });
  });

  describe("forwarding (X-Fax-Forward-Of)", () => {
    /** A fax this gateway sent for `mailFrom`, recorded as RingCentral message `rcId`. */
    async function sentFax(h: Harness, mailFrom: string, rcId: string): Promise<void> {
      const job = await h.store.insertReceived({
        id: newId(),
        mailFrom,
        rcptTo: [{ address: "12025550199@fax.local", e164: "+12025550199", options: {} }],
        mailKey: "msg/nonexistent.eml",
        size: 1,
        client: { ip: "127.0.0.1" },
      });
      await h.store.transition(job.id, "received", "parsed");
      await h.store.transition(job.id, "parsed", "submitting", { submitStartedAt: Date.now() });
      await h.store.transition(job.id, "submitting", "submitted", { rcMessageId: rcId });
    }

    /** A received fax `rcId` that inbound routing mailed to `mailTo`. */
    async function receivedFax(h: Harness, rcId: string, mailTo: string): Promise<void> {
      const now = Date.now();
      const [fax] = await h.inbound.recordSync(
        "~",
        { syncToken: "t", syncTime: null, lastFullSyncAt: now },
        [{ extension: "~", rcMessageId: rcId, message: { from: "+12025550100", to: ["+12025550111"], creationTime: new Date(now).toISOString(), attachments: [] } }],
        now,
      );
      if (fax === undefined) throw new Error("fax not recorded");
      await h.inbound.markDelivered(fax.id, { route: -1, mailTo: [mailTo] }, now);
    }

    const forward = (id: string): string => message("x@example.org", `X-Fax-Forward-Of: ${id}\r\n`).replace("Please fax this.\r\n", "");

    it("refuses to resend a fax the gateway never sent for this sender (550 5.7.1), without asking RingCentral", async () => {
      const h = await start();
      await sentFax(h, "bob@example.org", "300000");
      for (const id of ["300000", "12345"]) {
        const o = await send(h, "mallory@example.org", forward(id));
        expect(o).toMatchObject({ kind: "reply", stage: "end" });
        expect(line(o)).toBe(`550 5.7.1 you may forward only faxes this gateway sent for you or received faxes mailed to you; fax ${id} is neither`);
      }
      expect(await refusals(h, "forward_not_allowed")).toBe(2);
      expect(await h.store.list()).toHaveLength(1);
    });

    it("lets the same sender identity resend its own fax, however it spells its address", async () => {
      const h = await start();
      await sentFax(h, "bob@example.org", "300001");
      expect(line(await send(h, "Bob+again@Example.org", forward("300001")))).toMatch(/^250 2\.6\.0 Queued as /);
    });

    it("lets a user forward a received fax only when it was mailed to that user's mailbox", async () => {
      const h = await start();
      await receivedFax(h, "400001", "Front Desk <desk@example.org>");
      expect(line(await send(h, "desk@example.org", forward("400001")))).toMatch(/^250 /);
      expect(line(await send(h, "other@example.org", forward("400001")))).toBe(
        "550 5.7.1 you may forward only faxes this gateway sent for you or received faxes mailed to you; fax 400001 is neither",
      );
    });

    it("refuses a malformed or repeated header (550 5.7.1)", async () => {
      const h = await start();
      const twice = message("x@example.org", "X-Fax-Forward-Of: 1\r\nX-Fax-Forward-Of: 2\r\n");
      expect(line(await send(h, "a@example.org", twice))).toBe(
        "550 5.7.1 X-Fax-Forward-Of must appear once and name the numeric id of a fax you sent or received",
      );
    });
  });
});
