/**
 * deploy/compose.yaml, the example of two instances on one PostgreSQL
 * (README "Running several instances"), parsed without a Docker engine: every
 * variable it sets is a setting faxbridge knows (src/config/settings.ts), the
 * instances share the database and the web secret but not their data
 * directories, and the environment of each instance loads as a valid
 * configuration that selects PostgreSQL.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { SETTINGS } from "../../src/config/settings.js";
import { tempDir } from "../helpers/tmp.js";

interface Service {
  image?: string;
  environment?: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
}

interface Compose {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
  volumes: Record<string, unknown>;
}

const compose = parse(readFileSync(new URL("../../deploy/compose.yaml", import.meta.url), "utf8"), { merge: true }) as Compose;
const instances = Object.entries(compose.services).filter(([name]) => name.startsWith("faxbridge"));
const known = new Set(SETTINGS.map((s) => s.env));

describe("deploy/compose.yaml", () => {
  const dirs: ReturnType<typeof tempDir>[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) d.cleanup();
  });

  it("runs two faxbridge instances beside PostgreSQL 15, started once it is healthy", () => {
    expect(instances.map(([name]) => name)).toEqual(["faxbridge-1", "faxbridge-2"]);
    expect(compose.services["postgres"]?.image).toMatch(/^postgres:15\b/);
    for (const [, s] of instances) expect(s.depends_on?.["postgres"]?.condition).toBe("service_healthy");
  });

  it("sets only variables faxbridge knows (each may be read from a file with _FILE)", () => {
    for (const [name, s] of instances) {
      const unknown = Object.keys(s.environment ?? {}).filter((k) => !known.has(k.replace(/_FILE$/, "")));
      expect([name, unknown]).toEqual([name, []]);
    }
  });

  it("shares the database and the web secret, not the data directories; every secret is declared", () => {
    const [[, a], [, b]] = instances as [[string, Service], [string, Service]];
    expect(a.environment?.["FAXBRIDGE_DATABASE_URL_FILE"]).toBeDefined();
    expect(a.environment?.["FAXBRIDGE_DATABASE_URL_FILE"]).toBe(b.environment?.["FAXBRIDGE_DATABASE_URL_FILE"]);
    expect(a.environment?.["FAXBRIDGE_WEB_SECRET_FILE"]).toBe(b.environment?.["FAXBRIDGE_WEB_SECRET_FILE"]);
    const dataVolume = (s: Service): string | undefined => s.volumes?.find((v) => v.endsWith(":/data"));
    expect(dataVolume(a)).toBeDefined();
    expect(dataVolume(a)).not.toBe(dataVolume(b));
    expect(a.ports?.[0]).not.toBe(b.ports?.[0]);
    for (const [, s] of [...instances, ["postgres", compose.services["postgres"] as Service] as const]) {
      for (const secret of s.secrets ?? []) expect(Object.keys(compose.secrets)).toContain(secret);
      for (const [k, v] of Object.entries(s.environment ?? {})) if (k.endsWith("_FILE")) expect(v).toMatch(new RegExp(`^/run/secrets/(${(s.secrets ?? []).join("|")})$`));
    }
  });

  it("each instance's environment loads as a valid configuration on PostgreSQL", () => {
    for (const [, s] of instances) {
      const dir = tempDir("faxbridge-compose-");
      dirs.push(dir);
      const env: Record<string, string> = { FAXBRIDGE_DATA_DIR: dir.path };
      for (const [k, raw] of Object.entries(s.environment ?? {})) {
        // Compose interpolation (${RC_CLIENT_ID:?…}) and secrets (/run/secrets/x) with sample values.
        const v = raw.replace(/\$\{[^}]+\}/g, "sample-client-id");
        const secret = /^\/run\/secrets\/(.+)$/.exec(v)?.[1];
        if (secret === undefined) {
          env[k] = v;
          continue;
        }
        const file = join(dir.path, secret);
        const sample: Record<string, string> = { database_url: "postgres://faxbridge:pw@postgres:5432/faxbridge", rc_jwt: "eyJ.a.sig,eyJ.b.sig", web_secret: "a".repeat(64) };
        writeFileSync(file, sample[secret] ?? "sample-secret");
        env[k] = file;
      }
      const config = loadConfig({ env });
      expect(config.database.url).toMatch(/^postgres:\/\//);
      expect(config.ringcentral.jwt).toContain(",");
    }
  });
});
