import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { tempDir } from "../helpers/tmp.js";
import { cli, cliSandbox, type CliResult } from "./helpers.js";

/**
 * Issue 10, item 6: the configuration is resolved once. `run`, `doctor` and
 * `config --print` accept and refuse exactly the same configurations, and
 * each lists every problem at once with where the value came from (the
 * environment variable, or the file and line). `doctor` used to say "valid"
 * for configurations `run` refused, and `run` refused them one at a time.
 */

/** The problem lines of a ConfigError as the CLI prints them ("  - path (source): message"). */
function problemLines(out: string): string[] {
  return out
    .split("\n")
    .map((l) => /^\s+- (.*)$/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined);
}

describe("one configuration, one verdict", () => {
  let dir: ReturnType<typeof tempDir>;
  let env: Record<string, string>;
  cliSandbox({ FAXBRIDGE_LOG_LEVEL: "silent" }, (s) => ({ dir, env } = s));

  async function allThree(args: string[], extra: Record<string, string>): Promise<{ run: CliResult; print: CliResult; doctor: CliResult }> {
    const [run, print, doctor] = await Promise.all([
      cli(["run", ...args], { ...env, ...extra }),
      cli(["config", "--print", ...args], { ...env, ...extra }),
      cli(["doctor", ...args], { ...env, ...extra }),
    ]);
    return { run, print, doctor };
  }

  it("refuses a configuration with cross-field and network-list mistakes in run, doctor and config --print alike, listing every problem with its source", async () => {
    const file = join(dir.path, "faxbridge.yaml");
    writeFileSync(
      file,
      [
        "fax:", //                                   1
        "  domains: [fax.example.com]", //           2
        "  retrySchedule: 1m,soon", //               3
        "policy:", //                                4
        "  trustedRelays: [10.0.0.0/33]", //         5
        "  domains:", //                             6
        "    - domain: fax.typo", //                 7
        "  users:", //                               8
        "    - username: ghost", //                  9
        '      senders: ["@example.com"]', //        10
        "inbound:", //                               11
        "  notifications: webhook", //               12
        "",
      ].join("\n"),
    );
    const extra = { FAXBRIDGE_SMTP_ALLOW_UNAUTHENTICATED_FROM: "10.0.0.0/8,not-an-ip", FAXBRIDGE_WEB_TRUST_PROXY: "300.1.1.1" };
    const { run, print, doctor } = await allThree(["--config", file], extra);

    expect(run.code).toBe(2);
    expect(print.code).toBe(2);
    expect(doctor.code).toBe(2);
    const at = (line: number): string => `file ${file} line ${line}`;
    const expected = [
      `fax.retrySchedule (${at(3)}): expected a schedule like "1m,5m*2,1h" (units ms, s, m, h, d; *N repeats) (got "1m,soon")`,
      `policy.trustedRelays.0 (${at(5)}): "10.0.0.0/33" is not an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8`,
      'smtp.allowUnauthenticatedFrom.1 (env FAXBRIDGE_SMTP_ALLOW_UNAUTHENTICATED_FROM): "not-an-ip" is not an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8',
      'web.trustProxy.0 (env FAXBRIDGE_WEB_TRUST_PROXY): "300.1.1.1" is not an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8',
      `policy.domains (${at(7)}): fax.typo is not one of fax.domains`,
      `policy.users (${at(9)}): ghost is not one of smtp.users`,
      `inbound.notifications (${at(12)}): "webhook" needs inbound.webhookUrl (the public https URL ending in /webhook/ringcentral), which is empty`,
    ];
    const runProblems = problemLines(run.stderr);
    expect(runProblems.sort()).toEqual([...expected].sort());
    expect(run.stderr).toContain(`invalid configuration (${expected.length} problems)`);
    // The same verdict, word for word, from all three.
    expect(problemLines(print.stderr).sort()).toEqual(runProblems);
    expect(doctor.stdout).toMatch(/^FAIL {2}config: invalid configuration \(7 problems\)/);
    expect(problemLines(doctor.stdout).sort()).toEqual(runProblems);
  }, 60_000);

  it("refuses half a STARTTLS pair in all three, where run used to start without TLS", async () => {
    const { run, print, doctor } = await allThree([], { FAXBRIDGE_SMTP_TLS_KEY: join(dir.path, "key.pem") });
    const problem = "smtp.tlsCert (missing): smtp.tlsKey is set (env FAXBRIDGE_SMTP_TLS_KEY) but smtp.tlsCert is not: STARTTLS needs both, or neither";
    for (const r of [run, print]) {
      expect(r.code).toBe(2);
      expect(problemLines(r.stderr)).toEqual([problem]);
    }
    expect(doctor.code).toBe(2);
    expect(problemLines(doctor.stdout)).toEqual([problem]);
  }, 60_000);

  it("accepts a valid configuration: config --print prints it, doctor calls it valid", async () => {
    const file = join(dir.path, "faxbridge.yaml");
    writeFileSync(file, ["fax:", "  domains: [fax.example.com, fax.secure]", "policy:", "  trustedRelays: [10.0.0.0/8, fd00::/8]", "  domains:", "    - domain: fax.secure", "      requireAuth: true", ""].join("\n"));
    const print = await cli(["config", "--print", "--config", file], env);
    expect(print.code).toBe(0);
    const doctor = await cli(["doctor", "--config", file], env);
    expect(doctor.stdout).toMatch(/^ok {4}config: the configuration is valid$/m);
  }, 60_000);
});
