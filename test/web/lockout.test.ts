import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, faxForm, PASSWORDS, TOKENS, WebHarness } from "./harness.js";

async function csrfAndCookies(base: string, path: string): Promise<{ token: string; cookie: string }> {
  const res = await fetch(`${base}${path}`);
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
  const token = /name="_csrf" value="([^"]+)"/.exec(await res.text())?.[1] ?? "";
  return { token, cookie };
}

async function signIn(base: string, username: string, password: string, next = "/outbox"): Promise<Response> {
  const { token, cookie } = await csrfAndCookies(base, "/signin");
  return fetch(`${base}/signin`, {
    method: "POST",
    redirect: "manual",
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ username, password, next, _csrf: token }).toString(),
  });
}

describe("brute force and redirects on the web side", () => {
  const h = new WebHarness();
  beforeAll(async () => {
    await h.start({
      FAXBRIDGE_POLICY_ABUSE_AUTH_MAX_FAILURES: "3",
      FAXBRIDGE_POLICY_ABUSE_AUTH_FAILURE_DELAY_MS: "0",
      FAXBRIDGE_WEB_PUBLIC_URL: "https://fax.example.test",
      FAXBRIDGE_POLICY_QUOTAS_PER_SENDER_PER_HOUR: "1",
    });
  });
  afterAll(async () => {
    await h.stop();
  });

  it("signs in with a Secure, HttpOnly, SameSite=Strict cookie behind TLS and never redirects off-site", async () => {
    const ok = await signIn(h.base, "alice", PASSWORDS.alice, "//evil.example/steal");
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/outbox");
    const session = ok.headers.getSetCookie().find((c) => c.startsWith("fb_session="));
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Strict/);
    expect(session).toMatch(/Secure/);
    const inside = await signIn(h.base, "alice", PASSWORDS.alice, "/inbox");
    expect(inside.headers.get("location")).toBe("/inbox");
  });

  it("counts a token's faxes against its hourly quota and refuses over it with SMTP's words (429, smtpCode 452)", async () => {
    const first = await fetch(`${h.base}/api/v1/faxes`, { method: "POST", headers: bearer(TOKENS.billing), body: faxForm({ to: "+15551230041" }) });
    expect(first.status).toBe(202);
    const second = await fetch(`${h.base}/api/v1/faxes`, { method: "POST", headers: bearer(TOKENS.billing), body: faxForm({ to: "+15551230042" }) });
    expect(second.status).toBe(429);
    const problem = (await second.json()) as { detail: string; smtpCode: number };
    expect(problem.smtpCode).toBe(452);
    expect(problem.detail).toMatch(/^hourly fax quota of 1 for .+ reached; try again in \d+ minutes? \(after \d\d:\d\d:\d\d UTC\)$/);
    // Another token is another sender: its own quota.
    const other = await fetch(`${h.base}/api/v1/faxes`, { method: "POST", headers: bearer(TOKENS.ehr), body: faxForm({ to: "+15551230043" }) });
    expect(other.status).toBe(202);
  });

  it("locks out a client after repeated wrong passwords, then refuses even the right one", async () => {
    for (let i = 0; i < 3; i++) expect((await signIn(h.base, "alice", `wrong-${i}`)).status).toBe(401);
    const locked = await signIn(h.base, "alice", PASSWORDS.alice);
    expect(locked.status).toBe(429);
    expect(await locked.text()).toContain("Too many failed sign-ins");
  });

  it("locks out a client guessing API tokens (429), and the real token with it", async () => {
    for (let i = 0; i < 3; i++) expect((await fetch(`${h.base}/api/v1/faxes`, { headers: bearer(`guess-${i}`) })).status).toBe(401);
    const locked = await fetch(`${h.base}/api/v1/faxes`, { headers: bearer(TOKENS.ehr) });
    expect(locked.status).toBe(429);
    expect(locked.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(((await locked.json()) as { detail: string }).detail).toMatch(/too many failed logins/);
    expect(h.logs.join("")).not.toContain("guess-0");
  });
});
