import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { bearer, faxForm, OpenApiCheck, PDF, TOKENS, WebHarness } from "./harness.js";

interface FaxJson {
  id: string;
  state: string;
  recipients: { number: string; status: string; error: string | null }[];
  rcMessageId: string | null;
}

describe("REST API /api/v1 over real HTTP (daemon in sandbox mode)", () => {
  const h = new WebHarness();
  const doc = new OpenApiCheck();

  beforeAll(async () => {
    await h.start();
  });
  afterAll(async () => {
    await h.stop();
  });

  async function call(method: string, path: string, opts: { token?: string; body?: FormData | string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
    const res = await fetch(`${h.base}${path}`, {
      method,
      headers: { ...(opts.token !== undefined && bearer(opts.token)), ...opts.headers },
      ...(opts.body !== undefined && { body: opts.body }),
    });
    const type = res.headers.get("content-type") ?? "";
    const body: unknown = type.includes("json") ? await res.json() : await res.arrayBuffer();
    return { status: res.status, body, headers: res.headers };
  }

  async function until(id: string, token: string, state: string): Promise<FaxJson> {
    return waitFor(
      async () => {
        const r = await call("GET", `/api/v1/faxes/${id}`, { token });
        const f = r.body as FaxJson;
        return f.state === state ? f : undefined;
      },
      { timeoutMs: 20_000, maxIntervalMs: 300 },
      `fax ${id} to be ${state}`,
    );
  }

  it("refuses requests without a token or with an unknown one (401, problem details, WWW-Authenticate) and never logs the token", async () => {
    const none = await call("GET", "/api/v1/faxes");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(none.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    doc.check("/api/v1/faxes", "get", 401, "application/problem+json", none.body);
    const wrong = await call("GET", "/api/v1/faxes", { token: "not-a-real-token-but-secret" });
    expect(wrong.status).toBe(401);
    expect((wrong.body as { detail: string }).detail).toBe("unknown API token");
    const post = await call("POST", "/api/v1/faxes", { body: faxForm({ to: "+15551234567" }) });
    expect(post.status).toBe(401);
    const ok = await call("GET", "/api/v1/faxes", { token: TOKENS.ehr });
    expect(ok.status).toBe(200);
    const logText = h.logs.join("");
    expect(logText).toContain("api.auth_failed");
    expect(logText).not.toContain("not-a-real-token-but-secret");
    expect(logText).not.toContain(TOKENS.ehr);
  });

  it("serves its OpenAPI 3.1 document", async () => {
    const r = await call("GET", "/api/v1/openapi.json");
    expect(r.status).toBe(200);
    expect((r.body as { openapi: string }).openapi).toBe("3.1.0");
  });

  it("POST /api/v1/faxes queues a fax (202 + Location); GET shows it delivered per recipient at the emulator", async () => {
    const r = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: ["+15551234567", "+1 555 123 4568"], coverText: "For Dr. Roe" }) });
    expect(r).toMatchObject({ status: 202 });
    doc.check("/api/v1/faxes", "post", 202, "application/json", r.body);
    const accepted = r.body as { id: string; location: string; recipients: string[] };
    expect(r.headers.get("location")).toBe(`/api/v1/faxes/${accepted.id}`);
    expect(accepted.recipients).toEqual(["+15551234567", "+15551234568"]);
    const done = await until(accepted.id, TOKENS.ehr, "notified");
    expect(done.recipients.map((x) => x.status)).toEqual(["Sent", "Sent"]);
    const got = await call("GET", `/api/v1/faxes/${accepted.id}`, { token: TOKENS.ehr });
    doc.check("/api/v1/faxes/{id}", "get", 200, "application/json", got.body);
    // The report goes to the token's sender identity.
    await waitFor(() => h.sink.messages.find((m) => m.to.includes("ehr@example.com")), 20_000, "the report to the token's sender");
    // Another token cannot see it: the same 404 as for an id that does not exist.
    const other = await call("GET", `/api/v1/faxes/${accepted.id}`, { token: TOKENS.billing });
    expect(other.status).toBe(404);
    doc.check("/api/v1/faxes/{id}", "get", 404, "application/problem+json", other.body);
  });

  it("honours Idempotency-Key: two identical POSTs make one fax at the emulator; the same key with another body is refused", async () => {
    const before = (await h.sentAtEmulator()).length;
    const form = (): FormData => faxForm({ to: "+15551230001" });
    const a = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: form(), headers: { "idempotency-key": "order-42" } });
    const b = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: form(), headers: { "idempotency-key": "order-42" } });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.headers.get("idempotent-replayed")).toBe("true");
    expect((b.body as { id: string }).id).toBe((a.body as { id: string }).id);
    await until((a.body as { id: string }).id, TOKENS.ehr, "notified");
    expect((await h.sentAtEmulator()).length).toBe(before + 1);
    const c = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: "+15551230002" }), headers: { "idempotency-key": "order-42" } });
    expect(c.status).toBe(422);
    doc.check("/api/v1/faxes", "post", 422, "application/problem+json", c.body);
    // Concurrent identical requests: one fax; the others are replays or told to retry.
    const concurrent = await Promise.all([1, 2, 3].map(() => call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: "+15551230003" }), headers: { "idempotency-key": "order-43" } })));
    for (const r of concurrent) expect([202, 409]).toContain(r.status);
    const ids = new Set(concurrent.filter((r) => r.status === 202).map((r) => (r.body as { id: string }).id));
    expect(ids.size).toBe(1);
    await until([...ids][0] ?? "", TOKENS.ehr, "notified");
    expect((await h.sentAtEmulator()).length).toBe(before + 2);
    // Keys belong to a token: another token's same key is a new request.
    const d = await call("POST", "/api/v1/faxes", { token: TOKENS.billing, body: form(), headers: { "idempotency-key": "order-42" } });
    expect(d.status).toBe(202);
    expect((d.body as { id: string }).id).not.toBe((a.body as { id: string }).id);
  });

  it("refuses what SMTP refuses, with the same words, as problem details", async () => {
    const bad = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: "12" }) });
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ status: 422, smtpCode: 550 });
    expect((bad.body as { detail: string }).detail).toMatch(/^12: /);
    doc.check("/api/v1/faxes", "post", 422, "application/problem+json", bad.body);
    const premium = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: "+19005550100" }) });
    expect(premium.status).toBe(422);
    expect((premium.body as { detail: string }).detail).toMatch(/premium|not allowed|refused/i);
    const noDoc = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: "+15551234567" }, []) });
    expect(noDoc.status).toBe(422);
    const notMultipart = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: "{}", headers: { "content-type": "application/json" } });
    expect(notMultipart.status).toBe(415);
    doc.check("/api/v1/faxes", "post", 415, "application/problem+json", notMultipart.body);
    const stray = new FormData();
    stray.append("to", "+15551234567");
    stray.append("attachment", new Blob([PDF]), "x.pdf");
    const wrongField = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: stray });
    expect(wrongField.status).toBe(400);
  });

  it("lists faxes with state filter and keyset paging, only the token's own", async () => {
    for (const n of ["+15551230011", "+15551230012", "+15551230013"]) {
      expect((await call("POST", "/api/v1/faxes", { token: TOKENS.billing, body: faxForm({ to: n }) })).status).toBe(202);
    }
    const first = await call("GET", "/api/v1/faxes?limit=2", { token: TOKENS.billing });
    doc.check("/api/v1/faxes", "get", 200, "application/json", first.body);
    const p1 = first.body as { items: FaxJson[]; next: string | null };
    expect(p1.items).toHaveLength(2);
    expect(p1.next).not.toBeNull();
    const p2 = (await call("GET", `/api/v1/faxes?limit=2&after=${p1.next ?? ""}`, { token: TOKENS.billing })).body as { items: FaxJson[]; next: string | null };
    expect(p2.items.length).toBeGreaterThanOrEqual(1);
    const ids = [...p1.items, ...p2.items].map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length);
    const all = (await call("GET", "/api/v1/faxes?limit=200", { token: TOKENS.billing })).body as { items: FaxJson[] };
    expect(all.items).toHaveLength(4); // 3 here + 1 from the idempotency test
    const ehrIds = ((await call("GET", "/api/v1/faxes?limit=200", { token: TOKENS.ehr })).body as { items: FaxJson[] }).items.map((f) => f.id);
    expect(ehrIds.some((id) => all.items.some((f) => f.id === id))).toBe(false);
    const cancelled = await call("GET", "/api/v1/faxes?state=cancelled", { token: TOKENS.billing });
    expect((cancelled.body as { items: unknown[] }).items).toEqual([]);
    const badState = await call("GET", "/api/v1/faxes?state=bogus", { token: TOKENS.billing });
    expect(badState.status).toBe(400);
    doc.check("/api/v1/faxes", "get", 400, "application/problem+json", badState.body);
  });

  it("cancels a scheduled fax and resends a delivered one (a new job that RingCentral resends)", async () => {
    const later = new Date(Date.now() + 86_400_000).toISOString();
    const r = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: "+15551230021", sendTime: later }) });
    expect(r).toMatchObject({ status: 202 });
    const id = (r.body as { id: string }).id;
    await until(id, TOKENS.ehr, "submitted");
    const c = await call("POST", `/api/v1/faxes/${id}/cancel`, { token: TOKENS.ehr });
    expect(c.status).toBe(200);
    doc.check("/api/v1/faxes/{id}/cancel", "post", 200, "application/json", c.body);
    // RingCentral held it as a scheduled fax: the cancel deletes it there (as `faxbridge queue cancel` does), then the sender gets a "cancelled" report.
    const cancelledFax = c.body as FaxJson & { error: string | null };
    expect(["final", "notified"]).toContain(cancelledFax.state);
    expect(cancelledFax.error).toBe("cancelled by the operator before its send time");
    expect(cancelledFax.recipients).toEqual([{ number: "+15551230021", status: "Cancelled", error: null }]);
    const atRc = (await h.sentAtEmulator()) as { id: string; cancelledAt: string | null }[];
    expect(atRc.find((f) => f.id === cancelledFax.rcMessageId)?.cancelledAt).not.toBeNull();
    const again = await call("POST", `/api/v1/faxes/${id}/cancel`, { token: TOKENS.ehr });
    expect(again.status).toBe(409);
    expect((await call("POST", `/api/v1/faxes/${id}/cancel`, { token: TOKENS.billing })).status).toBe(404);

    const s = await call("POST", "/api/v1/faxes", { token: TOKENS.ehr, body: faxForm({ to: "+15551230022" }) });
    const sent = await until((s.body as { id: string }).id, TOKENS.ehr, "notified");
    const resend = await call("POST", `/api/v1/faxes/${sent.id}/resend`, { token: TOKENS.ehr, body: JSON.stringify({}), headers: { "content-type": "application/json" } });
    expect(resend).toMatchObject({ status: 202 });
    doc.check("/api/v1/faxes/{id}/resend", "post", 202, "application/json", resend.body);
    const redone = await until((resend.body as { id: string }).id, TOKENS.ehr, "notified");
    expect(redone.recipients).toEqual([{ number: "+15551230022", status: "Sent", error: null }]);
    expect((await call("POST", `/api/v1/faxes/${sent.id}/resend`, { token: TOKENS.billing })).status).toBe(404);
  });

  it("lists received faxes routed to the token, streams the document, redelivers; other tokens see nothing", async () => {
    await h.injectInbound("+16505550100");
    const mine = await waitFor(
      async () => {
        const r = await call("GET", "/api/v1/inbound", { token: TOKENS.ehr });
        const items = (r.body as { items: { id: string; state: string }[] }).items;
        return items.find((f) => f.state === "delivered") !== undefined ? r : undefined;
      },
      { timeoutMs: 20_000, maxIntervalMs: 300 },
      "the received fax in the API",
    );
    doc.check("/api/v1/inbound", "get", 200, "application/json", mine.body);
    const fax = (mine.body as { items: { id: string; mailTo: string[] }[] }).items[0]!;
    expect(fax.mailTo).toEqual(["frontdesk@example.com"]);
    const one = await call("GET", `/api/v1/inbound/${fax.id}`, { token: TOKENS.ehr });
    doc.check("/api/v1/inbound/{id}", "get", 200, "application/json", one.body);
    const docRes = await fetch(`${h.base}/api/v1/inbound/${fax.id}/document`, { headers: bearer(TOKENS.ehr) });
    expect(docRes.status).toBe(200);
    expect(docRes.headers.get("content-type")).toMatch(/^application\/pdf/);
    expect(Buffer.from(await docRes.arrayBuffer()).equals(PDF)).toBe(true);
    const line = JSON.stringify({ type: "web.access", action: "document.read", faxId: fax.id, actor: "api:ehr", client: "127.0.0.1", via: "api" }).slice(1, -1);
    const dataDir = h.dir.path;
    await waitFor(() => readFileSync(join(dataDir, "audit.jsonl"), "utf8").includes(line), 5_000, "the audit line of the document read");
    const billing = await call("GET", "/api/v1/inbound", { token: TOKENS.billing });
    expect((billing.body as { items: unknown[] }).items).toEqual([]);
    expect((await call("GET", `/api/v1/inbound/${fax.id}/document`, { token: TOKENS.billing })).status).toBe(404);
    const before = h.sink.messages.filter((m) => m.to.includes("frontdesk@example.com")).length;
    const re = await call("POST", `/api/v1/inbound/${fax.id}/redeliver`, { token: TOKENS.ehr });
    expect(re.status).toBe(202);
    doc.check("/api/v1/inbound/{id}/redeliver", "post", 202, "application/json", re.body);
    await waitFor(() => h.sink.messages.filter((m) => m.to.includes("frontdesk@example.com")).length > before, 20_000, "the redelivered mail");
  });

  it("leaves /healthz, /metrics and unknown paths as they were", async () => {
    expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${h.base}/metrics`)).status).toBe(200);
    expect((await fetch(`${h.base}/healthz`, { method: "POST" })).status).toBe(405);
    const unknown = await call("GET", "/api/v1/nothing-here", { token: TOKENS.ehr });
    expect(unknown.status).toBe(404);
  });
});
