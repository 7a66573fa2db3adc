import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/smtp/password.js";
import { DaemonProcess } from "../helpers/daemon.js";
import { tempDir } from "../helpers/tmp.js";

const TOKEN = "stream-token-0123456789";
const MB = 1024 * 1024;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

/** A multipart body generated on the fly: `size` bytes of document, never in memory at once. */
function streamingForm(boundary: string, size: number): ReadableStream<Uint8Array> {
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="to"\r\n\r\n+15551234567\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n`,
  );
  const tail = Buffer.from(`\n%%EOF\r\n--${boundary}--\r\n`);
  const chunk = Buffer.alloc(256 * 1024, "0123456789abcdef");
  let sent = 0;
  let stage = 0;
  return new ReadableStream({
    pull(controller) {
      if (stage === 0) {
        controller.enqueue(head);
        stage = 1;
      } else if (stage === 1) {
        const n = Math.min(chunk.length, size - sent);
        controller.enqueue(chunk.subarray(0, n));
        sent += n;
        if (sent >= size) stage = 2;
      } else {
        controller.enqueue(tail);
        controller.close();
      }
    },
  });
}

describe.skipIf(process.platform !== "linux")("POST /api/v1/faxes streams uploads to the spool", () => {
  let daemon: DaemonProcess | undefined;
  const dir = tempDir("faxbridge-upload-");
  afterEach(async () => {
    await daemon?.stop();
    dir.cleanup();
  });

  it("a 45 MB upload keeps the daemon's RSS growth under 64 MB", async () => {
    const tokenHash = await hashPassword(TOKEN);
    daemon = await new DaemonProcess({
      FAXBRIDGE_DATA_DIR: dir.path,
      FAXBRIDGE_API_TOKENS: JSON.stringify([{ name: "big", tokenHash, senders: ["big@example.com"] }]),
      FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
      FAXBRIDGE_LOG_LEVEL: "info",
    }).start();
    const { httpPort } = await daemon.started().catch(async () => {
      throw new Error(daemon?.tail() ?? "");
    });
    const base = `http://127.0.0.1:${httpPort}`;
    // Warm up (first request loads the web modules' lazy parts), then measure.
    const warm = new FormData();
    warm.append("to", "+15551234567");
    warm.append("file", new Blob([Buffer.from("%PDF-1.4\n%%EOF\n")], { type: "application/pdf" }), "w.pdf");
    expect((await fetch(`${base}/api/v1/faxes`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: warm })).status).toBe(202);
    const pid = daemon.pid;
    const baseline = rssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(pid));
    }, 25);
    const boundary = "----faxbridge-stream-test";
    const res = await fetch(`${base}/api/v1/faxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": `multipart/form-data; boundary=${boundary}` },
      body: streamingForm(boundary, 45 * MB),
      duplex: "half",
    } as RequestInit);
    const body = (await res.json()) as { id?: string };
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(pid));
    expect(res.status).toBe(202);
    expect(body.id).toMatch(/\S/);
    const growth = peak - baseline;
    expect(growth).toBeLessThan(64 * MB);
  }, 120_000);
});
