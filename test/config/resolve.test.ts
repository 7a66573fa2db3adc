import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { resolveConfig } from "../../src/config/resolve.js";
import { configSchema } from "../../src/config/schema.js";
import { ConfigError } from "../../src/errors.js";

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path} (${p.source}): ${p.message}`);
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("configuration resolved once", () => {
  it("reads schedules with the daemon's own parser: no empty repeat, no repeat that would fill memory", () => {
    const started = Date.now();
    const problems = problemsOf(() => loadConfig({ env: { FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "1m*0", FAXBRIDGE_INBOUND_RETRY_SCHEDULE: "1s*999999999" } }));
    expect(problems).toEqual([
      expect.stringMatching(/^fax\.statusPollSchedule \(env FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE\): expected a schedule like/),
      expect.stringMatching(/^inbound\.retrySchedule \(env FAXBRIDGE_INBOUND_RETRY_SCHEDULE\): expected a schedule like/),
    ]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("names the line of a list item in the file, and the variable once it replaces the file's value", () => {
    const dir = mkdtempSync(join(tmpdir(), "fb-resolve-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "smtp:\n  allowUnauthenticatedFrom:\n    - 127.0.0.1\n    - 10.0.0.0/40\n");
    expect(problemsOf(() => loadConfig({ env: {}, file }))).toEqual([`smtp.allowUnauthenticatedFrom.1 (file ${file} line 4): "10.0.0.0/40" is not an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8`]);
    expect(problemsOf(() => loadConfig({ env: { FAXBRIDGE_SMTP_ALLOW_UNAUTHENTICATED_FROM: "::1,fd00::/200" }, file }))).toEqual([
      'smtp.allowUnauthenticatedFrom.1 (env FAXBRIDGE_SMTP_ALLOW_UNAUTHENTICATED_FROM): "fd00::/200" is not an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8',
    ]);
  });

  it("refuses a configuration built in code as loadConfig would, and decides its auto values", () => {
    const bad = configSchema.parse({ fax: { domains: ["fax.local"] }, policy: { domains: [{ domain: "fax.other" }] }, inbound: { notifications: "webhook" } });
    expect(problemsOf(() => resolveConfig(bad))).toEqual([
      "policy.domains (config): fax.other is not one of fax.domains",
      'inbound.notifications (config): "webhook" needs inbound.webhookUrl (the public https URL ending in /webhook/ringcentral), which is empty',
    ]);
    const sandbox = resolveConfig(configSchema.parse({ inbound: { delivery: "link" } }));
    expect(sandbox).toMatchObject({ sandbox: true, numberCheck: "possible", notifications: "websocket", transmittedCopy: "none" });
    expect(sandbox.schedules.faxRetry[0]).toBe(30_000);
    const real = resolveConfig(configSchema.parse({ ringcentral: { clientId: "i", clientSecret: "s", jwt: "j" }, inbound: { webhookUrl: "https://fax.example.com/webhook/ringcentral" } }));
    expect(real).toMatchObject({ sandbox: false, numberCheck: "valid", notifications: "webhook", transmittedCopy: "first-page" });
  });
});
