/**
 * How the intake reaches the fax pipeline, wherever it runs: a handle that
 * forwards wake-ups (a no-op until a pipeline is attached, and with
 * `--role intake` on SQLite, where the pipeline's one-second idle poll finds
 * new jobs), and for the pipeline process of `--role all` the HTTP parts that
 * keep one endpoint per daemon: merged /metrics, the proxied RingCentral
 * webhook, and a "pipeline" dependency in /readyz.
 */
import { request } from "undici";
import type { Config } from "../config/schema.js";
import { notificationMode } from "../config/resolve.js";
import { BodyTooLarge, readBody, sendJson, type HttpServer } from "../http/server.js";
import { WEBHOOK_PATH } from "../inbound/webhook.js";
import type { Metrics } from "../metrics.js";
import type { DependencyMonitor } from "../ops/dependencies.js";
import type { PipelineSupervisor } from "./supervisor.js";

export interface PipelineWakes {
  wake(): void;
  wakeInbound(): void;
}

export class PipelineHandle implements PipelineWakes {
  #target: PipelineWakes | undefined;

  attach(target: PipelineWakes): void {
    this.#target = target;
  }

  wake(): void {
    this.#target?.wake();
  }

  wakeInbound(): void {
    this.#target?.wakeInbound();
  }
}

/** Hop-by-hop headers, never forwarded by the webhook proxy. */
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade", "proxy-connection", "te", "trailer"]);

function forwardable(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP.has(name.toLowerCase())) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

export function wirePipelineProcess(
  child: PipelineSupervisor,
  d: { http: HttpServer; dependencies: DependencyMonitor; metrics: Metrics; config: Readonly<Config> },
): void {
  const { http } = d;
  http.route("GET", "/metrics", async (_req, res) => {
    const { text, contentType } = await child.metricsText();
    res.writeHead(200, { "content-type": contentType });
    res.end(text);
  });
  // Mail is still accepted and queued while the pipeline restarts: reported, not a reason to leave the load balancer.
  d.dependencies.add(
    "pipeline",
    async () => {
      if (!child.up) throw new Error("the pipeline process is restarting");
    },
    { cacheMs: 0 },
  );
  if (notificationMode(d.config) !== "webhook") return;
  http.route("POST", WEBHOOK_PATH, async (req, res) => {
    const port = child.httpPort;
    if (port === undefined) {
      sendJson(res, 503, { error: "the pipeline is restarting" }, { "retry-after": "5" });
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, d.config.http.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) sendJson(res, 413, { error: err.message });
      else res.destroy();
      return;
    }
    const answer = await request(`http://127.0.0.1:${port}${req.url ?? WEBHOOK_PATH}`, { method: "POST", headers: forwardable(req.headers), body });
    const reply = Buffer.from(await answer.body.arrayBuffer());
    res.writeHead(answer.statusCode, { ...forwardable(answer.headers), "content-length": reply.length });
    res.end(reply);
  });
}
