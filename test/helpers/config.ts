import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { ConfigError } from "../../src/errors.js";

/** The environment of a sandbox daemon with its data in `dataDir`, listening on ephemeral ports (0), plus `extra`. */
export function sandboxEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { FAXBRIDGE_DATA_DIR: dataDir, FAXBRIDGE_SMTP_PORT: "0", FAXBRIDGE_HTTP_PORT: "0", FAXBRIDGE_EMULATOR_PORT: "0", ...extra };
}

/** A sandbox daemon config on ephemeral ports, loaded as `faxbridge run` loads it (defaults, then the environment). */
export function sandboxConfig(dataDir: string, extra: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({ env: sandboxEnv(dataDir, { FAXBRIDGE_LOG_LEVEL: "silent", ...extra }) });
}

/** The problems of the ConfigError `fn` throws, as the CLI prints them ("path (source): message"); fails when it throws none. */
export function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path} (${p.source}): ${p.message}`);
    throw err;
  }
  throw new Error("expected a ConfigError");
}
