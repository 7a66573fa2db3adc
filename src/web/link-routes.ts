import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type {} from "@fastify/csrf-protection";
import { canSeeInbound, type Identity } from "./auth.js";
import type { WebContext } from "./context.js";
import { inboundDocument } from "./faxes.js";
import { html, type Html } from "./html.js";
import { verifyLink } from "./links.js";
import { messagePage } from "./pages.js";
import { routedTo } from "./views-data.js";

/**
 * /l/<signed link>: the links mailed for received faxes in link-only mode.
 * A valid, unexpired link opens the fax for a signed-in console user allowed
 * to see it (inbound.linkAccess "sign-in"), or once for anyone holding it
 * ("one-time": a confirmation page first, so mail scanners that fetch links
 * do not spend it). Every opening and every refusal is audited.
 */

interface Helpers {
  sessionOf(req: FastifyRequest): Promise<Identity | undefined>;
  sendHtml(reply: FastifyReply, body: Html, status?: number): FastifyReply;
  base(req: FastifyRequest, reply: FastifyReply): { user: { name: string; admin: boolean } | undefined; csrf: string; flash: undefined | { text: string; error?: boolean } };
}

export function registerLinks(app: FastifyInstance, ctx: WebContext, h: Helpers): void {
  const oneTime = ctx.config.inbound.linkAccess === "one-time";

  const refuse = (req: FastifyRequest, reply: FastifyReply, faxId: string, reason: string, status: number, text: string): FastifyReply => {
    ctx.audit.record({ type: "web.access", action: "link.refused", faxId, actor: req.consoleUser?.user ?? "link", client: req.ip, via: "link", reason });
    ctx.logger.info({ event: "web.link_refused", faxId, reason, client: req.ip }, "fax link refused");
    return h.sendHtml(reply, messagePage({ ...h.base(req, reply), title: "This link does not open", text }), status);
  };

  const open = async (req: FastifyRequest, reply: FastifyReply, spend: boolean): Promise<FastifyReply> => {
    const token = (req.params as { token: string }).token;
    const check = verifyLink(ctx.key, token, ctx.now());
    if (!check.ok) {
      if (check.reason === "expired") return refuse(req, reply, check.faxId ?? "", "expired", 410, "This link has expired. Ask for the fax to be sent again, or open it from the console's Inbox.");
      return refuse(req, reply, "", check.reason, 404, "This link is not valid.");
    }
    const fax = await ctx.inbound.get(check.faxId);
    if (fax === undefined) return refuse(req, reply, check.faxId, "gone", 410, "This fax is no longer kept.");
    let actor = "link";
    if (!oneTime) {
      const who = await h.sessionOf(req);
      if (who === undefined) return reply.code(303).redirect(`/signin?next=${encodeURIComponent(`/l/${token}`)}`);
      req.consoleUser = who;
      if (!canSeeInbound(who, routedTo(ctx.config, fax))) return refuse(req, reply, fax.id, "not_allowed", 404, "This link is not valid.");
      actor = who.user;
    } else if (!spend) {
      const b = h.base(req, reply);
      return h.sendHtml(
        reply,
        messagePage({
          ...b,
          title: "Open a received fax",
          text: "This link opens the fax once. Open it now?",
          action: html`<form method="post" action="/l/${token}"><input type="hidden" name="_csrf" value="${b.csrf}"><button type="submit">Open the fax</button></form>`,
        }),
      );
    } else if (!(await ctx.web.spendLink(token))) {
      return refuse(req, reply, fax.id, "spent", 410, "This link was already used. Ask for the fax to be sent again.");
    }
    const doc = await inboundDocument(ctx, fax);
    ctx.audit.record({ type: "web.access", action: "link.open", faxId: fax.id, actor, client: req.ip, via: "link" });
    ctx.logger.info({ event: "web.link_opened", faxId: fax.id, actor, client: req.ip }, "fax opened through a mailed link");
    return reply.type(doc.contentType).header("content-disposition", `inline; filename="fax-${fax.id}.pdf"`).header("cache-control", "private, no-store").header("referrer-policy", "no-referrer").send(doc.body);
  };

  app.get("/l/:token", async (req, reply) => open(req, reply, false));
  app.post("/l/:token", { preHandler: app.csrfProtection }, async (req, reply) => {
    if (!oneTime) return reply.code(405).send();
    return open(req, reply, true);
  });
}
