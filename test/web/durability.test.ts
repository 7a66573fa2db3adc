import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/smtp/password.js";
import { DaemonProcess } from "../helpers/daemon.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { bearer, faxForm } from "./harness.js";

const TOKEN = "durable-token-0123456789";

describe("POST /api/v1/faxes is durable before 202", () => {
  const dir = tempDir("faxbridge-durable-");
  const daemons: DaemonProcess[] = [];
  afterEach(async () => {
    for (const d of daemons) await d.stop();
    dir.cleanup();
  });

  it("a fax answered 202 survives kill -9 right after the answer and is faxed after the restart", async () => {
    const env = {
      FAXBRIDGE_DATA_DIR: dir.path,
      FAXBRIDGE_API_TOKENS: JSON.stringify([{ name: "ehr", tokenHash: await hashPassword(TOKEN), senders: ["ehr@example.com"] }]),
      FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
      FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "200ms",
    };
    const first = new DaemonProcess(env);
    daemons.push(first);
    await first.start();
    const { httpPort } = await first.started();
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/faxes`, { method: "POST", headers: bearer(TOKEN), body: faxForm({ to: "+15551234567" }) });
    expect(res.status).toBe(202);
    first.kill("SIGKILL");
    await first.exited();
    const id = ((await res.json()) as { id: string }).id;

    const second = new DaemonProcess(env);
    daemons.push(second);
    await second.start();
    const port = (await second.started()).httpPort;
    const done = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/api/v1/faxes/${id}`, { headers: bearer(TOKEN) });
        const f = (await r.json()) as { state: string; recipients: { status: string }[] };
        return f.state === "notified" ? f : undefined;
      },
      { timeoutMs: 30_000, maxIntervalMs: 500 },
      "the fax to finish after the restart",
    );
    expect(done.recipients[0]?.status).toBe("Sent");
  }, 90_000);
});
