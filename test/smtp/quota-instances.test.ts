/**
 * Quotas across instances (issue 11): two SMTP listeners, each with its own
 * stores and data directory, on one PostgreSQL database, as two faxbridge
 * instances behind one MX. 40 mails race in at once against an hourly quota
 * of 10: exactly 10 are accepted, every other one gets the quota refusal a
 * single instance gives, whichever instance and whichever moment (RCPT or
 * the end of DATA) refused it.
 */
import nodemailer from "nodemailer";
import { afterEach, expect, it } from "vitest";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { refusalCount, startIntake, type Intake } from "../helpers/smtp-intake.js";
import { tempDir } from "../helpers/tmp.js";

function message(from: string, i: number): string {
  return `From: ${from}\r\nTo: fax\r\nSubject: race ${i}\r\nMessage-ID: <race-${i}-${Math.random().toString(36).slice(2)}@example.com>\r\n\r\nPlease fax this.\r\n`;
}

async function send(port: number, from: string, to: string, i: number): Promise<string> {
  const t = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
  try {
    return (await t.sendMail({ envelope: { from, to: [to] }, raw: message(from, i) })).response;
  } catch (err) {
    return (err as { response?: string }).response ?? String(err);
  } finally {
    t.close();
  }
}

describePg("quotas shared by instances on PostgreSQL", () => {
  const db = usePgDatabase();
  const open: Intake[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];

  afterEach(async () => {
    for (const i of open.splice(0)) await i.close();
    for (const d of dirs.splice(0)) d.cleanup();
  });

  async function instance(quotas: Record<string, number>): Promise<Intake> {
    const dir = tempDir("faxbridge-quota-pg-");
    dirs.push(dir);
    const intake = await startIntake({
      dir: dir.path,
      databaseUrl: db.url,
      // Nothing but the quota under test limits the race: no connection caps, no client-IP quota.
      policy: { quotas: { perClientIpPerHour: 0, globalPerHour: 0, perSenderPerHour: 0, ...quotas }, abuse: { connectionsPerMinute: 0, maxConnectionsPerIp: 0 } },
    });
    open.push(intake);
    return intake;
  }

  it("two instances, 40 concurrent mails, a per-sender quota of 10: exactly 10 accepted, 30 refused with the quota reply", async () => {
    const a = await instance({ perSenderPerHour: 10 });
    const b = await instance({ perSenderPerHour: 10 });
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => send((i % 2 === 0 ? a : b).port, "racer@example.com", `120255501${String(i).padStart(2, "0")}@fax.local`, i)));
    const accepted = replies.filter((r) => r.startsWith("250 "));
    const refused = replies.filter((r) => !r.startsWith("250 "));
    expect(accepted).toHaveLength(10);
    expect(refused).toHaveLength(30);
    for (const r of refused) expect(r).toMatch(/^452 4\.2\.2 hourly fax quota of 10 for racer@example\.com reached; try again in (59|60) minutes \(after \d\d:\d\d:\d\d UTC\)$/);
    // Both instances see the same ten jobs, and each refusal was counted by the instance that gave it.
    expect(await a.store.list()).toHaveLength(10);
    expect(await b.store.list()).toHaveLength(10);
    expect((await refusalCount(a.metrics, "quota_sender")) + (await refusalCount(b.metrics, "quota_sender"))).toBe(30);
  });

  it("the global quota holds across instances too, and a third instance starting later counts what the others accepted", async () => {
    const a = await instance({ globalPerHour: 10 });
    const b = await instance({ globalPerHour: 10 });
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => send((i % 2 === 0 ? a : b).port, `s${i}@example.com`, `120255502${String(i).padStart(2, "0")}@fax.local`, i)));
    expect(replies.filter((r) => r.startsWith("250 "))).toHaveLength(10);
    for (const r of replies.filter((x) => !x.startsWith("250 "))) expect(r).toMatch(/^452 4\.2\.2 this gateway's hourly fax quota of 10 is reached; /);
    const c = await instance({ globalPerHour: 10 });
    expect(await send(c.port, "late@example.com", "12025550399@fax.local", 99)).toMatch(/^452 4\.2\.2 this gateway's hourly fax quota of 10 is reached; /);
  });
});
