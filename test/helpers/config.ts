import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";

/** The environment of a sandbox daemon with its data in `dataDir`, listening on ephemeral ports (0), plus `extra`. */
export function sandboxEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { FAXBRIDGE_DATA_DIR: dataDir, FAXBRIDGE_SMTP_PORT: "0", FAXBRIDGE_HTTP_PORT: "0", FAXBRIDGE_EMULATOR_PORT: "0", ...extra };
}

/** A sandbox daemon config on ephemeral ports, loaded as `faxbridge run` loads it (defaults, then the environment). */
export function sandboxConfig(dataDir: string, extra: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({ env: sandboxEnv(dataDir, { FAXBRIDGE_LOG_LEVEL: "silent", ...extra }) });
}
