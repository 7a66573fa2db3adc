import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, beforeEach } from "vitest";
import { CLI, ensureBuilt } from "../helpers/build.js";
import { sandboxEnv } from "../helpers/config.js";
import { tempDir } from "../helpers/tmp.js";
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

export { sandboxConfig } from "../helpers/config.js";

export interface CliSandbox {
  dir: ReturnType<typeof tempDir>;
  env: Record<string, string>;
}

/**
 * For the tests of the enclosing describe: the CLI built first, then per test
 * a fresh temporary directory and a sandbox environment on its data dir (ports
 * 0: should a defect let `run` start, it must not collide with anything),
 * handed to `use`; the directory is removed after each test.
 */
export function cliSandbox(extraEnv: Record<string, string>, use: (s: CliSandbox) => void): void {
  let current: CliSandbox | undefined;
  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);
  beforeEach(() => {
    const dir = tempDir();
    current = { dir, env: sandboxEnv(join(dir.path, "data"), extraEnv) };
    use(current);
  });
  afterEach(() => current?.dir.cleanup());
}
