import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { CLI } from "../helpers/build.js";
import { openTestStores as openStoresOf, type TestStores } from "../helpers/stores.js";

const execFileP = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the compiled CLI as a child process with only the given environment (plus PATH). */
export async function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number | string; stdout: string; stderr: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `cli(...)` that must succeed, parsed as JSON. */
export async function cliJson<T>(args: string[], env: Record<string, string>): Promise<T> {
  const r = await cli([...args, "--json"], env);
  if (r.code !== 0) throw new Error(`faxbridge ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** The stores on a data dir, as the daemon opens them (for setting up jobs in tests). */
export function openTestStores(dataDir: string): Promise<TestStores> {
  return openStoresOf(dataDir);
}

/** A sandbox daemon config on ephemeral ports. */
export function sandboxConfig(dataDir: string, extra: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({
    env: {
      FAXBRIDGE_DATA_DIR: dataDir,
      FAXBRIDGE_SMTP_PORT: "0",
      FAXBRIDGE_HTTP_PORT: "0",
      FAXBRIDGE_EMULATOR_PORT: "0",
      FAXBRIDGE_LOG_LEVEL: "silent",
      ...extra,
    },
  });
}
