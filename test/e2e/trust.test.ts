/**
 * Issue 8 end to end: forged senders, forwarding and duplicates through the
 * real SMTP listener, worker, RingCentral emulator and a mail sink. Each test
 * reproduces an attack and checks what reached the emulator
 * (`/emulator/sent-faxes`) and the sink.
 */
import { describe, expect, it } from "vitest";
import { failure } from "../helpers/smtp-failure.js";
import { waitFor } from "../helpers/wait.js";
import { harnessPerTest, makePdf } from "./outbound-harness.js";

const harness = harnessPerTest();

const HEIC = Buffer.from("\0\0\0\x18ftypheic\0\0\0\0mif1heic");

describe("backscatter: reports are not a spam cannon", () => {
  it("a forged sender gets one bounded notice: no file name or mail text in the subject, one envelope recipient", async () => {
    const t = await harness();
    const subject = "S".repeat(300_000);
    const filename = `${"BUY-CHEAP-PILLS-AT-evil.example-".repeat(8)}.heic`;
    const id = await t.send({
      envelope: { from: "victim@example.org", to: ["15551234567@fax.local"] },
      from: "victim@example.org",
      to: "15551234567@fax.local",
      subject,
      attachments: [{ filename, content: HEIC, contentType: "image/heic" }],
    });
    await t.waitState(id, "notified");
    await waitFor(() => t.sink.messages.length === 1, 5000, "the notice");
    const notice = t.sink.messages[0];
    expect(notice?.to).toEqual(["victim@example.org"]);
    expect(notice?.from).toBe("");
    expect(notice?.parsed.subject).toBe("Fax not sent: an attachment is not a supported file type");
    // The sender can recognise the mail, but the notice carries no more of it than that.
    expect(notice?.parsed.text).toContain(`${"S".repeat(119)}…`);
    expect(notice?.parsed.text).not.toContain("S".repeat(121));
    expect(notice?.raw.length).toBeLessThan(16_000);
    expect(await t.sentFaxes()).toHaveLength(0);
  });

  it("rate-limits notices for mails that cost nothing per address (policy.abuse.noticesPerAddressPerHour), tags and case included", async () => {
    const t = await harness({ policy: { abuse: { noticesPerAddressPerHour: 2 } } });
    const ids: string[] = [];
    for (const from of ["victim+1@example.org", "Victim+2@example.org", "victim@Example.org"]) {
      ids.push(
        await t.send({
          envelope: { from, to: ["15551234567@fax.local"] },
          from,
          to: "15551234567@fax.local",
          attachments: [{ filename: "x.heic", content: HEIC, contentType: "image/heic" }],
        }),
      );
    }
    for (const id of ids) await t.waitState(id, "notified");
    expect(t.sink.messages).toHaveLength(2);
    expect(t.events("report.rate_limited")).toHaveLength(1);
    const limited = await t.job(ids[2] as string);
    expect(limited.faxRequest).toMatchObject({ report: { outcome: "suppressed", detail: "notice rate limit" } });
    expect(await t.sentFaxes()).toHaveLength(0);
  });
});

describe("forwarding (X-Fax-Forward-Of) end to end", () => {
  it("a sender resends its own fax; another sender's attempt on the same id is refused at SMTP time and never reaches RingCentral", async () => {
    const t = await harness({ policy: {} });
    const id = await t.send({ envelope: { from: "alice@example.com", to: ["15551234567@fax.local"] }, attachments: [{ filename: "a.pdf", content: makePdf() }] });
    const job = await t.waitState(id, "notified");
    const rcId = job.rcMessageId as string;
    expect(rcId).toMatch(/^\d+$/);
    await waitFor(() => t.sink.messages.length === 1, 5000, "alice's report");

    const err = await failure(
      t.send({ envelope: { from: "mallory@example.net", to: ["15557654321@fax.local"] }, from: "mallory@example.net", headers: { "X-Fax-Forward-Of": rcId }, text: "" }),
    );
    expect((err as { response?: string }).response).toBe(
      `550 5.7.1 you may forward only faxes this gateway sent for you or received faxes mailed to you; fax ${rcId} is neither`,
    );
    expect(await t.sentFaxes()).toHaveLength(1);

    const again = await t.send({ envelope: { from: "Alice+resend@example.com", to: ["15557654321@fax.local"] }, headers: { "X-Fax-Forward-Of": rcId }, text: "" });
    await t.waitState(again, "notified");
    const sent = await t.sentFaxes();
    expect(sent).toHaveLength(2);
    expect(sent[1]?.originalMessageId).toBe(rcId);
  });
});

describe("duplicate suppression keys on the sender too", () => {
  it("whoever learns a Message-ID cannot cancel someone else's fax; the same sender's retry is still one fax", async () => {
    const t = await harness();
    const mail = (from: string) => ({
      envelope: { from, to: ["15551234567@fax.local"] },
      from,
      messageId: "<contract-42@example.com>",
      attachments: [{ filename: "a.pdf", content: makePdf() }],
    });
    const mallory = await t.send(mail("mallory@example.net"));
    await t.waitState(mallory, "notified");
    const alice = await t.send(mail("alice@example.com"));
    await t.waitState(alice, "notified");
    const retry = await t.send(mail("alice+retry@example.com"));
    const cancelled = await t.waitState(retry, "cancelled");
    expect(cancelled.errorText).toBe(`duplicate of ${alice}`);
    expect(await t.sentFaxes()).toHaveLength(2);
  });
});
