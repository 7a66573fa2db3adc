import { readFile, readdir, rm, writeFile } from "node:fs/promises";
import nodemailer from "nodemailer";
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Config } from "../../src/config/schema.js";
import { Metrics } from "../../src/metrics.js";
import { hashPassword } from "../../src/smtp/password.js";
import { failure, type SmtpFailure } from "../helpers/smtp-failure.js";
import { startIntake, type Intake } from "../helpers/smtp-intake.js";

const MESSAGE = "From: alice@example.com\r\nTo: fax\r\nSubject: invoice\r\nMessage-ID: <m1@example.com>\r\n\r\nPlease fax this.\r\n";

type Harness = Intake & { accepted: string[] };

describe("SMTP intake", () => {
  let h: Harness | undefined;
  const clients: { close(): void }[] = [];

  async function start(smtp: Partial<Config["smtp"]> = {}): Promise<Harness> {
    const accepted: string[] = [];
    const intake = await startIntake({ smtp, policy: false, metrics: new Metrics(), onAccepted: (id) => accepted.push(id) });
    h = { ...intake, accepted };
    return h;
  }

  function transport(port: number, auth?: { user: string; pass: string }, host = "127.0.0.1") {
    const t = nodemailer.createTransport({ host, port, secure: false, ignoreTLS: true, ...(auth && { auth }) });
    clients.push(t);
    return t;
  }

  async function connection(port: number): Promise<SMTPConnection> {
    const c = new SMTPConnection({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
    clients.push(c);
    await new Promise<void>((resolve, reject) => c.connect((err) => (err ? reject(err) : resolve())));
    return c;
  }

  function send(c: SMTPConnection, envelope: { from: string; to: string[] }, message: string | Buffer): Promise<SMTPConnection.SentMessageInfo> {
    return new Promise((resolve, reject) => c.send(envelope, message, (err, info) => (err ? reject(err) : resolve(info))));
  }

  beforeEach(() => {
    h = undefined;
  });

  it("greets once with its name and the product, without repeating itself", async () => {
    const { port } = await start();
    const { connect } = await import("node:net");
    const socket = connect(port, "127.0.0.1");
    const greeting = await new Promise<string>((resolve, reject) => {
      socket.once("data", (d: Buffer) => resolve(d.toString("utf8")));
      socket.once("error", reject);
    });
    socket.destroy();
    expect(greeting.trim()).toBe("220 fax.test ESMTP faxbridge");
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    if (h !== undefined) {
      await h.close();
      await rm(h.dir, { recursive: true, force: true });
    }
  });

  it("answers 250 with the queue id only once the message is on disk and in the store", async () => {
    const { port, store, spool, accepted, metrics } = await start();
    const info = await transport(port).sendMail({ envelope: { from: "alice@example.com", to: ["+1-202-555-0143/res=low@fax.local"] }, raw: MESSAGE });
    const m = /^250 2\.6\.0 Queued as (\S+)$/.exec(info.response);
    expect(m).not.toBeNull();
    const id = m?.[1] as string;
    // Checked right after the reply arrived: both durable steps happened before it.
    const job = await store.get(id);
    expect(job).toMatchObject({
      state: "received",
      mailFrom: "alice@example.com",
      rcptTo: [{ address: "+1-202-555-0143/res=low@fax.local", e164: "+12025550143", options: { resolution: "Low" } }],
      mailKey: `msg/${id}.eml`,
      size: Buffer.byteLength(MESSAGE),
      client: { ip: "127.0.0.1" },
    });
    expect(await readFile(spool.messagePath(id), "utf8")).toBe(MESSAGE);
    expect(accepted).toEqual([id]);
    expect((await metrics.mailsReceived.get()).values[0]?.value).toBe(1);
  });

  it("records the null sender as an empty mail_from", async () => {
    const { port, store } = await start();
    const info = await send(await connection(port), { from: "", to: ["12025550143@fax.local"] }, MESSAGE);
    const id = /Queued as (\S+)/.exec(info.response)?.[1] as string;
    expect((await store.get(id))?.mailFrom).toBe("");
  });

  it("refuses a domain that is not a fax domain with 550 (no open relay)", async () => {
    const { port } = await start();
    const err = await failure(transport(port).sendMail({ envelope: { from: "a@example.com", to: ["bob@example.org"] }, raw: MESSAGE }));
    expect(err.response).toBe("550 5.1.1 relay not permitted: example.org is not a fax domain");
  });

  it("refuses a bad fax number with 550 and the parser's reason", async () => {
    const { port } = await start();
    const err = await failure(transport(port).sendMail({ envelope: { from: "a@example.com", to: ["123@fax.local"] }, raw: MESSAGE }));
    expect(err.response).toBe(
      "550 5.1.1 123 (read as a US number) is not a dialable fax number: wrong length for its country; " +
        "+123 (read with a leading country code) is not a dialable fax number: wrong length for its country",
    );
    const err2 = await failure(transport(port).sendMail({ envelope: { from: "a@example.com", to: ["12025550143/cover=99@fax.local"] }, raw: MESSAGE }));
    expect(err2.response).toBe("550 5.1.1 address option cover=99 is not allowed: use a cover page number from 0 (none) to 28");
  });

  it("takes digits-only international numbers (442079460000, 00…, 011…) and names both readings when refusing", async () => {
    const { port, store } = await start();
    const info = await transport(port).sendMail({
      envelope: { from: "a@example.com", to: ["442079460000@fax.local", "011442079460011@fax.local"] },
      raw: MESSAGE,
    });
    const id = /Queued as (\S+)/.exec(info.response)?.[1] as string;
    expect((await store.get(id))?.rcptTo.map((r) => r.e164)).toEqual(["+442079460000", "+442079460011"]);
    const err = await failure(transport(port).sendMail({ envelope: { from: "a@example.com", to: ["44207946@fax.local"] }, raw: MESSAGE }));
    expect(err.response).toBe(
      "550 5.1.1 44207946 (read as a US number) is not a dialable fax number: wrong length for its country; " +
        "+44207946 (read with a leading country code) is not a dialable fax number: wrong length for its country",
    );
  });

  it("refuses recipients past smtp.maxRecipients with 452 and keeps the others", async () => {
    const { port, store } = await start({ maxRecipients: 2 });
    const info = await transport(port).sendMail({
      envelope: { from: "a@example.com", to: ["12025550143@fax.local", "+442071838750@fax.local", "12025550199@fax.local"] },
      raw: MESSAGE,
    });
    expect(info.rejected).toEqual(["12025550199@fax.local"]);
    expect((info.rejectedErrors?.[0] as SmtpFailure | undefined)?.response).toBe("452 4.2.2 too many recipients");
    const id = /Queued as (\S+)/.exec(info.response)?.[1] as string;
    expect((await store.get(id))?.rcptTo.map((r) => r.e164)).toEqual(["+12025550143", "+442071838750"]);
  });

  it("refuses a message over the size limit with 552 after reading it, without hanging", async () => {
    const { port, store, spool } = await start({ maxMessageBytes: 10_000 });
    const c = await connection(port);
    // smtp-connection sends no SIZE= here, so the server only finds out while reading DATA.
    const big = MESSAGE + "x".repeat(50_000) + "\r\n";
    const err = await failure(send(c, { from: "a@example.com", to: ["12025550143@fax.local"] }, big));
    expect(err.response).toBe("552 5.2.2 message exceeds fixed maximum message size 10000");
    expect(await store.list()).toEqual([]);
    expect(await readdir(spool.tmpDir)).toEqual([]);
    expect(await readdir(spool.msgDir)).toEqual([]);
    // The session is still usable.
    const ok = await send(c, { from: "a@example.com", to: ["12025550143@fax.local"] }, MESSAGE);
    expect(ok.response).toMatch(/^250 2\.6\.0 Queued as /);
  });

  it("refuses a declared SIZE over the limit at MAIL FROM", async () => {
    const { port } = await start({ maxMessageBytes: 10_000 });
    const err = await failure(transport(port).sendMail({ envelope: { from: "a@example.com", to: ["12025550143@fax.local"] }, raw: MESSAGE + "x".repeat(20_000) }));
    expect(err.responseCode).toBe(552);
  });

  it("requires AUTH from clients outside allowUnauthenticatedFrom (530)", async () => {
    const { port } = await start({ allowUnauthenticatedFrom: [] });
    const err = await failure(transport(port).sendMail({ envelope: { from: "a@example.com", to: ["12025550143@fax.local"] }, raw: MESSAGE }));
    expect(err.response).toBe("530 5.7.0 Authentication required");
  });

  it("accepts a user with a scrypt hash and records who sent the mail", async () => {
    const passwordHash = await hashPassword("correct horse");
    const { port, store } = await start({ allowUnauthenticatedFrom: [], users: [{ username: "scanner", passwordHash }] });
    const info = await transport(port, { user: "scanner", pass: "correct horse" }).sendMail({
      envelope: { from: "scanner@example.com", to: ["12025550143@fax.local"] },
      raw: MESSAGE,
    });
    const id = /Queued as (\S+)/.exec(info.response)?.[1] as string;
    expect((await store.get(id))?.client).toEqual({ ip: "127.0.0.1", user: "scanner" });
  });

  it("refuses bad credentials with 535, for known and unknown users alike", async () => {
    const passwordHash = await hashPassword("correct horse");
    const { port } = await start({ allowUnauthenticatedFrom: [], users: [{ username: "scanner", passwordHash }] });
    for (const auth of [
      { user: "scanner", pass: "wrong" },
      { user: "nobody", pass: "correct horse" },
    ]) {
      const err = await failure(transport(port, auth).sendMail({ envelope: { from: "a@example.com", to: ["12025550143@fax.local"] }, raw: MESSAGE }));
      expect(err.response).toBe("535 5.7.8 Authentication credentials invalid");
    }
  });

  it("answers 451 when the spool cannot be written, and queues nothing", async () => {
    const { port, store, spool } = await start();
    await rm(spool.tmpDir, { recursive: true });
    await writeFile(spool.tmpDir, "a file where the tmp directory should be");
    const err = await failure(transport(port).sendMail({ envelope: { from: "a@example.com", to: ["12025550143@fax.local"] }, raw: MESSAGE }));
    expect(err.response).toBe("451 4.3.0 Local error in processing, try again later");
    expect(await store.list()).toEqual([]);
  });

  it("answers 421 to new mail once close() has started", async () => {
    const harness = await start();
    const c = await connection(harness.port);
    const closing = harness.server.close(5_000);
    expect(harness.server.closing).toBe(true);
    const err = await failure(send(c, { from: "a@example.com", to: ["12025550143@fax.local"] }, MESSAGE));
    expect(err.response).toBe("421 4.4.2 Server shutting down");
    c.close();
    await closing;
    expect(await harness.store.list()).toEqual([]);
  });
});
