import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import { silentLogger } from "../../src/log.js";
import { hashPassword } from "../../src/smtp/password.js";
import { createSmtpServer, type FaxSmtpServer } from "../../src/smtp/server.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!hasOpenssl())("SMTP with STARTTLS", () => {
  let dir: string | undefined;
  let stores: TestStores | undefined;
  let server: FaxSmtpServer | undefined;

  afterEach(async () => {
    await server?.close(100);
    await stores?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("advertises STARTTLS with a configured certificate and takes authenticated mail over TLS", async () => {
    dir = await mkdtemp(join(tmpdir(), "faxbridge-tls-"));
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=fax.test"], { stdio: "ignore" });
    const logger = silentLogger();
    stores = await openTestStores(dir, { logger, groupCommit: "worker" });
    const { outbound: store, spool } = stores;
    const config = configSchema.parse({
      dataDir: dir,
      smtp: { port: 0, hostname: "fax.test", tlsKey: key, tlsCert: cert, allowUnauthenticatedFrom: [], users: [{ username: "frontdesk", passwordHash: await hashPassword("correct horse") }] },
    });
    server = createSmtpServer({ config, spool, store, logger, numberCheck: "possible" });
    const { port } = await server.listen();

    const tls = nodemailer.createTransport({
      host: "127.0.0.1",
      port,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: "frontdesk", pass: "correct horse" },
    });
    const info = await tls.sendMail({ from: "a@example.com", to: "15551234567@fax.local", subject: "s", text: "over TLS" });
    expect(info.response).toMatch(/^250 2\.6\.0 Queued as /);
    const jobs = await store.list();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.client.user).toBe("frontdesk");
    tls.close();

    // Without AUTH the same client is refused: it is not in allowUnauthenticatedFrom.
    const anon = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false } });
    await expect(anon.sendMail({ from: "a@example.com", to: "15551234567@fax.local", text: "x" })).rejects.toMatchObject({ responseCode: 530 });
    anon.close();
  });
});
