import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Emulator } from "../../src/emulator/index.js";
import { Client, MS_PATH, start } from "./helpers.js";

describe("emulator rate limits and faults", () => {
  let emu: Emulator;
  let client: Client;
  beforeEach(async () => {
    emu = await start({ limits: { Light: 3 }, windowSeconds: 1, penaltySeconds: 1 });
    client = await Client.create(emu);
  });
  afterEach(async () => {
    await emu.close();
  });

  it("counts down, answers 429 CMN-301 with Retry-After, penalises, then recovers", async () => {
    const first = await client.json(MS_PATH);
    expect(Object.fromEntries(["x-rate-limit-group", "x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-window"].map((h) => [h, first.headers.get(h)]))).toEqual({
      "x-rate-limit-group": "light",
      "x-rate-limit-limit": "3",
      "x-rate-limit-remaining": "2",
      "x-rate-limit-window": "1",
    });
    await client.json(MS_PATH);
    await client.json(MS_PATH);
    const limited = await client.json(MS_PATH);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("1");
    expect(limited.body).toMatchObject({ errorCode: "CMN-301", errors: [{ errorCode: "CMN-301", message: "Request rate exceeded" }] });
    // Other groups are unaffected.
    expect((await client.json("/restapi/v1.0/subscription", { method: "POST", body: "{}" })).status).toBe(400);
    // After the penalty (no requests meanwhile) the group answers again.
    const deadline = Date.now() + 1100;
    while (Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect((await client.json(MS_PATH)).status).toBe(200);
  });

  it("injects faults on matching calls and counts calls", async () => {
    await fetch(`${emu.url}/emulator/calls/reset`, { method: "POST" });
    const add = (f: Record<string, unknown>) => fetch(`${emu.url}/emulator/faults`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(f) });
    expect((await add({ path: "/message-store", count: 1, kind: "status", status: 503 })).status).toBe(204);
    expect((await add({ group: "Light", count: 1, kind: "429", retryAfter: 7 })).status).toBe(204);
    expect((await add({ group: "Light", count: 1, kind: "reset" })).status).toBe(204);
    expect((await add({ group: "Light", count: 1, kind: "latency", latencyMs: 150 })).status).toBe(204);
    const s = await client.json(MS_PATH);
    expect(s.status).toBe(503);
    const t = await client.json(MS_PATH);
    expect(t.status).toBe(429);
    expect(t.headers.get("retry-after")).toBe("7");
    await expect(client.fetch(MS_PATH)).rejects.toThrow();
    const began = Date.now();
    expect((await client.json(MS_PATH)).status).toBe(200);
    expect(Date.now() - began).toBeGreaterThanOrEqual(140);
    const calls = (await (await fetch(`${emu.url}/emulator/calls`)).json()) as { byRoute: Record<string, number>; byStatus: Record<string, number>; byGroup: Record<string, number> };
    expect(calls.byRoute["GET /restapi/v1.0/account/{accountId}/extension/{extensionId}/message-store"]).toBe(4);
    expect(calls.byStatus).toMatchObject({ "503": 1, "429": 1, "200": 1, reset: 1 });
    expect(calls.byGroup["Light"]).toBe(4);
  });
});
