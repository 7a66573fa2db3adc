import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { silentLogger } from "../../src/log.js";
import { ensureBuilt } from "../helpers/build.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { cli, cliJson, sandboxConfig } from "./helpers.js";
import { renderablePdf } from "../helpers/pdf.js";
import { untagged } from "../../src/outbound/tag.js";

const pdf = renderablePdf;

interface SentFax {
  to: { phoneNumber: string }[];
  coverPageText: string | null;
  attachments: { filename: string; contentType: string }[];
}

describe("faxbridge send and inbound, against a running sandbox daemon", () => {
  let dir: ReturnType<typeof tempDir>;
  let daemon: Daemon | undefined;
  let env: Record<string, string>;
  let dataDir: string;

  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);

  beforeEach(() => {
    dir = tempDir();
    dataDir = join(dir.path, "data");
    env = { FAXBRIDGE_DATA_DIR: dataDir };
  });

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    dir.cleanup();
  });

  it("send queues a fax without email; the running daemon faxes it", async () => {
    daemon = await startDaemon(sandboxConfig(dataDir), { logger: silentLogger() });
    const emulator = daemon.emulatorUrl ?? "";
    const file = join(dir.path, "contract.pdf");
    writeFileSync(file, pdf());
    const notes = join(dir.path, "notes.txt");
    writeFileSync(notes, "second document\n");

    const r = await cli(["send", "--to", "+15551234567", "--to", "(555) 123-4568", "--cover-text", "Please sign", file, notes], env);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    const id = /queued as (\S+)/.exec(r.stdout)?.[1] ?? "";
    expect(id).not.toBe("");

    const sent = await waitFor(
      async () => {
        const list = (await (await fetch(`${emulator}/emulator/sent-faxes`)).json()) as SentFax[];
        return list.length > 0 ? list : undefined;
      },
      20_000,
      "the fax at the emulator",
    );
    expect(sent).toHaveLength(1);
    expect(sent[0]?.to.map((t) => t.phoneNumber).sort()).toEqual(["+15551234567", "+15551234568"]);
    expect(untagged(sent[0]?.coverPageText ?? undefined)).toBe("Please sign");
    expect(sent[0]?.attachments.map((a) => a.filename)).toEqual(["contract.pdf", "notes.txt"]);

    const job = await waitFor(
      async () => {
        const j = await cliJson<{ state: string; rcMessageId: string | null; from: string }>(["queue", "show", id], env);
        return j.rcMessageId !== null ? j : undefined;
      },
      20_000,
      "the job to be submitted",
    );
    expect(job.from).toBe("");
    expect(["submitted", "final", "notified"]).toContain(job.state);
  }, 60_000);

  it("send refuses bad numbers, missing files and a bad --notify with exit 2 and queues nothing", async () => {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = join(dir.path, "a.pdf");
    writeFileSync(file, pdf());
    const badNumber = await cli(["send", "--to", "12", file], env);
    expect(badNumber.code).toBe(2);
    expect(badNumber.stderr).toContain('--to "12"');
    expect(badNumber.stderr).toContain("not a dialable fax number");
    const missing = await cli(["send", "--to", "+15551234567", join(dir.path, "nope.pdf")], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("nope.pdf: no such file");
    const noTo = await cli(["send", file], env);
    expect(noTo.code).toBe(2);
    expect(noTo.stderr).toContain("--to NUMBER");
    const badNotify = await cli(["send", "--to", "+15551234567", "--notify", "not-an-address", file], env);
    expect(badNotify.code).toBe(2);
    expect(badNotify.stderr).toContain("is not an email address");
    expect(await cliJson<unknown[]>(["queue", "list"], env)).toEqual([]);
    const help = await cli(["send", "--help"], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--cover-text TEXT");
  });

  it("inbound list shows a received fax the daemon mailed; redeliver queues it again", async () => {
    daemon = await startDaemon(sandboxConfig(dataDir), { logger: silentLogger() });
    const emulator = daemon.emulatorUrl ?? "";
    const res = await fetch(`${emulator}/emulator/inbound-faxes?from=%2B15557654321&to=%2B15551230000`, {
      method: "POST",
      headers: { "content-type": "application/pdf" },
      body: pdf("Incoming"),
    });
    expect(res.status).toBe(200);
    const mailbox = join(dataDir, "mailbox");
    await waitFor(() => existsSync(mailbox) && readdirSync(mailbox).some((f) => f.endsWith(".eml")), 20_000, "the fax mail");
    const delivered = await waitFor(
      async () => {
        const list = await cliJson<{ id: string; state: string; from: string; mailTo: string[] | null }[]>(["inbound", "list"], env);
        return list.find((f) => f.state === "delivered");
      },
      20_000,
      "the fax to be delivered",
    );
    expect(delivered).toMatchObject({ from: "+15557654321", mailTo: ["fax-inbox@localhost"] });

    const table = await cli(["inbound", "list", "--state", "delivered"], env);
    expect(table.stdout).toMatch(/^ID\s+STATE\s+FROM/);
    expect(table.stdout).toContain(delivered.id);

    // Stop the daemon so the state the command leaves is the one we see.
    await daemon.close();
    daemon = undefined;
    const again = await cli(["inbound", "redeliver", delivered.id], env);
    expect({ code: again.code, stderr: again.stderr }).toMatchObject({ code: 0 });
    expect(again.stdout).toContain("(was delivered) is queued to be mailed again; it went to fax-inbox@localhost before");
    const waiting = await cliJson<{ id: string; state: string; attempts: number }[]>(["inbound", "list", "--state", "discovered"], env);
    expect(waiting).toEqual([expect.objectContaining({ id: delivered.id, state: "discovered", attempts: 0 })]);

    const unknown = await cli(["inbound", "redeliver", "0nosuchfax000-00000000"], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no received fax with id");
  }, 60_000);
});
