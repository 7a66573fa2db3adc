/**
 * Issue 12, sender experience, end to end: nodemailer → our SMTP listener →
 * worker → RingCentral emulator, and the sender report → SMTP sink.
 */
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { makePdf, OutboundHarness, type HarnessOptions } from "./outbound-harness.js";

let h: OutboundHarness | undefined;

async function harness(opts: HarnessOptions = {}): Promise<OutboundHarness> {
  h = await new OutboundHarness(opts).start();
  return h;
}

afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("sender experience (issue 12)", () => {
  it("sends X-Fax-Iso-Code as isoCode in RingCentral's multipart/mixed layout (ringcentral.faxLayout: mixed)", async () => {
    const t = await harness({ faxLayout: "mixed", fax: { isoCode: "US" } });
    const id = await t.send({
      to: "442079460000@fax.local",
      headers: { "X-Fax-Iso-Code": "gb" },
      attachments: [{ filename: "a.pdf", content: makePdf() }],
    });
    await t.waitState(id, "notified");
    const faxes = await t.sentFaxes();
    expect(faxes[0]).toMatchObject({ layout: "mixed", isoCode: "GB", to: [{ phoneNumber: "+442079460000" }] });
    await waitFor(() => t.sink.messages.length === 1, 5000, "the report");
    expect(t.sink.messages[0]?.parsed.subject).toMatch(/^Fax to \+44 20 7946 0000 /);

    // Without the header the configured fax.isoCode goes out.
    const id2 = await t.send({ to: "15551234567@fax.local", attachments: [{ filename: "b.pdf", content: makePdf() }] });
    await t.waitState(id2, "notified");
    expect((await t.sentFaxes())[1]).toMatchObject({ layout: "mixed", isoCode: "US" });
  });

  it("refuses a malformed X-Fax-Iso-Code with a notice naming the header", async () => {
    const t = await harness();
    const id = await t.send({ to: "15551234567@fax.local", headers: { "X-Fax-Iso-Code": "Britain" }, attachments: [{ filename: "a.pdf", content: makePdf() }] });
    await t.waitState(id, "notified");
    expect(await t.sentFaxes()).toHaveLength(0);
    await waitFor(() => t.sink.messages.length === 1, 5000, "the notice");
    expect(t.sink.messages[0]?.parsed.text).toContain('The X-Fax-Iso-Code header has the value "Britain"');
  });
});
