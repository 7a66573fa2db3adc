/**
 * The Prometheus alert rules and the Grafana dashboard faxbridge ships use
 * only metrics the daemon's /metrics exports; the rules parse (promtool where
 * Debian's prometheus package is installed); the systemd unit stays hardened
 * (systemd-analyze where available).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { ROOT } from "../helpers/build.js";
import { tempDir } from "../helpers/tmp.js";
import { sandboxEnv } from "../helpers/config.js";

const has = (cmd: string): boolean => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

interface Rule {
  alert: string;
  expr: string;
}

const rulesFile = join(ROOT, "config", "prometheus", "alerts.yml");
const dashboardFile = join(ROOT, "config", "grafana", "faxbridge.json");

function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bfaxbridge_[a-z0-9_]+/g)].map((m) => m[0]);
}

function dashboardExprs(): string[] {
  const dash = JSON.parse(readFileSync(dashboardFile, "utf8")) as { panels: { targets?: { expr: string }[] }[]; templating: { list: { query?: unknown }[] } };
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of dash.templating.list) if (typeof v.query === "string") exprs.push(v.query);
  return exprs;
}

describe("shipped Prometheus rules and Grafana dashboard", () => {
  let daemon: Daemon | undefined;
  let dir: ReturnType<typeof tempDir>;
  const exported = new Set<string>();

  beforeAll(async () => {
    dir = tempDir();
    const config = loadConfig({
      env: sandboxEnv(dir.path, {
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
        FAXBRIDGE_LOG_LEVEL: "silent",
      }),
    });
    daemon = await startDaemon(config, { logger: silentLogger() });
    const text = await (await fetch(`http://127.0.0.1:${daemon.http.port}/metrics`)).text();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [, name = "", type] = m;
      exported.add(name);
      if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) exported.add(name + s);
      if (type === "summary") for (const s of ["_sum", "_count"]) exported.add(name + s);
    }
  });

  afterAll(async () => {
    await daemon?.close();
    dir.cleanup();
  });

  it("alert rules cover the issue's cases and use only exported metrics", () => {
    const doc = parse(readFileSync(rulesFile, "utf8")) as { groups: { name: string; rules: Rule[] }[] };
    const rules = doc.groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(6);
    const used = rules.flatMap((r) => metricNames(r.expr));
    for (const needed of [
      "faxbridge_inbound_faxes_dead_total",
      "faxbridge_faxes_failed_total",
      "faxbridge_ringcentral_rate_limited_total",
      "faxbridge_ringcentral_auth_failures_total",
      "faxbridge_queue_oldest_job_seconds",
      "faxbridge_data_free_bytes",
    ]) {
      expect(used).toContain(needed);
    }
    expect(used.filter((n) => !exported.has(n))).toEqual([]);
    for (const r of rules) expect(r.alert).toMatch(/^Faxbridge[A-Za-z]+$/);
  });

  it("the dashboard uses only exported metrics", () => {
    const used = dashboardExprs().flatMap(metricNames);
    expect(used.length).toBeGreaterThan(10);
    expect([...new Set(used.filter((n) => !exported.has(n)))]).toEqual([]);
  });

  it.skipIf(!has("promtool"))("promtool accepts the rules file", () => {
    const out = execFileSync("promtool", ["check", "rules", rulesFile], { encoding: "utf8" });
    expect(out).toMatch(/SUCCESS/);
  });
});

describe("systemd unit", () => {
  const unit = join(ROOT, "config", "faxbridge.service");

  it("keeps the hardening Node tolerates (no MemoryDenyWriteExecute: the JIT needs W+X memory)", () => {
    const text = readFileSync(unit, "utf8");
    for (const d of ["PrivateDevices=true", "ProtectKernelTunables=true", "ProtectKernelModules=true", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service", "CapabilityBoundingSet=", "LockPersonality=true", "NoNewPrivileges=true"]) {
      expect(text).toContain(d);
    }
    expect(text).not.toMatch(/^MemoryDenyWriteExecute=(true|yes)/m);
    expect(text).toContain("#AmbientCapabilities=CAP_NET_BIND_SERVICE");
  });

  const offline = has("systemd-analyze") && spawnSync("systemd-analyze", ["security", "--help"], { encoding: "utf8" }).stdout.includes("--offline");
  it.skipIf(!offline)("systemd-analyze security rates it OK or better", () => {
    const r = spawnSync("systemd-analyze", ["security", "--offline=true", unit], { encoding: "utf8" });
    const line = `${r.stdout}${r.stderr}`.split("\n").find((l) => l.includes("Overall exposure level")) ?? "";
    const level = Number(/: ([\d.]+)/.exec(line)?.[1] ?? "10");
    expect(line).toMatch(/\b(OK|SAFE|PERFECT)\b/);
    expect(level).toBeLessThan(4);
  });
});
