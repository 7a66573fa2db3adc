import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type {} from "@fastify/cookie";
import type {} from "@fastify/csrf-protection";
import type {} from "@fastify/multipart";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { AuthLockout } from "../policy/abuse.js";
import { JOB_STATES, type JobState } from "../store/outbound.js";
import { newId } from "../util/ids.js";
import { bareAddress, checkUser, userIdentity, type Identity } from "./auth.js";
import type { WebContext } from "./context.js";
import { ActionError, cancelFax, inboundDocument, listInbound, localDocument, listJobs, redeliverInbound, visibleInbound, visibleJob } from "./faxes.js";
import { html, type Html } from "./html.js";
import { IntakeRefusal, readUpload, removeUpload, submitFax, type UploadPart } from "./intake.js";
import { registerLinks } from "./link-routes.js";
import { faxPage, inboxPage, messagePage, outboxPage, sendPage, signInPage, statusPage } from "./pages.js";
import { PLACEHOLDER_SVG, thumbnail } from "./thumbs.js";
import { credentialDigest } from "../store/ports.js";
import { faxView, inboundView, routedTo } from "./views-data.js";

/**
 * The operator console: server-rendered pages that work without JavaScript.
 * Sign-in makes a database-backed session (cookie HttpOnly, SameSite=Strict,
 * Secure when web.publicUrl is https); every form carries a CSRF token; failed
 * sign-ins lock the client out as failed SMTP AUTH does (policy.abuse).
 */

export const SESSION_COOKIE = "fb_session";
const FLASH_COOKIE = "fb_flash";

declare module "fastify" {
  interface FastifyRequest {
    consoleUser?: Identity;
  }
}

export function registerConsole(app: FastifyInstance, ctx: WebContext): void {
  const secure = ctx.config.web.publicUrl.startsWith("https:");
  const cookieOpts = { path: "/", httpOnly: true, sameSite: "strict" as const, secure, signed: true };
  const abuse = ctx.config.policy.abuse;
  const lockout = new AuthLockout({
    maxFailures: abuse.authMaxFailures,
    windowMs: abuse.authFailureWindowSeconds * 1000,
    lockoutMs: abuse.authLockoutSeconds * 1000,
    baseDelayMs: abuse.authFailureDelayMs,
    now: ctx.now,
  });
  const users = new Map(ctx.config.web.users.map((u) => [u.username, u]));

  /** The signed-in user, if any. */
  const sessionOf = async (req: FastifyRequest): Promise<Identity | undefined> => {
    const raw = req.cookies[SESSION_COOKIE];
    if (raw === undefined) return undefined;
    const un = req.unsignCookie(raw);
    if (!un.valid || un.value === null) return undefined;
    const session = await ctx.web.sessionUser(un.value);
    const user = session === undefined ? undefined : users.get(session.username);
    // A session opened with a password that has since been changed is over.
    if (user === undefined || session?.credential !== credentialDigest(user.passwordHash)) return undefined;
    return userIdentity(user);
  };

  const base = (req: FastifyRequest, reply: FastifyReply): { user: { name: string; admin: boolean } | undefined; csrf: string; flash: { text: string; error?: boolean } | undefined } => {
    const who = req.consoleUser;
    let flash: { text: string; error?: boolean } | undefined;
    const raw = req.cookies[FLASH_COOKIE];
    if (raw !== undefined) {
      const un = req.unsignCookie(raw);
      if (un.valid && un.value !== null) flash = un.value.startsWith("!") ? { text: un.value.slice(1), error: true } : { text: un.value };
      reply.clearCookie(FLASH_COOKIE, { path: "/" });
    }
    return { user: who === undefined ? undefined : { name: who.name, admin: who.admin }, csrf: reply.generateCsrf(), flash };
  };

  const sendHtml = (reply: FastifyReply, body: Html, status = 200): FastifyReply =>
    reply.code(status).type("text/html; charset=utf-8").header("cache-control", "no-store").header("x-frame-options", "DENY").header("content-security-policy", "default-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'").send(body.text);

  const back = (reply: FastifyReply, to: string, text: string, error = false): FastifyReply => {
    reply.setCookie(FLASH_COOKIE, `${error ? "!" : ""}${text}`.slice(0, 300), { ...cookieOpts, maxAge: 60 });
    return reply.code(303).redirect(to);
  };

  const safeNext = (n: unknown): string => (typeof n === "string" && /^\/(?![/\\])[\x21-\x7e]*$/.test(n) ? n : "/outbox");

  /** Pages behind sign-in: unknown sessions go to the sign-in page. */
  const signedIn = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const who = await sessionOf(req);
    if (who === undefined) {
      await reply.code(303).redirect(`/signin?next=${encodeURIComponent(req.url)}`);
      return;
    }
    req.consoleUser = who;
  };
  const me = (req: FastifyRequest): Identity => {
    if (req.consoleUser === undefined) throw new ActionError(401, "not signed in");
    return req.consoleUser;
  };
  const guarded = { onRequest: signedIn };
  const guardedPost = { onRequest: signedIn, preHandler: app.csrfProtection };

  app.get("/", guarded, async (_req, reply) => reply.code(303).redirect("/outbox"));

  app.get("/signin", async (req, reply) => {
    const next = safeNext((req.query as Record<string, unknown>).next);
    if ((await sessionOf(req)) !== undefined) return reply.code(303).redirect(next);
    return sendHtml(reply, signInPage({ ...base(req, reply), next }));
  });

  app.post("/signin", { preHandler: app.csrfProtection, config: { rateLimit: { max: 30, timeWindow: "1 minute" } } }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const next = safeNext(body.next);
    const until = lockout.lockedUntil(req.ip);
    if (until !== undefined) {
      return sendHtml(reply, signInPage({ ...base(req, reply), next, error: `Too many failed sign-ins from ${req.ip}; try again after ${new Date(until).toISOString().slice(11, 16)} UTC.` }), 429);
    }
    const username = typeof body.username === "string" ? body.username : "";
    const user = await checkUser(ctx.config.web.users, username, typeof body.password === "string" ? body.password : "");
    if (user === undefined) {
      const r = lockout.failed(req.ip);
      ctx.logger.warn({ event: "web.signin_failed", client: req.ip, user: username.slice(0, 64), locked: r.locked }, "console sign-in failed");
      if (r.delayMs > 0) await new Promise((res) => setTimeout(res, r.delayMs));
      return sendHtml(reply, signInPage({ ...base(req, reply), next, error: "Wrong user name or password." }), 401);
    }
    lockout.succeeded(req.ip);
    const session = await ctx.web.createSession(user.username, user.passwordHash, ctx.config.web.sessionHours * 3_600_000);
    ctx.logger.info({ event: "web.signin", client: req.ip, user: user.username }, "console sign-in");
    reply.setCookie(SESSION_COOKIE, session, { ...cookieOpts, maxAge: ctx.config.web.sessionHours * 3600 });
    return reply.code(303).redirect(next);
  });

  app.post("/signout", guardedPost, async (req, reply) => {
    const raw = req.cookies[SESSION_COOKIE];
    const un = raw === undefined ? undefined : req.unsignCookie(raw);
    if (un?.valid === true && un.value !== null) await ctx.web.endSession(un.value);
    reply.clearCookie(SESSION_COOKIE, { path: "/" });
    return reply.code(303).redirect("/signin");
  });

  app.get("/outbox", guarded, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const filters = { state: q.state ?? "", sender: (q.sender ?? "").trim(), number: (q.number ?? "").trim() };
    const state = (JOB_STATES as readonly string[]).includes(filters.state) ? [filters.state as JobState] : undefined;
    const after = q.after !== undefined && /^[A-Za-z0-9_-]{1,64}$/.test(q.after) ? q.after : undefined;
    const digits = filters.number.replace(/[^\d]/g, "");
    const page = await listJobs(ctx, me(req), {
      state,
      after,
      limit: 50,
      newestFirst: true,
      filter: (j) => (filters.sender === "" || j.mailFrom.toLowerCase().includes(filters.sender.toLowerCase())) && (digits === "" || j.rcptTo.some((r) => r.e164.includes(digits))),
    });
    return sendHtml(reply, outboxPage({ ...base(req, reply), faxes: page.items.map(faxView), filters, next: page.next }));
  });

  app.get("/outbox/:id", guarded, async (req, reply) => {
    const job = await visibleJob(ctx, me(req), (req.params as { id: string }).id);
    return sendHtml(reply, faxPage({ ...base(req, reply), fax: faxView(job) }));
  });

  app.post("/outbox/:id/cancel", guardedPost, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    try {
      await cancelFax(ctx, me(req), id);
      return back(reply, "/outbox", `Fax ${id} cancelled.`);
    } catch (err) {
      if (err instanceof ActionError && err.status === 409) return back(reply, "/outbox", err.message, true);
      throw err;
    }
  });

  app.post("/outbox/:id/retry", guardedPost, async (req, reply) => {
    const job = await visibleJob(ctx, me(req), (req.params as { id: string }).id);
    try {
      const r = await ctx.retry(job.id);
      ctx.logger.info({ event: "web.retry", queueId: job.id, by: me(req).user }, "retry requested in the console");
      return back(reply, "/outbox", r.message);
    } catch (err) {
      return back(reply, "/outbox", err instanceof Error ? err.message : "cannot retry", true);
    }
  });

  app.post("/outbox/:id/resend", guardedPost, async (req, reply) => {
    const who = me(req);
    const job = await visibleJob(ctx, who, (req.params as { id: string }).id);
    if (job.rcMessageId === null) return back(reply, "/outbox", `Fax ${job.id} never reached RingCentral; send it anew.`, true);
    try {
      const r = await submitFax(ctx.intake, who, req.ip, { to: job.rcptTo.map((x) => x.e164), files: [], forwardOf: job.rcMessageId });
      return back(reply, `/outbox/${r.id}`, `Resending fax ${job.id} as ${r.id}.`);
    } catch (err) {
      if (err instanceof IntakeRefusal) return back(reply, "/outbox", err.message, true);
      throw err;
    }
  });

  app.get("/inbox", guarded, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const after = q.after !== undefined && /^[A-Za-z0-9_-]{1,64}$/.test(q.after) ? q.after : undefined;
    const page = await listInbound(ctx, me(req), { after, limit: 50, newestFirst: true });
    return sendHtml(reply, inboxPage({ ...base(req, reply), faxes: page.items.map((f) => inboundView(ctx.config, f)), next: page.next }));
  });

  app.get("/inbox/:id/document", guarded, async (req, reply) => {
    const who = me(req);
    const fax = await visibleInbound(ctx, who, (req.params as { id: string }).id);
    const doc = await inboundDocument(ctx, fax);
    ctx.audit.record({ type: "web.access", action: "document.read", faxId: fax.id, actor: who.user, client: req.ip, via: "console" });
    reply.type(doc.contentType).header("content-disposition", `inline; filename="fax-${fax.id}.pdf"`).header("cache-control", "private, no-store").header("x-content-type-options", "nosniff");
    return reply.send(doc.body);
  });

  app.get("/inbox/:id/thumb.png", guarded, async (req, reply) => {
    const fax = await visibleInbound(ctx, me(req), (req.params as { id: string }).id);
    const png = await thumbnail(ctx.thumbDir, fax.id, async () => {
      const local = await localDocument(ctx, fax);
      return local?.contentType === "application/pdf" ? { body: createReadStream(local.path) } : undefined;
    });
    reply.header("cache-control", "private, max-age=3600");
    return png === undefined ? reply.type("image/svg+xml").send(PLACEHOLDER_SVG) : reply.type("image/png").send(png);
  });

  app.post("/inbox/:id/redeliver", guardedPost, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    try {
      await redeliverInbound(ctx, me(req), id);
      return back(reply, "/inbox", "The fax will be mailed again within seconds.");
    } catch (err) {
      if (err instanceof ActionError && err.status === 409) return back(reply, "/inbox", err.message, true);
      throw err;
    }
  });

  app.post("/inbox/:id/forward", guardedPost, async (req, reply) => {
    const who = me(req);
    const fax = await visibleInbound(ctx, who, (req.params as { id: string }).id);
    const to = String((req.body as Record<string, unknown> | undefined)?.to ?? "");
    try {
      // Send as the user's mailbox the fax was routed to: forwarding rights follow the mailbox.
      const routed = routedTo(ctx.config, fax).map(bareAddress);
      const from = who.senders.find((s) => routed.includes(s));
      const r = await submitFax(ctx.intake, who, req.ip, { to: to.split(/[\n,]/).filter((t) => t.trim() !== ""), files: [], forwardOf: fax.rcMessageId, from });
      return back(reply, `/outbox/${r.id}`, `Forwarding the fax as ${r.id}.`);
    } catch (err) {
      if (err instanceof IntakeRefusal) return back(reply, "/inbox", err.message, true);
      throw err;
    }
  });

  app.get("/send", guarded, async (req, reply) => sendHtml(reply, sendPage({ ...base(req, reply), senders: me(req).senders })));

  app.post("/send", guardedPost, async (req, reply) => {
    const who = me(req);
    if (!req.isMultipart()) return sendHtml(reply, sendPage({ ...base(req, reply), senders: who.senders, error: "The form must be sent as multipart/form-data." }), 415);
    const dir = join(ctx.uploadDir, newId());
    let to = "";
    let coverText = "";
    try {
      const upload = await readUpload(req.parts() as AsyncIterable<UploadPart>, dir);
      to = upload.fields.get("to")?.join("\n") ?? "";
      coverText = upload.fields.get("coverText")?.[0] ?? "";
      const r = await submitFax(ctx.intake, who, req.ip, { to: to.split(/[\n,]/).filter((t) => t.trim() !== ""), files: upload.files, coverText });
      return back(reply, `/outbox/${r.id}`, `Fax ${r.id} accepted; it goes out within seconds.`);
    } catch (err) {
      const message = err instanceof IntakeRefusal ? err.message : (err as { statusCode?: number }).statusCode === 413 ? "The documents are too large." : undefined;
      if (message === undefined) throw err;
      const status = err instanceof IntakeRefusal ? err.status : 413;
      return sendHtml(reply, sendPage({ ...base(req, reply), senders: who.senders, error: message, values: { to, coverText } }), status);
    } finally {
      await removeUpload(dir);
    }
  });

  let doctor: { at: number; checks: readonly { name: string; status: string; message: string; fix?: string }[] } | undefined;
  let doctorRunning: Promise<void> | undefined;
  app.post("/status/doctor", guardedPost, async (req, reply) => {
    if (!me(req).admin) throw new ActionError(403, "the status page is for administrators");
    // The checks log in to RingCentral (a scarce Auth budget): at most once a minute, one at a time.
    if (doctor === undefined || ctx.now() - doctor.at > 60_000) {
      doctorRunning ??= ctx
        .doctor()
        .then((checks) => {
          doctor = { at: ctx.now(), checks };
        })
        .finally(() => {
          doctorRunning = undefined;
        });
      await doctorRunning;
    }
    return reply.code(303).redirect("/status");
  });

  app.get("/status", guarded, async (req, reply) => {
    if (!me(req).admin) throw new ActionError(403, "the status page is for administrators");
    const [outbound, inbound, checks, failed, dead] = await Promise.all([
      ctx.outbound.countByState(),
      ctx.inbound.countByState(),
      ctx.checks(),
      ctx.outbound.list({ state: "failed", limit: 10, newestFirst: true }),
      ctx.inbound.listInbound({ state: "dead", limit: 10, newestFirst: true }),
    ]);
    const errors = [
      ...failed.map((j) => ({ id: j.id, when: new Date(j.updatedAt).toISOString().slice(0, 16), text: j.errorText ?? j.lastError ?? "failed", kind: "sent" })),
      ...dead.map((f) => ({ id: f.id, when: new Date(f.updatedAt).toISOString().slice(0, 16), text: f.lastError ?? "not deliverable", kind: "received" })),
    ];
    return sendHtml(reply, statusPage({ ...base(req, reply), outbound, inbound, limits: ctx.client.rateLimitState(), checks, errors, doctor }));
  });

  registerLinks(app, ctx, { sessionOf, sendHtml, base });

  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith("/api/")) return reply.code(404).type("application/problem+json").send({ type: "about:blank", title: "Not Found", status: 404, detail: "no such API endpoint" });
    return sendHtml(reply, messagePage({ ...base(req, reply), title: "Not found", text: "There is no such page.", action: html`<a href="/">Back</a>` }), 404);
  });
}
