import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { errorMessage } from "../errors.js";
import { withTimeout, type DependencyState } from "../ops/dependencies.js";
import { HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS, READINESS_CHECK_TIMEOUT_MS } from "../tunables.js";

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/** A readiness check: resolves when fine, throws with a short reason when not. */
export type ReadinessCheck = () => Promise<void>;

export interface HttpServerDeps {
  host: string;
  port: number;
  logger: Logger;
  metrics: Metrics;
}

/** Thrown by readBody when the body is larger than allowed. */
export class BodyTooLarge extends Error {
  constructor(limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = "BodyTooLarge";
  }
}

/** Read a request body, refusing (and stopping reading) past `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) throw new BodyTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      req.destroy();
      throw new BodyTooLarge(limit);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * The daemon's HTTP listener: /healthz (liveness), /readyz (readiness: this
 * instance can accept and durably queue mail; dependency states ride along),
 * /metrics (Prometheus), plus routes other modules add (the RingCentral
 * webhook). Only the paths registered answer; everything else is 404.
 */
export class HttpServer {
  readonly #deps: HttpServerDeps;
  readonly #routes = new Map<string, RouteHandler>();
  readonly #checks = new Map<string, ReadinessCheck>();
  #fallback: RouteHandler | undefined;
  #dependencies: (() => Promise<Record<string, DependencyState>>) | undefined;
  #server: Server | undefined;
  #address: { host: string; port: number } | undefined;

  constructor(deps: HttpServerDeps) {
    this.#deps = deps;
    this.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { status: "ok" }));
    this.route("GET", "/readyz", (_req, res) => this.#ready(res));
    this.route("GET", "/metrics", async (_req, res) => {
      const text = await deps.metrics.registry.metrics();
      res.writeHead(200, { "content-type": deps.metrics.registry.contentType });
      res.end(text);
    });
  }

  route(method: string, path: string, handler: RouteHandler): void {
    this.#routes.set(`${method} ${path}`, handler);
  }

  /** Paths no route here knows go to this handler (the web console and REST API, src/web/) instead of a 404. */
  fallback(handler: RouteHandler): void {
    this.#fallback = handler;
  }

  readinessCheck(name: string, check: ReadinessCheck): void {
    this.#checks.set(name, check);
  }

  /** States of dependencies reported in the /readyz body without deciding readiness. */
  dependencies(provider: () => Promise<Record<string, DependencyState>>): void {
    this.#dependencies = provider;
  }

  get address(): { host: string; port: number } {
    if (!this.#address) throw new Error("HTTP server is not listening");
    return this.#address;
  }

  async listen(): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#deps.logger.error({ event: "http.error", err, path: req.url }, "HTTP handler failed");
        if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
        else res.destroy();
      });
    });
    // Long enough for a 50 MB fax upload to the web API on a slow uplink; headersTimeout still stops slow-header clients.
    server.requestTimeout = HTTP_REQUEST_TIMEOUT_MS;
    server.headersTimeout = HTTP_HEADERS_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(err.code === "EADDRINUSE" ? new Error(`HTTP port ${this.#deps.port} on ${this.#deps.host} is already in use (set FAXBRIDGE_HTTP_PORT)`, { cause: err }) : err),
      );
      server.listen(this.#deps.port, this.#deps.host, () => resolve());
    });
    this.#server = server;
    const addr = server.address() as AddressInfo;
    this.#address = { host: addr.address, port: addr.port };
    return this.#address;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const handler = this.#routes.get(`${req.method ?? "GET"} ${path}`);
    if (handler) return handler(req, res);
    const known = [...this.#routes.keys()].some((k) => k.endsWith(` ${path}`));
    if (!known && this.#fallback !== undefined) return this.#fallback(req, res);
    sendJson(res, known ? 405 : 404, { error: known ? "method not allowed" : "not found" });
  }

  /** Run the readiness checks: ok when every one passes, with each one's result. */
  async readiness(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const results: Record<string, string> = {};
    let ok = true;
    await Promise.all(
      [...this.#checks].map(async ([name, check]) => {
        try {
          await withTimeout(check(), READINESS_CHECK_TIMEOUT_MS);
          results[name] = "ok";
        } catch (err) {
          ok = false;
          results[name] = errorMessage(err);
        }
      }),
    );
    return { ok, checks: results };
  }

  async #ready(res: ServerResponse): Promise<void> {
    const { ok, checks } = await this.readiness();
    const dependencies = this.#dependencies !== undefined ? await this.#dependencies() : undefined;
    this.#deps.metrics.ready.set(ok ? 1 : 0);
    sendJson(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready", checks, ...(dependencies !== undefined ? { dependencies } : {}) });
  }
}
