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

  it("a 429 holds only the member that got it; the other keeps sending", async () => {
    const file = pdfFile();
    const { pool: p, calls, emu: e } = await setup();
    const doc = [{ path: file, filename: "fax.pdf", contentType: "application/pdf" }];
    await p.ensureAuthenticated();
    await fault(e, { path: "/fax", group: "Heavy", count: 1, kind: "429", retryAfter: 60 });
    const first = await p.sendFax({ to: [{ phoneNumber: "+15551230002" }] }, doc).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(first).toBeInstanceOf(RcApiError);
    expect((first as RcApiError).status).toBe(429);
    const heldMember = calls.find((c) => c.call.status === 429)?.member;
    expect(heldMember).toBeDefined();
    const other = heldMember === 0 ? 1 : 0;
    const held = p.memberStates()[heldMember ?? 0]?.state.Heavy.heldUntil ?? 0;
    expect(held).toBeGreaterThan(Date.now() + 30_000);
    // the pool as a whole is not held: the worker keeps claiming sends
    expect(p.rateLimitState().Heavy.heldUntil).toBe(0);
    expect(p.rateLimitState().Heavy.remaining).toBeGreaterThan(0);

    const started = Date.now();
    for (const n of [3, 4, 5]) await p.sendFax({ to: [{ phoneNumber: `+1555123000${n}` }] }, doc);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(sends(calls, other)).toBe(3);
    expect(calls.filter((c) => c.member === heldMember && c.call.operation === "createFaxMessage")).toHaveLength(1);
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
    // at most the first send meets the refused member; then it is set aside
    expect(outcomes.filter((o) => o === "failed").length).toBeLessThanOrEqual(1);
    expect(outcomes.slice(1)).toEqual(["sent", "sent"]);
    expect(sends(calls, 1)).toBeGreaterThanOrEqual(2);
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
