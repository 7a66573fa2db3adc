import { mkdirSync, rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import cookie from "@fastify/cookie";
import csrf from "@fastify/csrf-protection";
import formbody from "@fastify/formbody";
import multipart from "@fastify/multipart";
import rateLimit from "@fastify/rate-limit";
import { registerApi, sendProblem } from "./api.js";
import { registerConsole } from "./console.js";
import type { WebContext } from "./context.js";
import { ActionError } from "./faxes.js";

export type { WebContext } from "./context.js";

/**
 * The web side: the REST API (/api/v1) and the operator console (/), one
 * Fastify application mounted on the daemon's HTTP listener (src/http/
 * keeps /healthz, /readyz, /metrics and the webhook; every other path comes
 * here).
 */
export interface WebApp {
  readonly app: FastifyInstance;
  /** A node:http handler for the listener. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  close(): Promise<void>;
}

export async function createWebApp(ctx: WebContext): Promise<WebApp> {
  // Half-received uploads and thumbnails of a previous run: no request owns them any more.
  for (const dir of [ctx.uploadDir, ctx.thumbDir]) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const proxies = ctx.config.web.trustProxy;
  const app = Fastify({ logger: false, trustProxy: proxies.length > 0 ? [...proxies] : false, bodyLimit: 1_048_576, return503OnClosing: true });
  await app.register(cookie, { secret: ctx.key.toString("base64") });
  await app.register(csrf, {
    cookieKey: "fb_csrf",
    cookieOpts: { path: "/", httpOnly: true, sameSite: "strict", signed: true, secure: ctx.config.web.publicUrl.startsWith("https:") },
    // Forms send it as a field; multipart forms (Send) in the action URL, as the body is streamed after the check.
    getToken: (req) =>
      (req.body as Record<string, string> | undefined)?._csrf ?? (req.headers["x-csrf-token"] as string | undefined) ?? (req.query as Record<string, string> | undefined)?._csrf,
  });
  await app.register(formbody, { bodyLimit: 65_536 });
  await app.register(multipart, {
    limits: { fileSize: ctx.config.smtp.maxMessageBytes, files: 20, fields: 50, fieldSize: 65_536, parts: 80 },
    throwFileSizeLimit: true,
  });
  await app.register(rateLimit, { max: 600, timeWindow: "1 minute" });

  app.addHook("onResponse", async (req, reply) => {
    // The route pattern, never the raw URL: a one-time link in a path is a credential.
    ctx.logger.debug({ event: "web.request", method: req.method, route: req.routeOptions.url ?? "(none)", status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, "HTTP request");
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const code = err instanceof ActionError ? err.status : err.statusCode;
    const status = code !== undefined && code >= 400 && code < 600 ? code : 500;
    if (status >= 500) ctx.logger.error({ event: "web.error", route: req.routeOptions.url, err }, "web request failed");
    const detail = status >= 500 ? "internal error; the log has details" : err.message;
    if (req.url.startsWith("/api/")) return sendProblem(reply, status, detail);
    return reply.code(status).type("text/html; charset=utf-8").send(`<!doctype html><meta charset="utf-8"><title>Error</title><p>${escapeText(detail)}</p><p><a href="/">Back</a></p>`);
  });

  registerApi(app, ctx);
  registerConsole(app, ctx);
  await app.ready();
  return {
    app,
    handle: (req, res) => app.routing(req, res),
    close: () => app.close(),
  };
}

function escapeText(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
