import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import { hashPassword } from "../../src/smtp/password.js";
import { SmtpDialog, type Reply } from "../helpers/smtp-dialog.js";
import { refusalCount, startIntake, type Intake } from "../helpers/smtp-intake.js";
import { hasOpenssl, selfSignedCert } from "../helpers/tls.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The edge of the trust boundary (issue 8): connection slots, sessions that
 * make no progress, AUTH brute force and where AUTH is offered, the disk
 * floor. Each attack runs through the real listener (createSmtpServer with
 * createSmtpPolicy) on loopback, and the tests pin the exact reply lines.
 *
 * "A network client" here is a loopback client that connects from another
 * loopback address than the listener's (127.0.0.2 → 127.0.0.1): by the rule
 * of isLocalClient (src/net/cidr.ts) only 127.0.0.1 → 127.0.0.1 is local.
 */

const MESSAGE = "From: alice@example.com\r\nTo: fax\r\nSubject: contract\r\nMessage-ID: <edge@example.com>\r\n\r\nPlease fax this.\r\n.";

type Harness = Intake;

describe("trust boundary at the SMTP edge", () => {
  const harnesses: Harness[] = [];
  const dialogs: SmtpDialog[] = [];

  async function start(opts: { smtp?: Record<string, unknown>; policy?: Record<string, unknown> } = {}): Promise<Harness> {
    const h = await startIntake({ ...opts, prefix: "faxbridge-edge-" });
    harnesses.push(h);
    return h;
  }

  async function open(h: Harness, localAddress?: string): Promise<{ dialog: SmtpDialog; greeting: Reply }> {
    const r = await SmtpDialog.open(h.port, localAddress === undefined ? {} : { localAddress });
    dialogs.push(r.dialog);
    return r;
  }

  const refusals = (h: Harness, reason: string): Promise<number> => refusalCount(h.metrics, reason);

  /** One whole mail over an open dialog; the reply to the end of DATA. */
  async function mail(d: SmtpDialog, to = "12025550143@fax.local"): Promise<Reply> {
    for (const line of ["MAIL FROM:<alice@example.com>", `RCPT TO:<${to}>`, "DATA"]) {
      const r = await d.command(line);
      if (r.code >= 400) return r;
    }
    return d.command(MESSAGE);
  }

  afterEach(async () => {
    for (const d of dialogs.splice(0)) d.close();
    for (const h of harnesses.splice(0)) {
      await h.close();
      await rm(h.dir, { recursive: true, force: true });
    }
  });

  describe("connection slots", () => {
    it("two IPs cannot hold every slot: each gets maxConnectionsPerIp, then 421 4.7.0, and a third client still gets in", async () => {
      const h = await start({ smtp: { maxConnections: 10 }, policy: { abuse: { maxConnectionsPerIp: 3, exempt: [] } } });
      for (const ip of ["127.0.0.1", "127.0.0.2"]) {
        for (let i = 0; i < 3; i++) expect((await open(h, ip)).greeting.code).toBe(220);
        const over = await open(h, ip);
        expect(over.greeting.line).toBe(`421 4.7.0 too many open connections from ${ip} (at most 3), try again later`);
        await over.dialog.closedPromise;
      }
      const relay = await open(h, "127.0.0.3");
      expect(relay.greeting.code).toBe(220);
      expect((await relay.dialog.command("EHLO relay.test")).code).toBe(250);
      expect((await mail(relay.dialog)).line).toMatch(/^250 2\.6\.0 Queued as /);
      expect(await refusals(h, "connections_per_ip")).toBe(2);
    });

    it("gives the slot back when a connection closes", async () => {
      const h = await start({ policy: { abuse: { maxConnectionsPerIp: 1, exempt: [] } } });
      const first = await open(h);
      expect((await open(h)).greeting.code).toBe(421);
      first.dialog.close();
      await first.dialog.closedPromise;
      // The server notices the close asynchronously; the next connection is admitted once it has.
      let again: Reply | undefined;
      for (let i = 0; i < 50 && again?.code !== 220; i++) again = (await open(h)).greeting;
      expect(again?.code).toBe(220);
    });

    it("does not limit exempt networks (loopback by default)", async () => {
      const h = await start({ policy: { abuse: { maxConnectionsPerIp: 1 } } });
      for (let i = 0; i < 3; i++) expect((await open(h)).greeting.code).toBe(220);
    });
  });

  describe("sessions without progress", () => {
    it("closes a NOOP loop with 421 4.7.0 after maxCommandsWithoutProgress commands", async () => {
      const h = await start({ policy: { abuse: { maxCommandsWithoutProgress: 20 } } });
      const { dialog } = await open(h);
      expect((await dialog.command("EHLO hog.test")).code).toBe(250);
      for (let i = 0; i < 19; i++) expect((await dialog.command(i % 3 === 0 ? "RSET" : i % 3 === 1 ? "VRFY postmaster" : "NOOP")).code).toBeLessThan(300);
      expect((await dialog.command("NOOP")).line).toBe("421 4.7.0 too many commands without progress, closing connection");
      await dialog.closedPromise;
      expect(await refusals(h, "no_progress")).toBe(1);
    });

    it("counts refused transactions too, but not a session that delivers mail", async () => {
      const h = await start({ policy: { abuse: { maxCommandsWithoutProgress: 8 } } });
      const busy = (await open(h)).dialog;
      expect((await busy.command("EHLO relay.test")).code).toBe(250);
      // Ten mails of five recipients each on one connection: far more than 8 commands, all progress.
      for (let m = 0; m < 10; m++) {
        expect((await busy.command("MAIL FROM:<alice@example.com>")).code).toBe(250);
        for (let r = 0; r < 5; r++) expect((await busy.command(`RCPT TO:<1202555014${r}@fax.local>`)).code).toBe(250);
        expect((await busy.command("DATA")).code).toBe(354);
        expect((await busy.command(MESSAGE)).code).toBe(250);
      }
      const junk = (await open(h)).dialog;
      expect((await junk.command("EHLO junk.test")).code).toBe(250);
      let last: Reply | undefined;
      for (let i = 0; i < 8 && last?.code !== 421; i++) {
        last = await junk.command("MAIL FROM:<alice@example.com>");
        if (last.code === 250) last = await junk.command("RCPT TO:<alice@example.com>");
      }
      expect(last?.line).toBe("421 4.7.0 too many commands without progress, closing connection");
    });
  });

  describe("AUTH", () => {
    it("40 parallel attempts from one IP: the attempts are counted when they start, so the right password is refused once the limit is hit", async () => {
      const passwordHash = await hashPassword("right");
      const h = await start({ smtp: { users: [{ username: "scanner", passwordHash }] }, policy: { abuse: { authMaxFailures: 5 } } });
      const plain = (pass: string): string => `AUTH PLAIN ${Buffer.from(`\0scanner\0${pass}`).toString("base64")}`;
      const sessions = await Promise.all(Array.from({ length: 40 }, () => open(h)));
      await Promise.all(sessions.map((s) => s.dialog.command("EHLO burst.test")));
      const wrong = sessions.slice(0, 39).map((s, i) => s.dialog.command(plain(`wrong${i}`)));
      // Every attempt past the 5th is refused without a password check, while the first five are still being checked.
      const replies: Reply[] = [];
      for (const p of wrong) void p.then((r) => replies.push(r));
      const right = sessions[39]?.dialog as SmtpDialog;
      // Before the fix every attempt was checked and none refused, so this wait fails on the old code.
      await waitFor(() => replies.filter((r) => r.code === 454).length >= 34, { timeoutMs: 10_000, intervalMs: 5, maxIntervalMs: 20, what: "34 attempts refused while the first five are checked" });
      const last = await right.command(plain("right"));
      expect(last.line).toMatch(/^454 4\.7\.0 too many failed logins from 127\.0\.0\.1; AUTH refused until \d\d:\d\d:\d\d UTC$/);
      const all = await Promise.all(wrong);
      expect(all.filter((r) => r.line === "535 5.7.8 Authentication credentials invalid")).toHaveLength(5);
      expect(all.filter((r) => r.code === 454)).toHaveLength(34);
      expect(await refusals(h, "auth_locked")).toBe(35);
    });

    it("is not offered in clear to a network client: no AUTH in EHLO, 538 to AUTH, 530 to MAIL", async () => {
      const passwordHash = await hashPassword("pw");
      const h = await start({ smtp: { users: [{ username: "scanner", passwordHash }], allowUnauthenticatedFrom: [] } });
      const { dialog } = await open(h, "127.0.0.2");
      const ehlo = await dialog.command("EHLO client.test");
      expect(ehlo.lines.some((l) => l.startsWith("AUTH"))).toBe(false);
      expect((await dialog.command(`AUTH PLAIN ${Buffer.from("\0scanner\0pw").toString("base64")}`)).line).toBe(
        "538 5.7.0 Authentication requires TLS, which this server does not offer",
      );
      expect((await dialog.command("MAIL FROM:<a@example.com>")).line).toBe("530 5.7.0 Authentication required");
      expect(await refusals(h, "auth_needs_tls")).toBe(1);
    });

    it("is offered to a local client (127.0.0.1 → 127.0.0.1) and works there", async () => {
      const passwordHash = await hashPassword("pw");
      const h = await start({ smtp: { users: [{ username: "scanner", passwordHash }], allowUnauthenticatedFrom: [] } });
      const { dialog } = await open(h, "127.0.0.1");
      const ehlo = await dialog.command("EHLO client.test");
      expect(ehlo.lines).toContain("AUTH PLAIN LOGIN");
      expect((await dialog.command(`AUTH PLAIN ${Buffer.from("\0scanner\0pw").toString("base64")}`)).line).toBe("235 2.7.0 Authentication successful");
      expect((await mail(dialog)).line).toMatch(/^250 2\.6\.0 Queued as /);
    });

    it.skipIf(!hasOpenssl())("is offered to a network client after STARTTLS", async () => {
      const dir = await mkdtemp(join(tmpdir(), "faxbridge-edge-tls-"));
      try {
        const { key, cert } = selfSignedCert(dir);
        const passwordHash = await hashPassword("pw");
        const h = await start({ smtp: { users: [{ username: "scanner", passwordHash }], allowUnauthenticatedFrom: [], tlsKey: key, tlsCert: cert } });
        const { dialog } = await open(h, "127.0.0.2");
        const clear = await dialog.command("EHLO client.test");
        expect(clear.lines).toContain("STARTTLS");
        expect(clear.lines.some((l) => l.startsWith("AUTH"))).toBe(false);
        expect((await dialog.command("AUTH LOGIN")).line).toBe("538 5.7.0 Must issue a STARTTLS command first");
        expect((await dialog.command("STARTTLS")).code).toBe(220);
        await dialog.startTls();
        expect((await dialog.command("EHLO client.test")).lines).toContain("AUTH PLAIN LOGIN");
        expect((await dialog.command(`AUTH PLAIN ${Buffer.from("\0scanner\0pw").toString("base64")}`)).line).toBe("235 2.7.0 Authentication successful");
        expect((await mail(dialog)).line).toMatch(/^250 2\.6\.0 Queued as /);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe("disk floor", () => {
    it("refuses new mail at MAIL FROM with 452 4.3.1 while the data directory has less than smtp.minFreeBytes free", async () => {
      // The probe is the real statfs of the data directory; only the threshold is chosen: no disk has 2^53 bytes free.
      const full = await start({ smtp: { minFreeBytes: Number.MAX_SAFE_INTEGER } });
      const { dialog } = await open(full);
      expect((await dialog.command("EHLO client.test")).code).toBe(250);
      expect((await dialog.command("MAIL FROM:<alice@example.com>")).line).toBe("452 4.3.1 insufficient system storage, try again later");
      expect(await refusals(full, "disk_floor")).toBe(1);
      expect(await full.store.list()).toEqual([]);

      const roomy = await start({ smtp: { minFreeBytes: 1 } });
      const ok = (await open(roomy)).dialog;
      expect((await ok.command("EHLO client.test")).code).toBe(250);
      expect((await mail(ok)).line).toMatch(/^250 2\.6\.0 Queued as /);
    });

    it("defaults to the larger of 1 GiB and twice smtp.maxMessageBytes", () => {
      expect(configSchema.parse({}).smtp.minFreeBytes).toBe(1024 ** 3);
      expect(configSchema.parse({ smtp: { maxMessageBytes: 1024 ** 3 } }).smtp.minFreeBytes).toBe(2 * 1024 ** 3);
      expect(configSchema.parse({ smtp: { minFreeBytes: 0 } }).smtp.minFreeBytes).toBe(0);
    });
  });
});
