import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HttpServer } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";

describe("HTTP listener", () => {
  let server: HttpServer;
  let base: string;
  beforeEach(async () => {
    server = new HttpServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
    const addr = await server.listen();
    base = `http://127.0.0.1:${addr.port}`;
  });
  afterEach(async () => {
    await server.close();
  });

  it("answers /healthz", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("reports each readiness check and 503 when one fails", async () => {
    server.readinessCheck("store", async () => undefined);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    server.readinessCheck("mail", async () => {
      throw new Error("connection refused");
    });
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "not ready", checks: { store: "ok", mail: "connection refused" } });
  });

  it("serves Prometheus metrics", async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("# TYPE faxbridge_mails_received_total counter");
  });

  it("answers 404 for unknown paths and 405 for wrong methods", async () => {
    expect((await fetch(`${base}/admin`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: "POST" })).status).toBe(405);
  });
});
