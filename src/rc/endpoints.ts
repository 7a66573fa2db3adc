/**
 * Every RingCentral endpoint faxbridge calls, as one table (method, path,
 * auth, whether a retry is safe), and the bound caller the API modules use:
 * `rest.json("readMessage", schema, { params: { messageId } })`.
 */
import type { z } from "zod";
import type { Operation } from "./groups.js";
import type { Method, RequestBody } from "./http-util.js";
import type { CallSpec, Exchange, RcTransport, TokenSource } from "./transport.js";

export interface Endpoint {
  method: Method;
  /** Under the server URL; `{name}` is filled from the call's params (URL-encoded). None: the call gives an absolute URL. */
  path?: string;
  /** Basic client auth (token endpoint) or the Bearer token (API). Bearer calls are retried once after a 401. */
  auth: "bearer" | "basic";
  /** Safe to repeat: retried on network errors, 5xx and 429. */
  idempotent: boolean;
}

const EXT = "/restapi/v1.0/account/~/extension/{extensionId}";
const SUBSCRIPTION = "/restapi/v1.0/subscription";

export const ENDPOINTS = {
  getToken: { method: "POST", path: "/restapi/oauth/token", auth: "basic", idempotent: true },
  revokeToken: { method: "POST", path: "/restapi/oauth/revoke", auth: "basic", idempotent: false },
  authWsToken: { method: "POST", path: "/restapi/oauth/wstoken", auth: "bearer", idempotent: false },
  // A fax POST is never retried (except once after a 401, which RingCentral did not process).
  createFaxMessage: { method: "POST", path: "/restapi/v1.0/account/~/extension/~/fax", auth: "bearer", idempotent: false },
  listFaxCoverPages: { method: "GET", path: "/restapi/v1.0/dictionary/fax-cover-page", auth: "bearer", idempotent: true },
  readMessage: { method: "GET", path: `${EXT}/message-store/{messageId}`, auth: "bearer", idempotent: true },
  listMessages: { method: "GET", path: `${EXT}/message-store`, auth: "bearer", idempotent: true },
  syncMessages: { method: "GET", path: `${EXT}/message-sync`, auth: "bearer", idempotent: true },
  readMessageContent: { method: "GET", auth: "bearer", idempotent: true },
  updateMessage: { method: "PUT", path: `${EXT}/message-store/{messageId}`, auth: "bearer", idempotent: true },
  // A repeated DELETE would purge, and a purged message answers 404: the caller decides.
  deleteMessage: { method: "DELETE", path: `${EXT}/message-store/{messageId}`, auth: "bearer", idempotent: false },
  createSubscription: { method: "POST", path: SUBSCRIPTION, auth: "bearer", idempotent: false },
  readSubscription: { method: "GET", path: `${SUBSCRIPTION}/{id}`, auth: "bearer", idempotent: true },
  // Extends the subscription by its expiresIn: safe to repeat.
  renewSubscription: { method: "POST", path: `${SUBSCRIPTION}/{id}/renew`, auth: "bearer", idempotent: true },
  deleteSubscription: { method: "DELETE", path: `${SUBSCRIPTION}/{id}`, auth: "bearer", idempotent: true },
} as const satisfies Partial<Record<Operation, Endpoint>>;

export type Called = keyof typeof ENDPOINTS;

export interface CallArgs {
  /** Values for the path's `{name}` placeholders. `extensionId` defaults to "~" (the token's own extension). */
  params?: Record<string, string>;
  query?: URLSearchParams | undefined;
  /** The whole URL (navigation pages, media), instead of the table's path. */
  url?: URL;
  body?: () => Promise<RequestBody> | RequestBody;
  signal?: AbortSignal | undefined;
}

function encodeParam(name: string, value: string): string {
  const enc = encodeURIComponent(value);
  return name === "extensionId" ? enc.replace(/%7E/gi, "~") : enc;
}

/** URLs on the configured server, and which hosts may see the Bearer token. */
export class RcUrls {
  private readonly base: URL;
  private readonly basePath: string;
  private readonly mediaOrigins: ReadonlySet<string>;

  constructor(serverUrl: string, mediaOrigins: readonly string[] = []) {
    this.base = new URL(serverUrl);
    this.basePath = this.base.pathname.replace(/\/+$/, "");
    this.mediaOrigins = new Set(mediaOrigins.map((o) => new URL(o).origin));
  }

  url(path: string, params?: URLSearchParams): URL {
    const u = new URL(this.base.origin + this.basePath + path);
    if (params !== undefined) u.search = params.toString();
    return u;
  }

  /** A navigation URI from RingCentral, re-based onto the configured server (the token stays on our host). */
  rebase(uri: string): URL {
    const u = new URL(uri, this.base);
    return new URL(u.pathname + u.search, this.base.origin);
  }

  /** Only send the Bearer token to the configured origin, the configured media origins or https RingCentral hosts. */
  trustedUrl(uri: string): URL {
    const u = new URL(uri, this.base);
    if (u.origin === this.base.origin) return u;
    if (this.mediaOrigins.has(u.origin)) return u;
    if (u.protocol === "https:" && (u.hostname === "ringcentral.com" || u.hostname.endsWith(".ringcentral.com"))) return u;
    throw new TypeError(`refusing to send credentials to untrusted host ${u.host}`);
  }

  /** The call spec of a table entry. */
  spec(op: Called, args: CallArgs = {}): CallSpec {
    const e: Endpoint = ENDPOINTS[op];
    let url = args.url;
    if (url === undefined) {
      if (e.path === undefined) throw new TypeError(`internal: ${op} needs a URL`);
      const params: Record<string, string> = { extensionId: "~", ...args.params };
      const path = e.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
        const v = params[name];
        if (v === undefined) throw new TypeError(`internal: ${op} needs ${name}`);
        return encodeParam(name, v);
      });
      url = this.url(path, args.query);
    }
    return {
      operation: op,
      method: e.method,
      url,
      auth: e.auth,
      idempotent: e.idempotent,
      retryOn401: e.auth === "bearer",
      body: args.body,
      signal: args.signal,
    };
  }
}

/** What an API module calls: table entries, with this session's token. */
export interface Rest {
  readonly urls: RcUrls;
  /** The call with its retries; the caller reads or dumps the body. */
  call(op: Called, args?: CallArgs): Promise<Exchange>;
  /** The call, its JSON body validated. */
  json<S extends z.ZodType>(op: Called, schema: S, args?: CallArgs): Promise<z.output<S>>;
  /** A single exchange: no retry, no token (revoke). */
  once(op: Called, args?: CallArgs): Promise<Exchange>;
}

export function bindRest(transport: RcTransport, urls: RcUrls, tokens?: TokenSource): Rest {
  return {
    urls,
    call: (op, args) => transport.call(urls.spec(op, args), tokens),
    json: (op, schema, args) => transport.callJson(urls.spec(op, args), schema, tokens),
    once: (op, args) => transport.exchange(urls.spec(op, args), undefined),
  };
}
