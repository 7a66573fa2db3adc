/**
 * The extension pool (src/rc/pool.ts) over real HTTP against the emulator:
 * one RingCentralClient per JWT, sends spread over the members with free
 * Heavy slots, a 429 holding only the member that got it, and the JWT list
 * of RC_JWT.
 */
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import { splitJwts, configSchema } from "../../src/config/schema.js";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import { createLogger } from "../../src/log.js";
import { openRcPool } from "../../src/rc/open-pool.js";
import type { RcPool } from "../../src/rc/pool.js";
import type { RcCall } from "../../src/rc/transport.js";
import { RcApiError } from "../../src/rc/errors.js";
import { runDoctor } from "../../src/cli/doctor.js";
import { loadConfig } from "../../src/config/load.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderablePdf } from "../helpers/pdf.js";
import { tempDir } from "../helpers/tmp.js";

const CLIENT = { clientId: "pool-client-id", clientSecret: "pool-client-secret" };
const JWTS = ["eyJ.pool-member-one.sig", "eyJ.pool-member-two.sig"];

let emu: Emulator | undefined;
let pool: RcPool | undefined;
const dirs: { cleanup: () => void }[] = [];

afterEach(async () => {
  await pool?.close();
  await emu?.close();
  pool = undefined;
  emu = undefined;
  for (const d of dirs.splice(0)) d.cleanup();
});

function pdfFile(): string {
  const dir = tempDir("rc-pool-");
  dirs.push(dir);
  const file = join(dir.path, "fax.pdf");
  writeFileSync(file, renderablePdf());
  return file;
}

async function setup(opts: { jwts?: string[]; heavy?: number; emulator?: EmulatorOptions } = {}): Promise<{ pool: RcPool; calls: { member: number; call: RcCall }[]; emu: Emulator }> {
  emu = await startEmulator({ faxTimings: { queuedMs: 50, pageMs: 50 }, ...opts.emulator });
  const calls: { member: number; call: RcCall }[] = [];
  pool = openRcPool({
    serverUrl: emu.url,
    ...CLIENT,
    jwts: opts.jwts ?? JWTS,
    logger: createLogger({ level: "silent" }),
    requestTimeoutMs: 5_000,
    retry: { baseDelayMs: 10, maxDelayMs: 50 },
    rateLimits: { light: 50, medium: 40, heavy: opts.heavy ?? 10, auth: 5, windowSeconds: 60 },
    mediaOrigins: [emu.mediaUrl],
    onCall: (call, m) => calls.push({ member: m.index, call }),
  }).pool;
  return { pool, calls, emu };
}

async function fault(e: Emulator, body: unknown): Promise<void> {
  const res = await request(`${e.url}/emulator/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  await res.body.dump();
  expect(res.statusCode).toBeLessThan(300);
}

const sends = (calls: { member: number; call: RcCall }[], member: number): number =>
  calls.filter((c) => c.member === member && c.call.operation === "createFaxMessage").length;

describe("RcPool", () => {
  it("sends go to the member with the most free Heavy slots", async () => {
    const file = pdfFile();
    const { pool: p, calls } = await setup();
    const doc = [{ path: file, filename: "fax.pdf", contentType: "application/pdf" }];
    const to = (n: number) => ({ to: [{ phoneNumber: `+1555123${String(n).padStart(4, "0")}` }] });
    // the first member has used 3 of its 10 Heavy slots, the second none
    for (const n of [1, 2, 3]) await p.members[0]?.sendFax(to(n), doc);
    expect(p.memberStates().map((m) => m.state.Heavy.remaining)).toEqual([7, 10]);
    const results = await Promise.all([4, 5, 6, 7].map((n) => p.sendFax(to(n), doc)));
    // 10, 9, 8 free on the second beat 7 on the first; at 7 against 7 they take turns
    expect(sends(calls, 1)).toBe(3);
    expect(sends(calls, 0)).toBe(4);
    expect(p.memberStates().map((m) => m.state.Heavy.remaining)).toEqual([6, 7]);
    for (const r of results) expect(r.extensionId).toBeDefined();
    expect(p.rateLimitState().Heavy).toMatchObject({ limit: 20, remaining: 13, heldUntil: 0 });
  });

  it("a 429 holds only the member that got it; its send moves to the other, which keeps sending", async () => {
    const file = pdfFile();
    const { pool: p, calls, emu: e } = await setup();
    const doc = [{ path: file, filename: "fax.pdf", contentType: "application/pdf" }];
    await p.ensureAuthenticated();
    await fault(e, { path: "/fax", group: "Heavy", count: 1, kind: "429", retryAfter: 60 });
    const started = Date.now();
    const first = await p.sendFax({ to: [{ phoneNumber: "+15551230002" }] }, doc);
    const heldMember = calls.find((c) => c.call.status === 429)?.member;
    expect(heldMember).toBeDefined();
    const other = heldMember === 0 ? 1 : 0;
    // RingCentral did not take it (429): the other member sent it at once
    expect(calls.filter((c) => c.call.operation === "createFaxMessage").map((c) => [c.member, c.call.status])).toEqual([
      [heldMember, 429],
      [other, 200],
    ]);
    expect(first.extensionId).toBe(p.memberIds()[other]);
    const held = p.memberStates()[heldMember ?? 0]?.state.Heavy.heldUntil ?? 0;
    expect(held).toBeGreaterThan(Date.now() + 30_000);
    // the pool as a whole is not held: the worker keeps claiming sends
    expect(p.rateLimitState().Heavy.heldUntil).toBe(0);
    expect(p.rateLimitState().Heavy.remaining).toBeGreaterThan(0);

    for (const n of [3, 4, 5]) await p.sendFax({ to: [{ phoneNumber: `+1555123000${n}` }] }, doc);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(sends(calls, other)).toBe(4);
    expect(sends(calls, heldMember ?? 0)).toBe(1);
  });

  it("a 429 when every member is busy reaches the caller (the queue retries later)", async () => {
    const file = pdfFile();
    const { pool: p, emu: e } = await setup();
    const doc = [{ path: file, filename: "fax.pdf", contentType: "application/pdf" }];
    await p.ensureAuthenticated();
    await fault(e, { path: "/fax", group: "Heavy", count: 2, kind: "429", retryAfter: 60 });
    const err = await p.sendFax({ to: [{ phoneNumber: "+15551230009" }] }, doc).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(RcApiError);
    expect((err as RcApiError).status).toBe(429);
    expect(p.rateLimitState().Heavy.heldUntil).toBeGreaterThan(Date.now() + 30_000);
  });

  it("routes calls about a sent fax to the member that sent it, and finds a message by id in any member", async () => {
    const file = pdfFile();
    const { pool: p, calls } = await setup();
    const doc = [{ path: file, filename: "fax.pdf", contentType: "application/pdf" }];
    const sent = await p.sendFax({ to: [{ phoneNumber: "+15551230006" }] }, doc);
    const sender = calls.find((c) => c.call.operation === "createFaxMessage")?.member ?? -1;
    calls.length = 0;
    const msg = await p.getMessage(sent.id, sent.extensionId);
    expect(msg.id).toBe(sent.id);
    expect(calls.map((c) => c.member)).toContain(p.memberIds().indexOf(sent.extensionId) >= 0 ? p.memberIds().indexOf(sent.extensionId) : sender);
    expect((await p.getMessage(sent.id)).id).toBe(sent.id);
    const listed: string[] = [];
    for await (const m of p.listMessages({ messageType: ["Fax"], direction: ["Outbound"] })) listed.push(m.id);
    expect(listed).toContain(sent.id);
  });

  it("a member whose credentials are refused gets no sends while another can take them", async () => {
    const file = pdfFile();
    const good = "eyJ.the-good-one.sig";
    const { pool: p, calls } = await setup({ jwts: ["eyJ.revoked.sig", good], emulator: { strictAuth: { ...CLIENT, jwt: good } } });
    const doc = [{ path: file, filename: "fax.pdf", contentType: "application/pdf" }];
    const outcomes = [];
    for (const n of [1, 2, 3]) {
      outcomes.push(
        await p.sendFax({ to: [{ phoneNumber: `+155512310${n}0` }] }, doc).then(
          () => "sent",
          () => "failed",
        ),
      );
    }
    // a refused login sends nothing: the fax goes through the other member, which then takes the rest
    expect(outcomes).toEqual(["sent", "sent", "sent"]);
    expect(sends(calls, 1)).toBe(3);
    expect(sends(calls, 0)).toBe(0);
  });

  it("one JWT is a pool of one: calls pass through unchanged", async () => {
    const { pool: p, calls } = await setup({ jwts: [JWTS[0] ?? ""] });
    expect(p.size).toBe(1);
    await p.listCoverPages();
    expect(calls.every((c) => c.member === 0)).toBe(true);
    expect(p.rateLimitState().Heavy.limit).toBe(10);
  });
});

describe("RC_JWT with several JWTs", () => {
  it("splits on commas and line breaks; refuses empty entries and repeats", () => {
    expect(splitJwts("")).toEqual([]);
    expect(splitJwts("a.b.c")).toEqual(["a.b.c"]);
    expect(splitJwts(" a.b.c , d.e.f\ng.h.i ")).toEqual(["a.b.c", "d.e.f", "g.h.i"]);
    const jwtOf = (jwt: string) => configSchema.safeParse({ ringcentral: { jwt } });
    expect(jwtOf("a.b.c,d.e.f").success).toBe(true);
    const empty = jwtOf("a.b.c,,d.e.f");
    expect(empty.success).toBe(false);
    expect(JSON.stringify(empty.error?.issues)).not.toContain("a.b.c");
    expect(jwtOf("a.b.c,a.b.c").success).toBe(false);
  });
});

describe("doctor with an extension pool", () => {
  it("logs each member in and names the one whose JWT is refused, without secrets", async () => {
    const good = "eyJ.doctor-pool-good.sig";
    const bad = "eyJ.doctor-pool-refused.sig";
    emu = await startEmulator({ strictAuth: { ...CLIENT, jwt: good } });
    const dir = tempDir("rc-pool-doctor-");
    dirs.push(dir);
    const config = loadConfig({
      env: { FAXBRIDGE_DATA_DIR: dir.path, RC_SERVER_URL: emu.url, RC_CLIENT_ID: CLIENT.clientId, RC_CLIENT_SECRET: CLIENT.clientSecret, RC_JWT: `${good},${bad}` },
    });
    const checks = await runDoctor(config, { timeoutMs: 5_000 });
    const logins = checks.filter((c) => c.name === "ringcentral login");
    expect(logins.map((c) => c.status)).toEqual(["ok", "FAIL"]);
    expect(logins[0]?.message).toMatch(/^pool extension 1 of 2 .*logged in/);
    expect(logins[1]?.message).toMatch(/^pool extension 2 of 2 \(JWT #2 of RC_JWT\)/);
    expect(checks.filter((c) => c.name === "ringcentral api").map((c) => c.status)).toEqual(["ok"]);
    const text = JSON.stringify(checks);
    for (const secret of [good, bad, CLIENT.clientSecret]) expect(text).not.toContain(secret);
  });
});
