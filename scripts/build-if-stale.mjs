#!/usr/bin/env node
// `npm start` runs this first: compile TypeScript only when a source is newer
// than the build, so a restart starts from dist/ at once instead of spending
// ~17 s in tsc. Shares the lock the test helpers use (scripts/build-lock.mjs), so
// parallel builds never interleave.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import process from "node:process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { acquireBuildLock } from "./build-lock.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stamp = join(root, "dist", ".build-stamp");
const inputs = ["src", "bench", "tsconfig.json", "tsconfig.build.json", "package-lock.json"].map((p) => join(root, p));

function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let n = st.mtimeMs;
  for (const e of readdirSync(path)) n = Math.max(n, newest(join(path, e)));
  return n;
}

const stale = () => !existsSync(stamp) || !existsSync(join(root, "dist", "src", "cli.js")) || Math.max(...inputs.map(newest)) > statSync(stamp).mtimeMs;

if (!stale()) {
  process.stderr.write("faxbridge: build is up to date (dist/)\n");
  process.exit(0);
}
const release = await acquireBuildLock(join(root, "dist.lock"));
try {
  if (stale()) {
    const started = Date.now();
    process.stderr.write("faxbridge: sources changed since the last build; compiling TypeScript…\n");
    // The stamp is taken before compiling: a source edited during the build makes the next start build again.
    const before = new Date();
    execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")], { cwd: root, stdio: "inherit" });
    writeFileSync(stamp, `${before.toISOString()}\n`);
    utimesSync(stamp, before, before);
    process.stderr.write(`faxbridge: built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
} finally {
  release();
}
