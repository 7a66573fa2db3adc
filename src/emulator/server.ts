import { createHash } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { AuthStore, Session } from "./auth.js";
import { ACCOUNT_ID } from "./constants.js";
import { handleControl, type ControlDeps } from "./control.js";
import type { Extension } from "./extensions.js";
import type { Fault } from "./faults.js";
import { ApiFailure, notFound, rcError, readForm, readJson, sendEmpty, sendJson, userPermissionDenied } from "./http.js";
import { deleteMessage, listMessages, readContent, readMessage, updateMessage } from "./messages.js";
import type { Group, RateLimiter } from "./ratelimit.js";
import { faxResponseJson } from "./store.js";
import type { WebSocketGateway } from "./websocket.js";

export interface ServerDeps extends ControlDeps {
  auth: AuthStore;
  limiter: RateLimiter;
  ws: WebSocketGateway;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: string[];
  session: Session | undefined;
  /** The token's extension (bearer routes). */
  ext: Extension | undefined;
  /** The urlencoded body of token endpoint calls ("client" routes), read before the rate-limit check. */
  form: URLSearchParams | undefined;
  base: string;
}

interface Route {
  method: string;
  /** The spec's path template, used for call counts. */
  template: string;
  re: RegExp;
  group: Group;
  /** "bearer": needs an access token; "client": token endpoints (client auth checked by the handler). */
  auth: "bearer" | "client";
  handle: (ctx: Ctx, deps: ServerDeps) => Promise<void>;
}

const EXT = "/restapi/v1.0/account/{accountId}/extension/{extensionId}";
const MS = `${EXT}/message-store`;

function route(method: string, template: string, group: Group, auth: Route["auth"], handle: Route["handle"]): Route {
  const pattern = template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "([^/]+)");
  return { method, template, re: new RegExp(`^${pattern}/?$`), group, auth, handle };
}

/**
 * The extension a `/account/{accountId}/extension/{extensionId}` path names,
 * which must be the token's own: `~` or its id. Another extension of the
 * account answers 403 as RingCentral does for a user without the right to it
 * (the operation's x-user-permission, CMN-408); an unknown id or another
 * account is not found.
 */
function own(ctx: Ctx, d: ServerDeps, userPermission: string): Extension {
  const [account, extension] = ctx.params;
  const ext = ctx.ext;
  if (ext === undefined) throw rcError(401, "CMN-405", "Login to extension required.");
  if (account !== "~" && account !== ACCOUNT_ID) throw notFound("accountId", account);
  if (extension === "~" || extension === ext.info.extensionId) return ext;
  if (extension !== undefined && d.extensions.byId(extension) !== undefined) throw userPermissionDenied(userPermission);
  throw notFound("extensionId", extension);
}

/** The token's extension, for routes outside an extension path (subscriptions). */
function caller(ctx: Ctx): Extension {
  if (ctx.ext === undefined) throw rcError(401, "CMN-405", "Login to extension required.");
  return ctx.ext;
}

const CONTENT_RE = /\/message-store\/[^/]+\/content\/[^/]+\/?$/;

const ROUTES: Route[] = [
  route("POST", "/restapi/oauth/token", "Auth", "client", async ({ req, res, form }, d) => {
    sendJson(res, 200, d.auth.grant(req, form ?? (await readForm(req))), { "Cache-Control": "no-store", Pragma: "no-cache" });
  }),
  route("POST", "/restapi/oauth/revoke", "Auth", "client", async ({ req, res, url, form }, d) => {
    d.auth.revoke(req, form ?? (await readForm(req)), url.searchParams.get("token"));
    sendEmpty(res, 200);
  }),
  route("POST", "/restapi/oauth/wstoken", "Auth", "bearer", async ({ res, session, base }, d) => {
    if (!session) throw rcError(401, "OAU-123", "Authorization header is not specified");
    const t = d.auth.wsToken(session);
    sendJson(res, 200, { ws_access_token: t.token, uri: `${base.replace(/^http/, "ws")}/ws`, expires_in: t.expiresIn });
  }),
  route("POST", `${EXT}/fax`, "Heavy", "bearer", async (ctx, d) => {
    const msg = await own(ctx, d, "OutboundFaxes").fax.send(ctx.req);
    sendJson(ctx.res, 200, faxResponseJson(msg, ctx.base));
  }),
  route("GET", MS, "Light", "bearer", async (ctx, d) => {
    sendJson(ctx.res, 200, listMessages(own(ctx, d, "ReadMessages").store, ctx.url, ctx.base));
  }),
  route("GET", `${MS}/{messageId}`, "Light", "bearer", async (ctx, d) => {
    sendJson(ctx.res, 200, readMessage(own(ctx, d, "ReadMessages").store, ctx.params[2] ?? "", ctx.base));
  }),
  route("PUT", `${MS}/{messageId}`, "Medium", "bearer", async (ctx, d) => {
    sendJson(ctx.res, 200, await updateMessage(own(ctx, d, "EditMessages").store, ctx.params[2] ?? "", ctx.req, ctx.base, false));
  }),
  route("PATCH", `${MS}/{messageId}`, "Medium", "bearer", async (ctx, d) => {
    sendJson(ctx.res, 200, await updateMessage(own(ctx, d, "EditMessages").store, ctx.params[2] ?? "", ctx.req, ctx.base, true));
  }),
  route("DELETE", `${MS}/{messageId}`, "Medium", "bearer", async (ctx, d) => {
    deleteMessage(own(ctx, d, "EditMessages").store, ctx.params[2] ?? "", ctx.url, ctx.res);
  }),
  route("GET", `${MS}/{messageId}/content/{attachmentId}`, "Medium", "bearer", async (ctx, d) => {
    await readContent(own(ctx, d, "ReadMessages").store, ctx.params[2] ?? "", ctx.params[3] ?? "", ctx.url, ctx.req, ctx.res);
  }),
  route("GET", `${EXT}/message-sync`, "Light", "bearer", async (ctx, d) => {
    sendJson(ctx.res, 200, own(ctx, d, "ReadMessages").sync.sync(ctx.url, ctx.base));
  }),
  route("GET", "/restapi/v1.0/dictionary/fax-cover-page", "Light", "bearer", async ({ res, url, base }) => {
    sendJson(res, 200, coverPages(url, base));
  }),
  // Subscriptions belong to the token's extension: another extension's id is as unknown as any other.
  route("POST", "/restapi/v1.0/subscription", "Medium", "bearer", async (ctx, d) => {
    const sub = await d.subs.create(await readJson(ctx.req), caller(ctx).info.extensionId);
    sendJson(ctx.res, 200, d.subs.json(sub, ctx.base));
  }),
  route("GET", "/restapi/v1.0/subscription", "Light", "bearer", async (ctx, d) => {
    const records = d.subs.list(caller(ctx).info.extensionId).map((s) => d.subs.json(s, ctx.base));
    sendJson(ctx.res, 200, { uri: `${ctx.base}/restapi/v1.0/subscription`, records });
  }),
  route("GET", "/restapi/v1.0/subscription/{subscriptionId}", "Light", "bearer", async (ctx, d) => {
    sendJson(ctx.res, 200, d.subs.json(d.subs.get(ctx.params[0] ?? "", caller(ctx).info.extensionId), ctx.base));
  }),
  route("PUT", "/restapi/v1.0/subscription/{subscriptionId}", "Medium", "bearer", async (ctx, d) => {
    const sub = d.subs.update(ctx.params[0] ?? "", await readJson(ctx.req), caller(ctx).info.extensionId);
    sendJson(ctx.res, 200, d.subs.json(sub, ctx.base));
  }),
  route("DELETE", "/restapi/v1.0/subscription/{subscriptionId}", "Medium", "bearer", async (ctx, d) => {
    d.subs.delete(ctx.params[0] ?? "", caller(ctx).info.extensionId);
    sendEmpty(ctx.res, 204);
  }),
  route("POST", "/restapi/v1.0/subscription/{subscriptionId}/renew", "Light", "bearer", async (ctx, d) => {
    sendJson(ctx.res, 200, d.subs.json(d.subs.renew(ctx.params[0] ?? "", caller(ctx).info.extensionId), ctx.base));
  }),
];

/**
 * App permissions per operation (the spec's x-app-permission; the WebSocket
 * token also accepts the scope name apps are granted, WebSocketsSubscription).
 * Checked only when the emulator runs with `permissions`.
 */
const PERMISSIONS: Readonly<Record<string, readonly string[]>> = {
  "POST /restapi/oauth/wstoken": ["WebSocketsSubscription", "WebSocket"],
  [`POST ${EXT}/fax`]: ["Faxes"],
  [`GET ${MS}`]: ["ReadMessages"],
  [`GET ${MS}/{messageId}`]: ["ReadMessages"],
  [`PUT ${MS}/{messageId}`]: ["EditMessages"],
  [`PATCH ${MS}/{messageId}`]: ["EditMessages"],
  [`DELETE ${MS}/{messageId}`]: ["EditMessages"],
  [`GET ${MS}/{messageId}/content/{attachmentId}`]: ["ReadMessages"],
  [`GET ${EXT}/message-sync`]: ["ReadMessages"],
};

const COVER_PAGES = [
  "None", "Ancient", "Birthday", "Blank", "Clasmod", "Classic", "Confidential", "Contempo", "Elegant", "Express",
  "Formal", "Jazzy", "Modern", "Urgent",
];

/** ListFaxCoverPagesResponse; ids are strings "0".."13" (en-US). */
function coverPages(url: URL, base: string): Record<string, unknown> {
  const page = Math.max(1, Number(url.searchParams.get("page") ?? "1") || 1);
  const perPage = Math.min(1000, Math.max(1, Number(url.searchParams.get("perPage") ?? "100") || 100));
  const all = COVER_PAGES.map((name, i) => ({ id: String(i), name }));
  const start = (page - 1) * perPage;
  const records = all.slice(start, start + perPage);
  const totalPages = Math.max(1, Math.ceil(all.length / perPage));
  const pageUri = (n: number): { uri: string } => ({ uri: `${base}/restapi/v1.0/dictionary/fax-cover-page?page=${n}&perPage=${perPage}` });
  const navigation: Record<string, { uri: string }> = { firstPage: pageUri(1), lastPage: pageUri(totalPages) };
  if (page < totalPages) navigation["nextPage"] = pageUri(page + 1);
  if (page > 1) navigation["previousPage"] = pageUri(page - 1);
  const paging: Record<string, number> = { page: Math.min(page, 1000), perPage, totalPages, totalElements: all.length };
  if (records.length > 0) {
    paging["pageStart"] = start;
    paging["pageEnd"] = start + records.length - 1;
  }
  return { uri: `${base}/restapi/v1.0/dictionary/fax-cover-page?page=${page}&perPage=${perPage}`, records, navigation, paging };
}

function sendFailure(res: ServerResponse, err: ApiFailure): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.status, err.body, err.headers);
}

/**
 * The API server, or with `media` the media host: a second origin that
 * serves attachment content only, as media.ringcentral.com does.
 */
export function createServer(deps: ServerDeps, baseUrl: () => string, opts: { media?: boolean } = {}): http.Server {
  const media = opts.media === true;
  const server = http.createServer((req, res) => {
    handle(deps, baseUrl(), req, res, media).catch((err: unknown) => {
      if (err instanceof ApiFailure) {
        sendFailure(res, err);
        if (!req.complete) req.resume();
        return;
      }
      deps.log.error({ event: "emulator.request_failed", err, method: req.method, path: req.url?.split("?")[0] }, "request failed");
      sendFailure(res, rcError(500, "CMN-201", "Internal server error"));
    });
  });
  server.on("upgrade", (req: IncomingMessage, socket, head: Buffer) => {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/ws" && !media) deps.ws.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  return server;
}

async function handle(deps: ServerDeps, base: string, req: IncomingMessage, res: ServerResponse, media: boolean): Promise<void> {
  const url = new URL(req.url ?? "/", base);
  if (media && !CONTENT_RE.test(url.pathname)) throw rcError(404, "CMN-120", "Resource not found");
  if (url.pathname.startsWith("/emulator/")) {
    if (!(await handleControl(deps, req, res, url))) throw rcError(404, "CMN-102", "Resource for parameter [path] is not found");
    return;
  }
  const method = req.method ?? "GET";
  let matched: { route: Route; params: string[] } | undefined;
  let pathKnown = false;
  for (const r of ROUTES) {
    const m = r.re.exec(url.pathname);
    if (!m) continue;
    pathKnown = true;
    if (r.method === method) {
      matched = { route: r, params: m.slice(1).map((p) => decodeURIComponent(p)) };
      break;
    }
  }
  if (!matched) {
    // RingCentral routes by method and path together: a known path with another method is as unknown as
    // any other URI (CMN-405 is RingCentral's "Login to extension required", never a method error).
    const allow = ROUTES.filter((r) => r.re.test(url.pathname)).map((r) => r.method);
    throw rcError(pathKnown ? 405 : 404, "CMN-120", "Resource not found", {}, pathKnown ? { Allow: allow.join(", ") } : {});
  }
  const { route: r, params } = matched;
  const routeKey = `${method} ${r.template}`;
  let ext: Extension | undefined;
  res.on("close", () => deps.calls.record(r.group, routeKey, res.writableFinished ? String(res.statusCode) : "reset", ext?.info.extensionId));

  if (await injectFault(deps, deps.faults.take(r.group, url.pathname), r.group, routeKey, req)) return;

  let session: Session | undefined;
  let form: URLSearchParams | undefined;
  let key: string;
  if (r.auth === "bearer") {
    const isContent = r.template.endsWith("/content/{attachmentId}");
    session = deps.auth.authenticate(req, isContent ? url.searchParams.get("access_token") : undefined);
    ext = deps.extensions.byId(session.ownerId);
    // Rate-limit buckets are per app and extension: each extension has its own.
    key = `${session.clientId}:${session.ownerId}`;
    if (ext !== undefined && (await injectFault(deps, deps.faults.take(r.group, url.pathname, ext.info.extensionId), r.group, routeKey, req))) return;
    deps.auth.requirePermission(PERMISSIONS[routeKey] ?? []);
  } else {
    // Auth limits are per app and user too (NOTES §h: 5 requests/user/min): the user is the JWT's or the token's extension.
    form = await readForm(req);
    key = `client:${clientKey(req)}:${authUser(deps, form, url)}`;
  }
  const decision = deps.limiter.check(r.group, key);
  for (const [h, v] of Object.entries(decision.headers)) res.setHeader(h, v);
  if (!decision.ok) throw decision.failure;
  await r.handle({ req, res, url, params, session, ext, form, base }, deps);
}

/** Applies an injected fault: throws the failure, or delays; true when the connection was dropped. */
async function injectFault(deps: ServerDeps, fault: Fault | undefined, group: Group, routeKey: string, req: IncomingMessage): Promise<boolean> {
  if (!fault) return false;
  deps.log.info({ event: "emulator.fault", kind: fault.kind, route: routeKey, extensionId: fault.extensionId }, "fault injected");
  if (fault.kind === "reset") {
    req.socket.destroy();
    return true;
  }
  if (fault.kind === "429") throw deps.limiter.tooMany(group, fault.retryAfter ?? 60);
  if (fault.kind === "status") {
    const status = fault.status ?? 503;
    const code = status >= 500 ? "CMN-201" : "CMN-101";
    const headers: Record<string, string> = fault.retryAfter !== undefined ? { "Retry-After": String(fault.retryAfter) } : {};
    throw rcError(status, code, status >= 500 ? "Service temporarily unavailable" : "Injected failure", {}, headers);
  }
  await sleep(fault.latencyMs ?? 1000);
  return false;
}

/**
 * The user a token endpoint call counts against: the extension its JWT (logs
 * in as) or token belongs to; a refused JWT counts as itself (by digest),
 * anything else as "unknown".
 */
function authUser(deps: ServerDeps, form: URLSearchParams, url: URL): string {
  const grant = form.get("grant_type");
  const assertion = form.get("assertion");
  if (grant === "urn:ietf:params:oauth:grant-type:jwt-bearer" && assertion !== null && assertion !== "") {
    return deps.extensions.peek(assertion) ?? `jwt:${createHash("sha256").update(assertion).digest("hex").slice(0, 16)}`;
  }
  const token = grant === "refresh_token" ? form.get("refresh_token") : (form.get("token") ?? url.searchParams.get("token"));
  return (token !== null && token !== "" ? deps.auth.ownerOfToken(token) : undefined) ?? "unknown";
}

/** The rate-limit key of unauthenticated (token endpoint) calls: the client id of the Basic header. */
function clientKey(req: IncomingMessage): string {
  const header = req.headers.authorization ?? "";
  if (!/^basic\s/i.test(header)) return "anonymous";
  const decoded = Buffer.from(header.replace(/^basic\s+/i, ""), "base64").toString("utf8");
  return decoded.split(":")[0] ?? "anonymous";
}
