import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { signedLinkPath } from "../../src/web/links.js";
import { waitFor } from "../helpers/wait.js";
import { PASSWORDS, PDF, WebHarness } from "./harness.js";

/** A minimal cookie jar over fetch, enough for the console's forms. */
class Browserless {
  readonly cookies = new Map<string, string>();
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const res = await fetch(`${this.base}${path}`, { ...init, redirect: "manual", headers: { ...(init.headers as Record<string, string>), ...(cookie !== "" && { cookie }) } });
    for (const c of res.headers.getSetCookie()) {
      const [pair = ""] = c.split(";");
      const i = pair.indexOf("=");
      this.cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return res;
  }

  async csrf(path: string): Promise<string> {
    const text = await (await this.request(path)).text();
    return /name="_csrf" value="([^"]+)"/.exec(text)?.[1] ?? "";
  }

  async post(path: string, form: Record<string, string>, csrfFrom: string): Promise<Response> {
    const token = await this.csrf(csrfFrom);
    return this.request(path, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ ...form, _csrf: token }).toString() });
  }
}

function audit(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, "audit.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("signed links for link-only inbound delivery (inbound.delivery: link)", () => {
  let h: WebHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  async function mailedLink(harness: WebHarness): Promise<{ path: string; text: string }> {
    await harness.injectInbound("+16505550100");
    const mail = await waitFor(() => harness.sink.messages.find((m) => m.to.includes("frontdesk@example.com")), 20_000, "the link notice");
    const text = mail.parsed.text ?? "";
    expect(mail.parsed.attachments).toHaveLength(0);
    const m = /https:\/\/fax\.example\.test(\/l\/[A-Za-z0-9_.-]+)/.exec(text);
    expect(m).not.toBeNull();
    return { path: m?.[1] ?? "", text };
  }

  it("mails a link instead of the fax; it opens only after sign-in by a user allowed to see the fax, and every opening is audited", async () => {
    h = await new WebHarness().start({ FAXBRIDGE_INBOUND_DELIVERY: "link", FAXBRIDGE_WEB_PUBLIC_URL: "https://fax.example.test/" });
    const { path, text } = await mailedLink(h);
    expect(text).not.toContain(h.dir.path); // no server path any more
    expect(text).toMatch(/works until \d{4}-\d\d-\d\d \d\d:\d\d UTC/);

    const anon = new Browserless(h.base);
    const first = await anon.request(path);
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe(`/signin?next=${encodeURIComponent(path)}`);

    const bob = new Browserless(h.base);
    expect((await bob.post("/signin", { username: "bob", password: PASSWORDS.bob, next: path }, "/signin")).status).toBe(303);
    expect((await bob.request(path)).status).toBe(404);

    const alice = new Browserless(h.base);
    const signIn = await alice.post("/signin", { username: "alice", password: PASSWORDS.alice, next: path }, "/signin");
    expect(signIn.headers.get("location")).toBe(path);
    const opened = await alice.request(path);
    expect(opened.status).toBe(200);
    expect(opened.headers.get("content-type")).toMatch(/^application\/pdf/);
    expect(Buffer.from(await opened.arrayBuffer()).equals(PDF)).toBe(true);

    const tampered = path.replace(/.$/, (c) => (c === "A" ? "B" : "A"));
    expect((await alice.request(tampered)).status).toBe(404);

    // The audit log is appended asynchronously: wait for the third line.
    const dataDir = h.dir.path;
    const lines = await waitFor(() => {
      const l = audit(dataDir).filter((x) => x.type === "web.access");
      return l.length >= 3 ? l : undefined;
    }, 5_000, "three audit lines");
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: "link.refused", actor: "web:bob", reason: "not_allowed" }),
        expect.objectContaining({ action: "link.open", actor: "web:alice", via: "link" }),
        expect.objectContaining({ action: "link.refused", reason: "bad_signature" }),
      ]),
    );
  });

  it("one-time links open once without an account (after a confirmation, so link scanners do not spend them); expired links are refused", async () => {
    h = await new WebHarness().start({ FAXBRIDGE_INBOUND_DELIVERY: "link", FAXBRIDGE_WEB_PUBLIC_URL: "https://fax.example.test", FAXBRIDGE_INBOUND_LINK_ACCESS: "one-time" });
    const { path } = await mailedLink(h);
    const reader = new Browserless(h.base);
    const confirm = await reader.request(path);
    expect(confirm.status).toBe(200);
    expect(await confirm.text()).toContain("opens the fax once");
    const opened = await reader.post(path, {}, path);
    expect(opened.status).toBe(200);
    expect(Buffer.from(await opened.arrayBuffer()).equals(PDF)).toBe(true);
    const again = await reader.post(path, {}, path);
    expect(again.status).toBe(410);
    const noCsrf = await reader.request(path, { method: "POST" });
    expect(noCsrf.status).toBe(403);

    const key = Buffer.from(readFileSync(join(h.dir.path, "web.key"), "utf8").trim(), "base64");
    const faxId = path.slice(3).split(".")[0] ?? "";
    const expired = signedLinkPath(key, faxId, Date.now() - 1000);
    expect((await reader.request(expired)).status).toBe(410);
    const dataDir = h.dir.path;
    const lines = await waitFor(() => {
      const l = audit(dataDir).filter((x) => x.type === "web.access");
      return l.length >= 3 ? l : undefined;
    }, 5_000, "three audit lines");
    expect(lines.filter((l) => l.action === "link.open")).toHaveLength(1);
    expect(lines.map((l) => l.reason)).toEqual(expect.arrayContaining(["spent", "expired"]));
  });
});
