import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { checkSmtpExposure, checkWebhook, type Check } from "../../src/cli/doctor.js";
import { loadConfig } from "../../src/config/load.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { ensureBuilt } from "../helpers/build.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { newId } from "../../src/util/ids.js";
import { cli, openTestStores } from "./helpers.js";

const CLIENT = { clientId: "doctor-app", clientSecret: "doctor-secret-value", jwt: "eyJ.doctor-jwt-value.sig" };

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

function byName(checks: Check[], name: string): Check | undefined {
  return checks.find((c) => c.name === name);
}

describe("faxbridge doctor", () => {
  let dir: ReturnType<typeof tempDir>;
  let emulator: Emulator | undefined;
  let env: Record<string, string>;

  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);

  beforeEach(() => {
    dir = tempDir();
    const dataDir = join(dir.path, "data");
    mkdirSync(dataDir, { mode: 0o700 });
    env = { FAXBRIDGE_DATA_DIR: dataDir };
  });

  afterEach(async () => {
    await emulator?.close();
    emulator = undefined;
    dir.cleanup();
  });

  async function doctor(extra: Record<string, string>): Promise<{ code: number; checks: Check[]; text: string; stderr: string }> {
    const json = await cli(["doctor", "--json"], { ...env, ...extra });
    const text = await cli(["doctor"], { ...env, ...extra });
    expect(text.code).toBe(json.code);
    for (const out of [json.stdout, json.stderr, text.stdout, text.stderr]) {
      expect(out).not.toContain(CLIENT.clientSecret);
      expect(out).not.toContain(CLIENT.jwt);
      expect(out).not.toMatch(/\n\s+at /);
    }
    return { code: json.code, checks: JSON.parse(json.stdout) as Check[], text: text.stdout, stderr: text.stderr };
  }

  it("passes a healthy sandbox, saying it is sandbox mode", async () => {
    const r = await doctor({});
    expect(r.code).toBe(0);
    expect(r.checks.filter((c) => c.status === "FAIL")).toEqual([]);
    expect(byName(r.checks, "config")?.status).toBe("ok");
    expect(byName(r.checks, "data dir")).toMatchObject({ status: "ok", message: expect.stringContaining("mode 700") });
    expect(byName(r.checks, "database")?.status).toBe("ok");
    expect(byName(r.checks, "disk")?.status).toMatch(/ok|warn/);
    expect(byName(r.checks, "ringcentral")).toMatchObject({ status: "warn", message: expect.stringContaining("SANDBOX mode") });
    expect(r.text).toMatch(/^ok {4}config: the configuration is valid$/m);
    expect(r.text).toMatch(/^warn {2}ringcentral: SANDBOX mode/m);
    expect(r.text).toContain("no problems");
  });

  it("FAILs on a wrong JWT and on a wrong client secret, naming which", async () => {
    emulator = await startEmulator({ strictAuth: CLIENT });
    const base = { RC_SERVER_URL: emulator.url, RC_CLIENT_ID: CLIENT.clientId };
    const badJwt = await doctor({ ...base, RC_CLIENT_SECRET: CLIENT.clientSecret, RC_JWT: `${CLIENT.jwt}-wrong` });
    expect(badJwt.code).toBe(1);
    expect(byName(badJwt.checks, "ringcentral login")).toMatchObject({ status: "FAIL", message: expect.stringContaining("rejected the JWT (invalid_grant") });
    expect(badJwt.text).toMatch(/^FAIL {2}ringcentral login: RingCentral rejected the JWT/m);
    expect(badJwt.text).toContain("→ create a new JWT credential");
    expect(badJwt.text).toContain("1 problem(s) to fix");

    const badSecret = await doctor({ ...base, RC_CLIENT_SECRET: "not-the-secret", RC_JWT: CLIENT.jwt });
    expect(badSecret.code).toBe(1);
    expect(byName(badSecret.checks, "ringcentral login")).toMatchObject({ status: "FAIL", message: expect.stringContaining("client id or client secret") });
  });

  it("passes real credentials with the needed permissions", async () => {
    emulator = await startEmulator({ strictAuth: CLIENT, permissions: ["Faxes", "ReadMessages", "WebSocketsSubscription"] });
    const r = await doctor({ RC_SERVER_URL: emulator.url, RC_CLIENT_ID: CLIENT.clientId, RC_CLIENT_SECRET: CLIENT.clientSecret, RC_JWT: CLIENT.jwt });
    expect({ code: r.code, text: r.text }).toMatchObject({ code: 0 });
    expect(byName(r.checks, "ringcentral login")?.status).toBe("ok");
    expect(byName(r.checks, "ringcentral permissions")?.status).toBe("ok");
    expect(byName(r.checks, "ringcentral api")).toMatchObject({ status: "ok", message: expect.stringContaining("cover pages") });
    // Two doctor runs (--json and text), one login: the token pair is kept in the data dir, not revoked.
    const calls = (await (await fetch(`${emulator.url}/emulator/calls`)).json()) as { byRoute: Record<string, number> };
    expect(calls.byRoute["POST /restapi/oauth/token"]).toBe(1);
    expect(calls.byRoute["POST /restapi/oauth/revoke"] ?? 0).toBe(0);
  });

  it("FAILs when the mail server refuses an inbound mailbox (RCPT probe, nothing sent) and warns about localhost addresses", async () => {
    const sink = await new SmtpSink().start();
    try {
      sink.refuseRecipients.add("fax-inbox@localhost");
      const r = await doctor({ FAXBRIDGE_MAIL_URL: sink.url });
      expect(r.code).toBe(1);
      expect(byName(r.checks, "inbound mailboxes")).toMatchObject({ status: "FAIL", message: expect.stringContaining("refuses fax-inbox@localhost (inbound.defaultTo): 550") });
      expect(byName(r.checks, "mail addresses")).toMatchObject({ status: "warn", message: expect.stringContaining("faxbridge@localhost") });
      expect(r.text).not.toContain("everything looks right");

      const good = await doctor({
        FAXBRIDGE_MAIL_URL: sink.url,
        FAXBRIDGE_MAIL_FROM: "Fax <fax@example.com>",
        FAXBRIDGE_INBOUND_TO: "frontdesk@example.com",
        FAXBRIDGE_MAIL_ADMIN_TO: "it@example.com",
        FAXBRIDGE_INBOUND_ROUTES: JSON.stringify([{ to: "+16505550100", mailTo: ["billing@example.com"] }]),
      });
      expect(byName(good.checks, "inbound mailboxes")).toMatchObject({ status: "ok", message: expect.stringContaining("frontdesk@example.com, billing@example.com, it@example.com") });
      expect(byName(good.checks, "mail addresses")).toBeUndefined();
      sink.refuseRecipients.add("billing@example.com");
      const route = await doctor({
        FAXBRIDGE_MAIL_URL: sink.url,
        FAXBRIDGE_MAIL_FROM: "fax@example.com",
        FAXBRIDGE_INBOUND_TO: "frontdesk@example.com",
        FAXBRIDGE_INBOUND_ROUTES: JSON.stringify([{ to: "+16505550100", mailTo: ["billing@example.com"] }]),
      });
      expect(byName(route.checks, "inbound mailboxes")).toMatchObject({ status: "FAIL", message: expect.stringContaining("billing@example.com (an inbound route)") });
      expect(sink.messages).toEqual([]);
    } finally {
      await sink.close();
    }
  });

  it("FAILs when the app lacks the Faxes permission", async () => {
    emulator = await startEmulator({ permissions: ["ReadMessages"] });
    const r = await doctor({ RC_SERVER_URL: emulator.url, RC_CLIENT_ID: CLIENT.clientId, RC_CLIENT_SECRET: CLIENT.clientSecret, RC_JWT: CLIENT.jwt });
    expect(r.code).toBe(1);
    const perms = byName(r.checks, "ringcentral permissions");
    expect(perms?.status).toBe("FAIL");
    expect(perms?.message).toContain("lacks the permission Faxes (to send faxes)");
    expect(perms?.message).toContain("granted: ReadMessages");
    expect(byName(r.checks, "ringcentral login")?.status).toBe("ok");
    // The emulator enforces it too: a fax send answers 403 InsufficientPermissions / CMN-401, as RingCentral does.
    const token = (await (
      await fetch(`${emulator.url}/restapi/oauth/token`, {
        method: "POST",
        headers: { Authorization: `Basic ${Buffer.from("a:b").toString("base64")}`, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: "x" }).toString(),
      })
    ).json()) as { access_token: string; scope: string };
    expect(token.scope).toBe("ReadMessages");
    const send = await fetch(`${emulator.url}/restapi/v1.0/account/~/extension/~/fax`, { method: "POST", headers: { Authorization: `Bearer ${token.access_token}` } });
    expect(send.status).toBe(403);
    expect(await send.json()).toMatchObject({
      errorCode: "InsufficientPermissions",
      permissionName: "Faxes",
      errors: [{ errorCode: "CMN-401", permissionName: "Faxes", message: "In order to call this API endpoint, application needs to have [Faxes] permission" }],
    });
    const list = await fetch(`${emulator.url}/restapi/v1.0/account/~/extension/~/message-store`, { headers: { Authorization: `Bearer ${token.access_token}` } });
    expect(list.status).toBe(200);
  });

  it("FAILs in plain words when RingCentral is unreachable", async () => {
    const port = await closedPort();
    const r = await doctor({ RC_SERVER_URL: `http://127.0.0.1:${port}`, RC_CLIENT_ID: CLIENT.clientId, RC_CLIENT_SECRET: CLIENT.clientSecret, RC_JWT: CLIENT.jwt });
    expect(r.code).toBe(1);
    expect(byName(r.checks, "ringcentral login")).toMatchObject({ status: "FAIL", message: `cannot reach RingCentral at http://127.0.0.1:${port} (ECONNREFUSED)` });
  });

  it("FAILs in plain words when the mail server is unreachable", async () => {
    const port = await closedPort();
    const r = await doctor({ FAXBRIDGE_MAIL_URL: `smtp://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    const mail = byName(r.checks, "mail");
    expect(mail?.status).toBe("FAIL");
    expect(mail?.message).toBe(`nothing accepts connections at smtp://127.0.0.1:${port} (connection refused): the mail server is down or mail.url names the wrong host or port`);
    expect(r.text).toContain("→ start the mail server, or fix mail.url (FAXBRIDGE_MAIL_URL)");
  });

  it("FAILs partial credentials and exits 2 on an invalid configuration", async () => {
    // Partial credentials are a configuration error (all or nothing), as for `run`.
    const partial = await cli(["doctor"], { ...env, RC_CLIENT_ID: CLIENT.clientId });
    expect(partial.code).toBe(2);
    expect(partial.stdout).toContain("ringcentral.jwt (missing): RC_JWT (or RC_JWT_FILE) is not set, but RC_CLIENT_ID is");

    const bad = await cli(["doctor"], { ...env, FAXBRIDGE_SMTP_PORT: "smtp", RC_CLIENT_ID: CLIENT.clientId, RC_CLIENT_SECRET: CLIENT.clientSecret, RC_JWT: CLIENT.jwt });
    expect(bad.code).toBe(2);
    expect(bad.stdout).toMatch(/^FAIL {2}config: invalid configuration \(1 problem\)/);
    expect(bad.stdout).toContain('smtp.port (env FAXBRIDGE_SMTP_PORT): expected a whole number, got "smtp"');
    expect(bad.stdout).not.toContain(CLIENT.jwt);
  });

  it("warns about a data dir open to other users and one that does not exist yet", async () => {
    const { chmodSync } = await import("node:fs");
    chmodSync(env.FAXBRIDGE_DATA_DIR ?? "", 0o755);
    const open = await doctor({});
    expect(byName(open.checks, "data dir")).toMatchObject({ status: "warn", fix: expect.stringContaining("chmod 700") });
    const fresh = await doctor({ FAXBRIDGE_DATA_DIR: join(dir.path, "not-yet") });
    expect(fresh.code).toBe(0);
    expect(byName(fresh.checks, "data dir")).toMatchObject({ status: "warn", message: expect.stringContaining("does not exist yet") });
    expect(byName(fresh.checks, "database")).toBeUndefined();
  });

  it("warns about failed jobs and received faxes that could not be mailed", async () => {
    const dataDir = env.FAXBRIDGE_DATA_DIR ?? "";
    const stores = await openTestStores(dataDir);
    try {
      const job = await stores.outbound.insertReceived({
        id: newId(),
        mailFrom: "a@example.com",
        rcptTo: [{ address: "15551234567@fax.local", e164: "+15551234567", options: {} }],
        mailKey: "msg/x.eml",
        size: 1,
        client: { ip: "127.0.0.1" },
      });
      await stores.outbound.transition(job.id, "received", "failed", { errorCode: "x", errorText: "y" });
      const now = Date.now();
      const [fax] = await stores.inbound.recordSync("~", { syncToken: "t", syncTime: null, lastFullSyncAt: now }, [
        { extension: "~", rcMessageId: "77", message: { from: "+15557654321", to: ["+15551230000"], creationTime: new Date(now).toISOString(), attachments: [] } },
      ], now);
      await stores.inbound.markDead(fax?.id ?? "", "mailbox unknown", now);
    } finally {
      await stores.close();
    }
    const r = await doctor({});
    expect(r.code).toBe(0);
    expect(byName(r.checks, "queue")).toMatchObject({ status: "warn", fix: expect.stringContaining("faxbridge queue list --state failed") });
    expect(byName(r.checks, "inbound")).toMatchObject({ status: "warn", fix: expect.stringContaining("faxbridge inbound redeliver ID") });
  });

  it("prints its help", async () => {
    const r = await cli(["doctor", "--help"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("usage: faxbridge doctor");
  });
});

describe("doctor's configuration checks", () => {
  const config = (env: Record<string, string>) => loadConfig({ env });

  it("says who may fax when the SMTP port is exposed", () => {
    expect(checkSmtpExposure(config({}))[0]?.status).toBe("ok");
    const lan = checkSmtpExposure(config({ FAXBRIDGE_SMTP_HOST: "0.0.0.0", FAXBRIDGE_SMTP_ALLOW_UNAUTHENTICATED_FROM: "127.0.0.0/8,10.0.0.0/8" }))[0];
    expect(lan?.status).toBe("warn");
    expect(lan?.message).toContain("lets 10.0.0.0/8 send without a password");
    expect(lan?.message).toContain("never relays mail for other domains (only fax.local is accepted)");
    const world = checkSmtpExposure(config({ FAXBRIDGE_SMTP_HOST: "0.0.0.0", FAXBRIDGE_SMTP_ALLOW_UNAUTHENTICATED_FROM: "0.0.0.0/0" }))[0];
    expect(world?.status).toBe("FAIL");
    expect(world?.message).toContain("ANY address");
    const locked = checkSmtpExposure(config({ FAXBRIDGE_SMTP_HOST: "0.0.0.0", FAXBRIDGE_SMTP_ALLOW_UNAUTHENTICATED_FROM: "127.0.0.1/32" }))[0];
    expect(locked?.status).toBe("warn");
    expect(locked?.message).toContain("no remote client can send");
  });

  it("checks the webhook URL", () => {
    const creds = { RC_CLIENT_ID: "id", RC_CLIENT_SECRET: "secret", RC_JWT: "jwt" };
    expect(checkWebhook(config({}))).toBeUndefined();
    // "webhook" without a URL is a configuration error (run refuses it too: src/config/resolve.ts), not a doctor finding.
    expect(() => config({ ...creds, FAXBRIDGE_INBOUND_NOTIFICATIONS: "webhook" })).toThrow(/inbound\.notifications \(env FAXBRIDGE_INBOUND_NOTIFICATIONS\): "webhook" needs inbound\.webhookUrl/);
    expect(checkWebhook(config({ ...creds, FAXBRIDGE_INBOUND_WEBHOOK_URL: "http://fax.example.com/webhook/ringcentral" }))).toMatchObject({
      status: "FAIL",
      message: expect.stringContaining("only to https URLs"),
    });
    expect(checkWebhook(config({ ...creds, FAXBRIDGE_INBOUND_WEBHOOK_URL: "https://10.1.2.3/webhook/ringcentral" }))?.message).toContain("cannot reach");
    expect(
      checkWebhook(config({ ...creds, FAXBRIDGE_INBOUND_WEBHOOK_URL: "https://fax.example.com/webhook/ringcentral", FAXBRIDGE_INBOUND_VERIFICATION_TOKEN: "t0ken-long-enough" }))?.status,
    ).toBe("ok");
    // The sandbox may use plain http on loopback.
    expect(checkWebhook(config({ FAXBRIDGE_INBOUND_WEBHOOK_URL: "http://127.0.0.1:8025/webhook/ringcentral", FAXBRIDGE_INBOUND_VERIFICATION_TOKEN: "x" }))?.status).toBe("ok");
  });
});
