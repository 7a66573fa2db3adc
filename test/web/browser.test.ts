import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { bearer, faxForm, PASSWORDS, PDF, renderablePdf, TOKENS, WebHarness } from "./harness.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(import.meta.dirname, "..", "..", "test-results", "web");
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser tests skipped: ${CHROMIUM} not found (Debian: apt-get install chromium)`);

describe.skipIf(!haveChromium)("web console in headless Chromium", () => {
  const h = new WebHarness();
  let browser: Browser;
  const pdfPath = join(h.dir.path, "letter.pdf");

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    // Documents kept an hour: thumbnails are rendered only from copies on disk.
    await h.start({ FAXBRIDGE_RETENTION_DOCUMENTS_HOURS: "1" });
    writeFileSync(pdfPath, PDF);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await h.stop();
  });

  async function signIn(user: keyof typeof PASSWORDS, viewport = { width: 1200, height: 900 }): Promise<{ ctx: BrowserContext; page: Page }> {
    const ctx = await browser.newContext({ viewport });
    const page = await ctx.newPage();
    await page.goto(`${h.base}/outbox`);
    expect(page.url()).toContain("/signin");
    await page.fill("#username", user);
    await page.fill("#password", PASSWORDS[user]);
    await Promise.all([page.waitForURL(/\/outbox/), page.click("button[type=submit]")]);
    return { ctx, page };
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  it("refuses a wrong password, signs in, and sets a HttpOnly SameSite=Strict session cookie", async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${h.base}/signin`);
    await page.fill("#username", "alice");
    await page.fill("#password", "wrong");
    await page.click("button[type=submit]");
    expect(await page.textContent(".flash.error")).toContain("Wrong user name or password");
    await shot(page, "signin");
    await page.fill("#username", "alice");
    await page.fill("#password", PASSWORDS.alice);
    await Promise.all([page.waitForURL(/\/outbox/), page.click("button[type=submit]")]);
    const cookie = (await ctx.cookies()).find((c) => c.name === "fb_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    await ctx.close();
  });

  it("sends a PDF from the Send page and watches it reach Sent in the Outbox", async () => {
    const { ctx, page } = await signIn("alice");
    await page.goto(`${h.base}/send`);
    // A refusal comes back on the form, in the words SMTP would use, with the input kept.
    await page.fill("#to", "12");
    await page.setInputFiles("#file", pdfPath);
    await page.click("form[enctype] button[type=submit]");
    expect(await page.textContent(".flash.error")).toMatch(/^12: /);
    expect(await page.inputValue("#to")).toBe("12");
    await page.fill("#to", "+15551234567");
    await page.setInputFiles("#file", pdfPath);
    await page.fill("#coverText", "Lab results attached");
    await shot(page, "send");
    await Promise.all([page.waitForURL(/\/outbox\/[^/]+$/), page.click("form[enctype] button[type=submit]")]);
    const id = page.url().split("/").pop() ?? "";
    await waitFor(
      async () => {
        await page.goto(`${h.base}/outbox`);
        const status = await page.locator(`tr[data-fax="${id}"] .recipient-status`).first().textContent();
        return status === "Sent";
      },
      { timeoutMs: 30_000, intervalMs: 300, maxIntervalMs: 1000 },
      "Sent in the Outbox",
    );
    await shot(page, "outbox");
    await page.goto(`${h.base}/outbox/${id}`);
    await shot(page, "fax");
    // The fax went out through the same intake as mail: sender identity and report.
    await waitFor(() => h.sink.messages.find((m) => m.to.includes("alice@example.com")), 20_000, "the report to alice");
    await ctx.close();
  });

  it("shows a received fax in the Inbox with a thumbnail and opens its PDF", async () => {
    const pdf = renderablePdf();
    await h.injectInbound("+16505550100", "+12125550123", pdf);
    const { ctx, page } = await signIn("alice");
    const row = await waitFor(
      async () => {
        await page.goto(`${h.base}/inbox`);
        const n = await page.locator("tr[data-fax]").count();
        return n > 0 ? page.locator("tr[data-fax]").first() : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 300, maxIntervalMs: 1000 },
      "the received fax in the Inbox",
    );
    // With poppler-utils installed (CI installs it) the thumbnail is the rendered first page, else a placeholder.
    const id = (await row.getAttribute("data-fax")) ?? "";
    const thumbType = (await page.request.get(`${h.base}/inbox/${id}/thumb.png`)).headers()["content-type"];
    expect(thumbType).toBe(existsSync("/usr/bin/pdftoppm") ? "image/png" : "image/svg+xml");
    const thumb = await row.locator("img.thumb").evaluate((el) => {
      const img = el as unknown as { decode(): Promise<void>; naturalWidth: number };
      return img.decode().then(
        () => img.naturalWidth > 0,
        () => false,
      );
    });
    expect(thumb).toBe(true);
    await shot(page, "inbox");
    const href = (await row.locator("a.open-pdf").getAttribute("href")) ?? "";
    const res = await page.request.get(`${h.base}${href}`);
    expect(res.status()).toBe(200);
    expect(res.headers()["content-type"]).toMatch(/^application\/pdf/);
    expect(Buffer.from(await res.body()).equals(pdf)).toBe(true);
    // Forward it to a number: RingCentral resends the received fax as a new outbound job.
    await row.locator("input[name=to]").fill("+15551230051");
    await Promise.all([page.waitForURL(/\/outbox\/[^/]+$/), row.locator("form[action$='/forward'] button").click()]);
    const fwd = page.url().split("/").pop() ?? "";
    await waitFor(
      async () => {
        await page.goto(`${h.base}/outbox/${fwd}`);
        return (await page.locator(".recipient-status").first().textContent()) === "Sent";
      },
      { timeoutMs: 30_000, intervalMs: 300, maxIntervalMs: 1000 },
      "the forwarded fax Sent",
    );
    await ctx.close();
  });

  it("cancels a scheduled fax from the Outbox", async () => {
    const later = new Date(Date.now() + 86_400_000).toISOString();
    const r = await fetch(`${h.base}/api/v1/faxes`, { method: "POST", headers: bearer(TOKENS.ehr), body: faxForm({ to: "+15551230031", sendTime: later, notify: "frontdesk@example.com" }) });
    expect(r.status).toBe(202);
    const id = ((await r.json()) as { id: string }).id;
    const { ctx, page } = await signIn("alice");
    await waitFor(
      async () => {
        await page.goto(`${h.base}/outbox`);
        return (await page.locator(`tr[data-fax="${id}"] .state`).textContent())?.startsWith("submitted") === true;
      },
      { timeoutMs: 20_000, intervalMs: 300, maxIntervalMs: 1000 },
      "the scheduled fax submitted",
    );
    await Promise.all([page.waitForURL(/\/outbox$/), page.click(`tr[data-fax="${id}"] form[action$="/cancel"] button`)]);
    expect(await page.textContent(".flash")).toContain(`Fax ${id} cancelled`);
    // RingCentral held it as a scheduled fax: it is deleted there (the job ends "final", then "notified" once the sender has the report).
    expect(await page.locator(`tr[data-fax="${id}"] .state`).textContent()).toMatch(/^(final|notified)/);
    const atRc = (await h.sentAtEmulator()) as { cancelledAt: string | null }[];
    expect(atRc.filter((f) => f.cancelledAt !== null)).toHaveLength(1);
    await ctx.close();
  });

  it("keeps one user's faxes from another user", async () => {
    const alice = await signIn("alice");
    await alice.page.goto(`${h.base}/outbox`);
    const aliceIds = await alice.page.locator("tr[data-fax]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-fax")));
    expect(aliceIds.length).toBeGreaterThan(0);
    await alice.ctx.close();
    const bob = await signIn("bob");
    await bob.page.goto(`${h.base}/outbox`);
    expect(await bob.page.locator("tr[data-fax]").count()).toBe(0);
    await bob.page.goto(`${h.base}/inbox`);
    expect(await bob.page.locator("tr[data-fax]").count()).toBe(0);
    const direct = await bob.page.goto(`${h.base}/outbox/${aliceIds[0] ?? ""}`);
    expect(direct?.status()).toBe(404);
    await bob.ctx.close();
  });

  it("refuses a form post without the CSRF token", async () => {
    const { ctx, page } = await signIn("alice");
    const res = await page.request.post(`${h.base}/outbox/anything/cancel`, { form: { note: "no token" } });
    expect(res.status()).toBe(403);
    const forged = await page.request.post(`${h.base}/signout`, { form: { _csrf: "forged-token" } });
    expect(forged.status()).toBe(403);
    // Still signed in: the forged sign-out did nothing.
    await page.goto(`${h.base}/outbox`);
    expect(page.url()).toContain("/outbox");
    await ctx.close();
  });

  it("shows the Status page to an admin and renders on a phone screen", async () => {
    const admin = await signIn("admin");
    await admin.page.goto(`${h.base}/status`);
    expect(await admin.page.textContent("main")).toContain("RingCentral rate limits");
    await Promise.all([admin.page.waitForURL(/\/status$/), admin.page.click("form[action='/status/doctor'] button")]);
    expect(await admin.page.textContent("table.doctor")).toContain("SANDBOX mode");
    await shot(admin.page, "status");
    await admin.ctx.close();
    const phone = await signIn("alice", { width: 390, height: 844 });
    await phone.page.goto(`${h.base}/outbox`);
    const overflow = await phone.page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(phone.page, "outbox-phone");
    await phone.page.goto(`${h.base}/inbox`);
    await shot(phone.page, "inbox-phone");
    const user = await phone.page.goto(`${h.base}/status`);
    expect(user?.status()).toBe(403);
    await phone.ctx.close();
  });
});
