import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/smtp/password.js";
import { startIntake, type Intake } from "../helpers/smtp-intake.js";
import { hasOpenssl, selfSignedCert } from "../helpers/tls.js";

describe.skipIf(!hasOpenssl())("SMTP with STARTTLS", () => {
  let dir: string | undefined;
  let intake: Intake | undefined;

  afterEach(async () => {
    await intake?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("advertises STARTTLS with a configured certificate and takes authenticated mail over TLS", async () => {
    dir = await mkdtemp(join(tmpdir(), "faxbridge-tls-"));
    const { key, cert } = selfSignedCert(dir);
    intake = await startIntake({
      dir,
      policy: false,
      smtp: { tlsKey: key, tlsCert: cert, allowUnauthenticatedFrom: [], users: [{ username: "frontdesk", passwordHash: await hashPassword("correct horse") }] },
    });
    const { port, store } = intake;

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
