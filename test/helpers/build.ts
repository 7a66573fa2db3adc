import { execFile } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { acquireBuildLock } from "../../scripts/build-lock.mjs";

const run = promisify(execFile);
export const ROOT = join(import.meta.dirname, "..", "..");
export const CLI = join(ROOT, "dist", "src", "cli.js");

/**
 * Tests that run the real daemon as a child process (kill -9, sandbox start,
 * exit codes) need the compiled build. Build once, only when a source file is
 * newer than the build; a lock (scripts/build-lock.mjs, taken over when
 * its owner died) keeps parallel test files from building at the same time.
 */
export async function ensureBuilt(): Promise<string> {
  const release = await acquireBuildLock(join(ROOT, "dist.lock"));
  try {
    if (!existsSync(CLI) || newestMtime(join(ROOT, "src")) > statSync(CLI).mtimeMs) {
      await run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.build.json")], { cwd: ROOT });
    }
  } finally {
    release();
  }
  return CLI;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}
