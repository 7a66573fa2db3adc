import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { loadConfig, redactedConfig } from "../../src/config/load.js";
import { configSchema } from "../../src/config/schema.js";
import { SETTINGS } from "../../src/config/settings.js";
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

function leaves(obj: unknown, prefix = ""): string[] {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return [prefix];
  return Object.entries(obj).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

describe("loadConfig", () => {
  it("fax.redial: default 5m*2; FAXBRIDGE_FAX_REDIAL=off turns redials off; a bad schedule is refused", () => {
    expect(loadConfig({ env: {} }).fax.redial).toBe("5m*2");
    expect(loadConfig({ env: { FAXBRIDGE_FAX_REDIAL: "off" } }).fax.redial).toBe("off");
    expect(loadConfig({ env: { FAXBRIDGE_FAX_REDIAL: "1m,10m" } }).fax.redial).toBe("1m,10m");
    expect(() => loadConfig({ env: { FAXBRIDGE_FAX_REDIAL: "soon" } })).toThrow(/fax\.redial/);
  });

  it("names the line of a YAML syntax error", () => {
    const dir = mkdtempSync(join(tmpdir(), "faxbridge-yaml-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "smtp:\n  port: 2525\nfax:\n  domains: [fax.example.com\n");
    const problems = problemsOf(() => loadConfig({ env: { FAXBRIDGE_CONFIG: file } }));
    expect(problems.join("\n")).toMatch(/line \d+\): YAML: /);
  });

  it("gives the schema defaults with an empty environment", () => {
    const config = loadConfig({ env: {} });
    expect(config.smtp).toMatchObject({ host: "127.0.0.1", port: 2525 });
    expect(config.http.port).toBe(8025);
    expect(config.fax.domains).toEqual(["fax.local"]);
    expect(Object.isFrozen(config.smtp)).toBe(true);
  });

  it("config/default.yaml states exactly the built-in defaults", () => {
    const file = parse(readFileSync(new URL("../../config/default.yaml", import.meta.url), "utf8")) as unknown;
    expect(configSchema.parse(file)).toEqual(configSchema.parse({}));
    expect(loadConfig({ env: {}, file: new URL("../../config/default.yaml", import.meta.url).pathname })).toEqual(loadConfig({ env: {} }));
  });

  it("has an environment variable for every setting, each in the README table", () => {
    const paths = leaves(configSchema.parse({})).sort();
    expect(SETTINGS.map((s) => s.path).sort()).toEqual(paths);
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const s of SETTINGS) expect(readme, `README lacks ${s.env}`).toContain(`\`${s.env}\``);
  });

  it("applies the fixed environment names", () => {
    const config = loadConfig({
      env: {
        RC_SERVER_URL: "https://platform.devtest.ringcentral.com",
        RC_CLIENT_ID: "id",
        RC_CLIENT_SECRET: "secret",
        RC_JWT: "jwt",
        FAXBRIDGE_SMTP_HOST: "0.0.0.0",
        FAXBRIDGE_SMTP_PORT: "25",
        FAXBRIDGE_HTTP_PORT: "9000",
        FAXBRIDGE_DATA_DIR: "/var/lib/faxbridge",
        FAXBRIDGE_FAX_DOMAINS: "fax.example.com, fax.example.org",
        FAXBRIDGE_MAIL_URL: "smtp://127.0.0.1:25",
        FAXBRIDGE_INBOUND_TO: "faxes@example.com",
        FAXBRIDGE_FAX_SKIP_INLINE_IMAGES: "false",
        FAXBRIDGE_INBOUND_ROUTES: '[{"to":"+15551230000","mailTo":["a@example.com"]}]',
      },
    });
    expect(config.ringcentral).toMatchObject({ serverUrl: "https://platform.devtest.ringcentral.com", clientId: "id", clientSecret: "secret", jwt: "jwt" });
    expect(config.smtp).toMatchObject({ host: "0.0.0.0", port: 25 });
    expect(config.http.port).toBe(9000);
    expect(config.dataDir).toBe("/var/lib/faxbridge");
    expect(config.fax.domains).toEqual(["fax.example.com", "fax.example.org"]);
    expect(config.fax.skipInlineImages).toBe(false);
    expect(config.mail.url).toBe("smtp://127.0.0.1:25");
    expect(config.inbound.defaultTo).toBe("faxes@example.com");
    expect(config.inbound.routes).toEqual([{ to: "+15551230000", mailTo: ["a@example.com"] }]);
  });

  it("reads secrets from *_FILE variables", () => {
    const dir = mkdtempSync(join(tmpdir(), "fb-config-"));
    writeFileSync(join(dir, "jwt"), "the-jwt\n");
    expect(loadConfig({ env: { RC_CLIENT_ID: "id", RC_CLIENT_SECRET: "secret", RC_JWT_FILE: join(dir, "jwt") } }).ringcentral.jwt).toBe("the-jwt");
  });

  it("env overrides the file, which overrides defaults", () => {
    const dir = mkdtempSync(join(tmpdir(), "fb-config-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "smtp:\n  port: 2600\n  host: 0.0.0.0\n");
    const config = loadConfig({ env: { FAXBRIDGE_SMTP_PORT: "2700" }, file });
    expect(config.smtp.port).toBe(2700);
    expect(config.smtp.host).toBe("0.0.0.0");
  });

  it("reports every problem at once, naming key, source and expectation", () => {
    const dir = mkdtempSync(join(tmpdir(), "fb-config-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "smtp:\n  prot: 25\nfax:\n  defaultCountry: usa\n  coverText: everything\n");
    const problems = problemsOf(() =>
      loadConfig({ env: { FAXBRIDGE_HTTP_PORT: "eighty", FAXBRIDGE_SMTP_PORT: "70000", RC_CLIENT_SECRET: "x", FAXBRIDGE_SMTP_USERS: "{" }, file }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'http.port (env FAXBRIDGE_HTTP_PORT): expected a whole number, got "eighty"',
        "smtp.users (env FAXBRIDGE_SMTP_USERS): expected JSON",
        expect.stringMatching(/^smtp\.port \(env FAXBRIDGE_SMTP_PORT\): .*65535.* \(got 70000\)$/),
        expect.stringMatching(/^smtp\.prot \(file .*c\.yaml line 2\): unknown setting/),
        expect.stringMatching(/^fax\.defaultCountry \(file .*c\.yaml line 4\): expected a two-letter ISO 3166 country code such as US \(got "usa"\)$/),
        expect.stringMatching(/^fax\.coverText \(file .*c\.yaml line 5\): .*"body".* \(got "everything"\)$/),
        // The rules across settings run too, whatever else is wrong (src/config/resolve.ts).
        "ringcentral.clientId (missing): RC_CLIENT_ID (or RC_CLIENT_ID_FILE) is not set, but RC_CLIENT_SECRET is: RingCentral credentials are all or nothing (none at all = sandbox mode, no real faxes)",
        expect.stringMatching(/^ringcentral\.jwt \(missing\): RC_JWT /),
      ]),
    );
    expect(problems).toHaveLength(8);
  });

  it("never shows a secret's value in a problem", () => {
    const problems = problemsOf(() => loadConfig({ env: { FAXBRIDGE_SMTP_USERS: '[{"username":"a","passwordHash":""}]' } }));
    expect(problems.join("\n")).not.toContain("passwordHash\":");
    expect(problems[0]).toMatch(/^smtp\.users\.0\.passwordHash \(env FAXBRIDGE_SMTP_USERS\): /);
  });

  it("redacts secrets for printing", () => {
    const config = loadConfig({ env: { RC_CLIENT_ID: "id", RC_CLIENT_SECRET: "s3cret", RC_JWT: "eyJ.jwt", FAXBRIDGE_MAIL_URL: "smtp://u:pw@mail:25" } });
    const text = JSON.stringify(redactedConfig(config));
    expect(text).not.toContain("s3cret");
    expect(text).not.toContain("eyJ.jwt");
    expect(text).not.toContain(":pw@");
    expect(text).toContain('"clientId":"id"');
  });
});
