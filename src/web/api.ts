import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type {} from "@fastify/multipart";
import { join } from "node:path";
import { AuthLockout } from "../policy/abuse.js";
import { INBOUND_STATES, type InboundState } from "../store/inbound.js";
import { JOB_STATES, type JobState } from "../store/outbound.js";
import { newId } from "../util/ids.js";
import { TokenAuth, type Identity } from "./auth.js";
import type { WebContext } from "./context.js";
import { ActionError, cancelFax, inboundDocument, listInbound, listJobs, redeliverInbound, visibleInbound, visibleJob } from "./faxes.js";
import { IntakeRefusal, readUpload, removeUpload, submitFax, type UploadPart } from "./intake.js";
import { OPENAPI } from "./openapi.js";
import { faxView, inboundView } from "./views-data.js";

/**
 * The REST API under /api/v1: bearer tokens (each one sender identity),
 * RFC 9457 problem details for every refusal, Idempotency-Key on submission.
 */

declare module "fastify" {
  interface FastifyRequest {
    apiIdentity?: Identity;
  }
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  507: "Insufficient Storage",
};

export function sendProblem(reply: FastifyReply, status: number, detail: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply
    .code(status)
    .type("application/problem+json")
    .send({ type: "about:blank", title: TITLES[status] ?? "Error", status, detail, ...extra });
}

function problemOf(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof IntakeRefusal) return sendProblem(reply, err.status, err.message, { smtpCode: err.smtpCode });
  if (err instanceof ActionError) return sendProblem(reply, err.status, err.message);
  throw err;
}

function states<T extends string>(raw: unknown, all: readonly T[]): T[] | undefined {
  if (typeof raw !== "string" || raw === "") return undefined;
  const out = raw.split(",").map((s) => s.trim());
  for (const s of out) if (!(all as readonly string[]).includes(s)) throw new ActionError(400, `unknown state "${s}"; one of ${all.join(", ")}`);
  return out as T[];
}

function limitOf(raw: unknown): number {
  if (raw === undefined || raw === "") return 50;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new ActionError(400, "limit must be an integer from 1 to 200");
  return n;
}

function afterOf(raw: unknown): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (typeof raw !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new ActionError(400, "after must be an id from a previous page");
  return raw;
}

function acceptedBody(id: string, recipients: string[]): { id: string; state: "received"; recipients: string[]; location: string } {
  return { id, state: "received", recipients, location: `/api/v1/faxes/${id}` };
}

function replay(reply: FastifyReply, status: number, response: string): FastifyReply {
  const body = JSON.parse(response) as { location: string };
  return reply.code(status).header("idempotent-replayed", "true").header("location", body.location).send(body);
}

export function registerApi(app: FastifyInstance, ctx: WebContext): void {
  /** Idempotency keys being answered by this process right now. */
  const inFlight = new Set<string>();
  const tokens = new TokenAuth(ctx.config.api.tokens);
  const abuse = ctx.config.policy.abuse;
  const lockout = new AuthLockout({
    maxFailures: abuse.authMaxFailures,
    windowMs: abuse.authFailureWindowSeconds * 1000,
    lockoutMs: abuse.authLockoutSeconds * 1000,
    baseDelayMs: 0,
    now: ctx.now,
  });
  const log = ctx.logger;

  app.get("/api/v1/openapi.json", async (_req, reply) => reply.type("application/json").send(OPENAPI));

  const who = (req: FastifyRequest): Identity => {
    if (req.apiIdentity === undefined) throw new Error("unauthenticated request reached a handler");
    return req.apiIdentity;
  };

  app.register(async (api) => {
    api.addHook("onRequest", async (req, reply) => {
      const until = lockout.lockedUntil(req.ip);
      if (until !== undefined) {
        reply.header("retry-after", String(Math.ceil((until - ctx.now()) / 1000)));
        return sendProblem(reply, 429, `too many failed logins from ${req.ip}; try again after ${new Date(until).toISOString()}`);
      }
      const header = req.headers.authorization ?? "";
      const m = /^Bearer ([\x21-\x7e]+)$/i.exec(header);
      const id = m?.[1] === undefined ? undefined : await tokens.verify(m[1]);
      if (id === undefined) {
        if (header !== "") {
          const r = lockout.failed(req.ip);
          log.warn({ event: "api.auth_failed", client: req.ip, locked: r.locked }, "API request with an unknown token");
        }
        reply.header("www-authenticate", 'Bearer realm="faxbridge"');
        return sendProblem(reply, 401, header === "" ? "send an API token: Authorization: Bearer <token>" : "unknown API token");
      }
      lockout.succeeded(req.ip);
      req.apiIdentity = id;
      return undefined;
    });

    api.post("/api/v1/faxes", async (req, reply) => {
      if (!req.isMultipart()) return sendProblem(reply, 415, "send the fax as multipart/form-data (fields to, file, coverText, resolution, sendTime, notify)");
      const identity = who(req);
      const key = req.headers["idempotency-key"];
      if (key !== undefined && (typeof key !== "string" || key.length === 0 || key.length > 255)) return sendProblem(reply, 400, "Idempotency-Key must be 1 to 255 characters");
      const dir = join(ctx.uploadDir, newId());
      const slot = `${identity.name}\0${key ?? ""}`;
      let ownSlot = false;
      try {
        let upload;
        try {
          upload = await readUpload(req.parts() as AsyncIterable<UploadPart>, dir);
        } catch (err) {
          if (err instanceof IntakeRefusal) throw err;
          const code = (err as { statusCode?: number }).statusCode;
          if (code === 413) throw new IntakeRefusal(552, `message exceeds fixed maximum message size ${ctx.config.smtp.maxMessageBytes}`, 413);
          throw new IntakeRefusal(554, `malformed upload: ${(err as Error).message}`, 400);
        }
        const jobId = newId();
        if (key !== undefined) {
          const claim = await ctx.web.claimIdempotency(identity.name, key, upload.hash, jobId);
          if (claim.kind === "replay") return replay(reply, claim.status, claim.response);
          if (claim.kind === "mismatch") return sendProblem(reply, 422, "this Idempotency-Key was used with a different request in the last 24 hours");
          if (claim.kind === "in_progress" && inFlight.has(slot)) return sendProblem(reply, 409, "a request with this Idempotency-Key is still being processed; retry shortly");
          // Right after the claim (no await between): a concurrent request with the same key now sees it in flight.
          inFlight.add(slot);
          ownSlot = true;
          if (claim.kind === "in_progress") {
            // Left unanswered by a daemon that stopped mid-request: the job either made it to the queue or not at all.
            const job = await ctx.outbound.get(claim.jobId);
            if (job !== undefined) {
              const body = acceptedBody(job.id, job.rcptTo.map((r) => r.e164));
              await ctx.web.settleIdempotency(identity.name, key, 202, JSON.stringify(body));
              return replay(reply, 202, JSON.stringify(body));
            }
            await ctx.web.reclaimIdempotency(identity.name, key, jobId);
          }
        }
        const f = upload.fields;
        const one = (name: string): string | undefined => f.get(name)?.[0];
        let result;
        try {
          result = await submitFax(ctx.intake, identity, req.ip, {
            id: jobId,
            to: (f.get("to") ?? []).flatMap((t) => t.split(",")).filter((t) => t.trim() !== ""),
            files: upload.files,
            coverText: one("coverText"),
            resolution: one("resolution"),
            sendTime: one("sendTime"),
            notify: one("notify"),
          });
        } catch (err) {
          if (key !== undefined) await ctx.web.settleIdempotency(identity.name, key, 0, undefined);
          throw err;
        }
        const body = acceptedBody(result.id, result.recipients.map((r) => r.e164));
        if (key !== undefined) await ctx.web.settleIdempotency(identity.name, key, 202, JSON.stringify(body));
        return reply.code(202).header("location", body.location).send(body);
      } catch (err) {
        return problemOf(reply, err);
      } finally {
        if (ownSlot) inFlight.delete(slot);
        await removeUpload(dir);
      }
    });

    api.get("/api/v1/faxes", async (req, reply) => {
      try {
        const q = req.query as Record<string, unknown>;
        const page = await listJobs(ctx, who(req), { state: states<JobState>(q.state, JOB_STATES), after: afterOf(q.after), limit: limitOf(q.limit) });
        return { items: page.items.map(faxView), next: page.next };
      } catch (err) {
        return problemOf(reply, err);
      }
    });

    api.get("/api/v1/faxes/:id", async (req, reply) => {
      try {
        return faxView(await visibleJob(ctx, who(req), (req.params as { id: string }).id));
      } catch (err) {
        return problemOf(reply, err);
      }
    });

    api.post("/api/v1/faxes/:id/cancel", async (req, reply) => {
      try {
        return faxView(await cancelFax(ctx, who(req), (req.params as { id: string }).id));
      } catch (err) {
        return problemOf(reply, err);
      }
    });

    api.post("/api/v1/faxes/:id/resend", async (req, reply) => {
      try {
        const identity = who(req);
        const job = await visibleJob(ctx, identity, (req.params as { id: string }).id);
        if (job.rcMessageId === null) throw new ActionError(409, `fax ${job.id} never reached RingCentral, so there is nothing to resend; submit it again`);
        const body = (req.body ?? {}) as { to?: unknown };
        const to = Array.isArray(body.to) ? body.to.filter((t): t is string => typeof t === "string") : job.rcptTo.map((r) => r.e164);
        const r = await submitFax(ctx.intake, identity, req.ip, { to, files: [], forwardOf: job.rcMessageId });
        const accepted = acceptedBody(r.id, r.recipients.map((x) => x.e164));
        return reply.code(202).header("location", accepted.location).send(accepted);
      } catch (err) {
        return problemOf(reply, err);
      }
    });

    api.get("/api/v1/inbound", async (req, reply) => {
      try {
        const q = req.query as Record<string, unknown>;
        const page = await listInbound(ctx, who(req), { state: states<InboundState>(q.state, INBOUND_STATES), after: afterOf(q.after), limit: limitOf(q.limit) });
        return { items: page.items.map((f) => inboundView(ctx.config, f)), next: page.next };
      } catch (err) {
        return problemOf(reply, err);
      }
    });

    api.get("/api/v1/inbound/:id", async (req, reply) => {
      try {
        return inboundView(ctx.config, await visibleInbound(ctx, who(req), (req.params as { id: string }).id));
      } catch (err) {
        return problemOf(reply, err);
      }
    });

    api.get("/api/v1/inbound/:id/document", async (req, reply) => {
      try {
        const identity = who(req);
        const fax = await visibleInbound(ctx, identity, (req.params as { id: string }).id);
        const doc = await inboundDocument(ctx, fax);
        ctx.audit.record({ type: "web.access", action: "document.read", faxId: fax.id, actor: identity.user, client: req.ip, via: "api" });
        reply.type(doc.contentType).header("content-disposition", `inline; filename="fax-${fax.id}.pdf"`).header("cache-control", "private, no-store").header("x-content-type-options", "nosniff");
        if (doc.size !== undefined) reply.header("content-length", String(doc.size));
        return reply.send(doc.body);
      } catch (err) {
        return problemOf(reply, err);
      }
    });

    api.post("/api/v1/inbound/:id/redeliver", async (req, reply) => {
      try {
        const fax = await redeliverInbound(ctx, who(req), (req.params as { id: string }).id);
        return reply.code(202).send(inboundView(ctx.config, fax));
      } catch (err) {
        return problemOf(reply, err);
      }
    });
  });
}
