import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createSmtpPolicy } from "../../src/policy/index.js";
import { silentLogger } from "../../src/log.js";
import { createSmtpServer, type FaxSmtpServer } from "../../src/smtp/server.js";
import { ensureBuilt } from "../helpers/build.js";
import { failure } from "../helpers/smtp-failure.js";
import { tempDir } from "../helpers/tmp.js";
import { cli, openTestStores, sandboxConfig } from "./helpers.js";

/**
 * Issue 8: `faxbridge send` skipped the destination policy that SMTP
 * applies. Both now go through one intake (src/intake/accept.ts): the same
 * destination rules and the same hourly quotas, counted over the jobs of
 * both paths.
 */
describe("faxbridge send goes through the same intake as SMTP", () => {
  let dir: ReturnType<typeof tempDir>;
  let dataDir: string;
  let env: Record<string, string>;
  let file: string;

  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);

  beforeEach(() => {
    dir = tempDir();
    dataDir = join(dir.path, "data");
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    env = { FAXBRIDGE_DATA_DIR: dataDir };
    file = join(dir.path, "letter.txt");
    writeFileSync(file, "Dear Sir,\n");
  });

  afterEach(() => dir.cleanup());

  async function jobs(): Promise<number> {
    const s = await openTestStores(dataDir);
    try {
      return (await s.outbound.list()).length;
    } finally {
      await s.close();
    }
  }

  it("refuses a premium-rate number, as SMTP does at RCPT, and queues nothing", async () => {
    const r = await cli(["send", "--to", "+19005551234", file], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: "faxbridge send: refused: +19005551234 is a premium-rate number; faxing it is not allowed\n" });
    const denied = await cli(["send", "--to", "+12025550143", file], { ...env, FAXBRIDGE_POLICY_DESTINATIONS_DENY: "+1202555*" });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toBe("faxbridge send: refused: +12025550143 matches the denied destination pattern +1202555*; faxing it is not allowed\n");
    expect(await jobs()).toBe(0);
  }, 60_000);

  it("is held to the disk floor too", async () => {
    // The real free space of the data directory; no disk has 2^53 bytes free.
    const r = await cli(["send", "--to", "+12025550143", file], { ...env, FAXBRIDGE_SMTP_MIN_FREE_BYTES: String(Number.MAX_SAFE_INTEGER) });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: "faxbridge send: refused: insufficient system storage, try again later\n" });
    expect(await jobs()).toBe(0);
  }, 60_000);

  it("counts its faxes against the hourly quotas, together with mail accepted over SMTP", async () => {
    const quotaEnv = { ...env, FAXBRIDGE_POLICY_QUOTAS_PER_SENDER_PER_HOUR: "2", FAXBRIDGE_POLICY_QUOTAS_GLOBAL_PER_HOUR: "3" };
    expect((await cli(["send", "--to", "+12025550143", "--to", "+12025550144", file], quotaEnv)).code).toBe(0);
    const over = await cli(["send", "--to", "+12025550145", file], quotaEnv);
    expect(over.code).toBe(1);
    expect(over.stderr).toMatch(/^faxbridge send: refused: hourly fax quota of 2 for cli:\S+ reached; try again in \d+ minutes? \(after \d\d:\d\d:\d\d UTC\)\n$/);

    // One more recipient over SMTP fills the global quota of 3; then `send` is refused by it.
    const config = sandboxConfig(dataDir, { FAXBRIDGE_POLICY_QUOTAS_PER_SENDER_PER_HOUR: "2", FAXBRIDGE_POLICY_QUOTAS_GLOBAL_PER_HOUR: "3" });
    const stores = await openTestStores(dataDir);
    const spool = stores.spool;
    let server: FaxSmtpServer | undefined;
    try {
      const policy = await createSmtpPolicy({ config, logger: silentLogger(), store: stores.outbound, quota: stores.quota });
      server = createSmtpServer({ config, spool, store: stores.outbound, logger: silentLogger(), numberCheck: "possible", policy });
      const { port } = await server.listen();
      const t = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
      await t.sendMail({ envelope: { from: "bob@example.com", to: ["12025550146@fax.local"] }, raw: "From: bob@example.com\r\nSubject: x\r\n\r\nhi\r\n" });
      const refused = await failure(t.sendMail({ envelope: { from: "carol@example.com", to: ["12025550147@fax.local"] }, raw: "From: carol@example.com\r\nSubject: x\r\n\r\nhi\r\n" }));
      expect(refused.response).toMatch(/^452 4\.2\.2 this gateway's hourly fax quota of 3 is reached/);
      t.close();
    } finally {
      await server?.close(100);
      await stores.close();
    }
    const global = await cli(["send", "--to", "+12025550148", file], { ...quotaEnv, FAXBRIDGE_POLICY_QUOTAS_PER_SENDER_PER_HOUR: "0" });
    expect(global.code).toBe(1);
    expect(global.stderr).toMatch(/^faxbridge send: refused: this gateway's hourly fax quota of 3 is reached; try again in/);
    expect(await jobs()).toBe(2);
  }, 60_000);
});
