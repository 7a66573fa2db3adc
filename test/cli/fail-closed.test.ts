import { writeFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { configSchema } from "../../src/config/schema.js";
import { ConfigError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { cli, cliSandbox, sandboxConfig } from "./helpers.js";

/**
 * Issue 8, "fail closed": some but not all RingCentral credentials (or an
 * empty RC_JWT_FILE) used to start a sandbox that mailed real "delivered"
 * reports for faxes never sent. Now `run`, `config --print` and `doctor`
 * all exit 2 naming what is missing; and a sandbox that mails through a
 * real mail server says so in every subject.
 */

const MISSING_SECRET = "ringcentral.clientSecret (missing): RC_CLIENT_SECRET (or RC_CLIENT_SECRET_FILE) is not set, but RC_CLIENT_ID and RC_JWT are";

describe("fail closed on RingCentral credentials", () => {
  let dir: ReturnType<typeof tempDir>;
  let env: Record<string, string>;
  cliSandbox({}, (s) => ({ dir, env } = s));

  it("partial credentials: run, config --print and doctor all exit 2 naming what is missing", async () => {
    const partial = { ...env, RC_CLIENT_ID: "my-app", RC_JWT: "eyJ.secret-jwt.sig" };
    const run = await cli(["run"], partial);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(MISSING_SECRET);
    expect(run.stderr).not.toContain("eyJ.secret-jwt.sig");

    const print = await cli(["config", "--print"], partial);
    expect(print.code).toBe(2);
    expect(print.stderr).toContain(MISSING_SECRET);

    const doctor = await cli(["doctor"], partial);
    expect(doctor.code).toBe(2);
    expect(doctor.stdout).toContain(MISSING_SECRET);

    const idOnly = await cli(["run"], { ...env, RC_CLIENT_ID: "my-app" });
    expect(idOnly.code).toBe(2);
    expect(idOnly.stderr).toContain("invalid configuration (2 problems)");
    expect(idOnly.stderr).toContain("ringcentral.clientSecret (missing): RC_CLIENT_SECRET (or RC_CLIENT_SECRET_FILE) is not set, but RC_CLIENT_ID is");
    expect(idOnly.stderr).toContain("ringcentral.jwt (missing): RC_JWT (or RC_JWT_FILE) is not set, but RC_CLIENT_ID is");
  }, 60_000);

  it("an empty RC_JWT_FILE is an error, not a missing credential that means sandbox", async () => {
    const jwtFile = join(dir.path, "rc_jwt");
    writeFileSync(jwtFile, "\n");
    for (const extra of [{}, { RC_CLIENT_ID: "my-app", RC_CLIENT_SECRET: "s3cret" }]) {
      const r = await cli(["run"], { ...env, ...extra, RC_JWT_FILE: jwtFile });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`ringcentral.jwt (env RC_JWT_FILE): the file it names (${jwtFile}) is empty`);
      expect(r.stderr).not.toContain("s3cret");
    }
  }, 60_000);

  it("a daemon built from a config in code refuses partial credentials too", async () => {
    const config = configSchema.parse({ dataDir: join(dir.path, "data"), ringcentral: { clientId: "id", jwt: "jwt" } });
    await expect(startDaemon(config, { logger: silentLogger() })).rejects.toThrow(ConfigError);
  });
});

describe("sandbox with a real mail server", () => {
  let dir: ReturnType<typeof tempDir>;
  let sink: SmtpSink;
  let daemon: Daemon | undefined;

  beforeEach(async () => {
    dir = tempDir();
    sink = await new SmtpSink().start();
  });

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    await sink.close();
    dir.cleanup();
  });

  it("says [SANDBOX, not faxed] in every subject it mails", async () => {
    daemon = await startDaemon(sandboxConfig(join(dir.path, "data"), { FAXBRIDGE_MAIL_URL: sink.url, FAXBRIDGE_FAX_NOTIFY_ON_ACCEPT: "true" }), {
      logger: silentLogger(),
    });
    const client = nodemailer.createTransport({ host: "127.0.0.1", port: daemon.smtp.port, secure: false, ignoreTLS: true });
    try {
      await client.sendMail({ from: "alice@example.com", to: "15551234567@fax.local", subject: "Signed contract", text: "Please fax this." });
    } finally {
      client.close();
    }
    const res = await fetch(`${daemon.emulatorUrl ?? ""}/emulator/inbound-faxes?from=%2B15557654321&to=%2B15551230000`, {
      method: "POST",
      headers: { "content-type": "application/pdf" },
      body: "%PDF-1.4\n%%EOF\n",
    });
    expect(res.status).toBe(200);
    // The acceptance notice and the final report to alice, and the received fax to the inbox.
    await waitFor(() => sink.messages.length >= 3, 30_000, "three mails at the sink");
    const subjects = sink.messages.map((m) => m.parsed.subject ?? "");
    expect(subjects.length).toBeGreaterThanOrEqual(3);
    for (const s of subjects) expect(s).toMatch(/^\[SANDBOX, not faxed\] \S/);
    expect(sink.messages.some((m) => m.to.includes("fax-inbox@localhost"))).toBe(true);
  }, 60_000);
});
