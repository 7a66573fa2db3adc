import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CLI, ensureBuilt } from "../helpers/build.js";
import { DaemonProcess } from "../helpers/daemon.js";
import { tempDir } from "../helpers/tmp.js";

const execFileP = promisify(execFile);

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("the daemon process", () => {
  let dir: ReturnType<typeof tempDir>;
  let daemon: DaemonProcess | undefined;
  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    dir.cleanup();
  });

  it("starts in sandbox mode without credentials, says so, and answers /healthz", async () => {
    daemon = await new DaemonProcess({ FAXBRIDGE_DATA_DIR: dir.path }).start();
    const { httpPort } = await daemon.started();
    const sandbox = await daemon.waitForLine((l) => l.event === "daemon.sandbox");
    expect(sandbox.msg).toContain("SANDBOX MODE");
    expect(sandbox.msg).toContain("@fax.local");
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(res.status).toBe(200);
  });

  it("stops cleanly on SIGTERM", async () => {
    daemon = await new DaemonProcess({ FAXBRIDGE_DATA_DIR: dir.path }).start();
    await daemon.started();
    daemon.kill("SIGTERM");
    expect(await daemon.exited()).toEqual({ code: 0, signal: null });
    expect(daemon.lines.map((l) => l.event)).toContain("daemon.stopped");
  });

  it("exits 2 with one line per configuration problem", async () => {
    const file = join(dir.path, "bad.yaml");
    writeFileSync(file, "smtp:\n  port: -1\nfax:\n  domains: []\n");
    const r = await cli(["run", "--config", file], { FAXBRIDGE_HTTP_PORT: "http", RC_CLIENT_SECRET: "do-not-print-me" });
    expect(r.code).toBe(2);
    // Three in the settings themselves, and two RingCentral credentials missing beside RC_CLIENT_SECRET: every problem at once.
    expect(r.stderr).toContain("invalid configuration (5 problems)");
    expect(r.stderr).toContain("ringcentral.jwt (missing): RC_JWT (or RC_JWT_FILE) is not set, but RC_CLIENT_SECRET is");
    expect(r.stderr).toContain('http.port (env FAXBRIDGE_HTTP_PORT): expected a whole number, got "http"');
    expect(r.stderr).toMatch(/smtp\.port \(file .*bad\.yaml line 2\): .*\(got -1\)/);
    expect(r.stderr).toMatch(/fax\.domains \(file .*bad\.yaml line 4\): /);
    expect(r.stderr).not.toContain("do-not-print-me");
  });

  it("prints the effective configuration with secrets redacted", async () => {
    const r = await cli(["config", "--print"], { RC_CLIENT_ID: "my-app", RC_JWT: "eyJsecret", RC_CLIENT_SECRET: "s3cret" });
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as { ringcentral: Record<string, unknown> };
    expect(printed.ringcentral).toMatchObject({ clientId: "my-app", jwt: "[redacted]", clientSecret: "[redacted]" });
  });

  it("rejects unknown commands with usage and exit 2", async () => {
    const r = await cli(["frobnicate"], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });
});
