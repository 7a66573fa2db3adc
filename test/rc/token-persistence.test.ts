/**
 * The token pair outlives restarts: a second client (a restart, or doctor)
 * reuses it instead of logging in again, so restarts do not burn
 * RingCentral's Auth group (5 logins a minute). Real emulator over HTTP.
 */
import { afterEach, describe, expect, it } from "vitest";
import fs from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { RingCentralClient, type RcCall } from "../../src/rc/client.js";
import { TOKEN_FILE, tokenFileStore } from "../../src/rc/token-file.js";
import { tempDir } from "../helpers/tmp.js";
import { capturingLogger } from "../helpers/log.js";

const CREDS = { clientId: "persist-client", clientSecret: "persist-secret-value", jwt: "eyJ.persist-jwt.sig" };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function emulator(): Promise<Emulator> {
  const emu = await startEmulator({ strictAuth: CREDS });
  cleanups.push(() => emu.close());
  return emu;
}

function client(emu: Emulator, dataDir: string, extra: { jwt?: string; lines?: string[]; calls?: RcCall[] } = {}): RingCentralClient {
  const lines = extra.lines ?? [];
  const creds = { serverUrl: emu.url, ...CREDS, ...(extra.jwt !== undefined ? { jwt: extra.jwt } : {}) };
  const c = new RingCentralClient({
    ...creds,
    logger: capturingLogger("debug", { raw: lines }),
    tokenStore: tokenFileStore(dataDir, creds),
    retry: { attempts: 1 },
    onCall: (call) => extra.calls?.push(call),
  });
  cleanups.push(() => c.close());
  return c;
}

async function tokenCalls(emu: Emulator): Promise<number> {
  const res = await request(`${emu.url}/emulator/calls`);
  const body = (await res.body.json()) as { byRoute: Record<string, number> };
  return body.byRoute["POST /restapi/oauth/token"] ?? 0;
}

describe("RingCentral token persistence", () => {
  it("a restarted client reuses the stored pair: one login for three runs, file mode 0600, no token in logs", async () => {
    const emu = await emulator();
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const lines: string[] = [];
    const first = client(emu, dir.path, { lines });
    await first.listCoverPages();
    await first.close(); // keeps the session instead of revoking it
    const file = join(dir.path, TOKEN_FILE);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(fs.readFileSync(file, "utf8")) as { token: { accessToken: string; refreshToken: string } };

    for (let run = 0; run < 2; run++) {
      const next = client(emu, dir.path, { lines });
      expect((await next.listCoverPages()).length).toBeGreaterThan(0);
      await next.close();
    }
    expect(await tokenCalls(emu)).toBe(1);
    const log = lines.join("");
    expect(log).not.toContain(stored.token.accessToken);
    expect(log).not.toContain(stored.token.refreshToken);
    expect(log).not.toContain(CREDS.jwt);
  });

  it("a pair stored for other credentials is not used; a dead stored pair falls back to a JWT login", async () => {
    const emu = await emulator();
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const first = client(emu, dir.path);
    await first.listCoverPages();
    await first.close();
    // Different JWT: the binding differs, so the stored pair is ignored (and this JWT is refused).
    const other = client(emu, dir.path, { jwt: "eyJ.other.sig" });
    await expect(other.listCoverPages()).rejects.toThrow();
    // The emulator restarted (sessions gone): the stored tokens are dead; the client logs in again.
    const emu2 = await emulator();
    const store = tokenFileStore(dir.path, { serverUrl: emu2.url, ...CREDS });
    const old = tokenFileStore(dir.path, { serverUrl: emu.url, ...CREDS }).load();
    expect(old).toBeDefined();
    if (old !== undefined) store.save(old);
    const again = client(emu2, dir.path);
    expect((await again.listCoverPages()).length).toBeGreaterThan(0);
    // The refresh is refused (the emulator forgot the session), then one JWT login.
    expect(await tokenCalls(emu2)).toBe(2);
  });

  it("a held Auth group is announced at warn with what waits and until when", async () => {
    const emu = await emulator();
    const lines: string[] = [];
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    // Use up the Auth window with fresh clients that each log in (no shared store).
    const logins: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      const d = tempDir();
      cleanups.push(d.cleanup);
      logins.push(client(emu, d.path).login());
    }
    await Promise.all(logins);
    const c = client(emu, dir.path, { lines });
    const pending = c.login().catch(() => undefined);
    const { waitFor } = await import("../helpers/wait.js");
    await waitFor(() => lines.some((l) => /"event":"rc\.(rate_limit_wait|rate_limited|rate_limit_exhausted)"/.test(l)), { timeoutMs: 10_000 });
    const line = lines.find((l) => /rate_limit_(wait|exhausted)|rate_limited/.test(l)) ?? "";
    expect(line).toContain('"level":"warn"');
    expect(line).toMatch(/"until":"\d{4}-\d\d-\d\dT/);
    await c.close();
    await pending;
  });
});
