import { spawn } from "node:child_process";
import { existsSync, mkdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireBuildLock, lockOwner } from "../../scripts/build-lock.mjs";
import { ROOT } from "../helpers/build.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Issue 10, item 8: the build lock (dist.lock) shared by `npm start` and the
 * tests that build dist/. A run killed while holding it used to make every
 * later build wait 120 s and fail; now a lock whose owner is dead is taken
 * over at once, and a live owner is still waited for.
 */
describe("the build lock", () => {
  let dir: ReturnType<typeof tempDir>;
  let lock: string;

  beforeEach(() => {
    dir = tempDir();
    lock = join(dir.path, "dist.lock");
  });

  afterEach(() => dir.cleanup());

  /** A separate process that takes the lock and holds it until killed. */
  async function holder(): Promise<{ pid: number; kill: () => Promise<void> }> {
    const code = `import(${JSON.stringify(join(ROOT, "scripts", "build-lock.mjs"))}).then(async (m) => { await m.acquireBuildLock(${JSON.stringify(lock)}); process.stdout.write("locked\\n"); setInterval(() => {}, 1000); });`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => (d.toString().includes("locked") ? resolve() : undefined));
      child.on("exit", (c) => reject(new Error(`holder exited ${c}`)));
    });
    const exited = new Promise<void>((r) => child.on("exit", () => r()));
    return {
      pid: child.pid ?? 0,
      kill: async () => {
        child.kill("SIGKILL");
        await exited;
      },
    };
  }

  it("takes over at once a lock left by a process killed with -9 while holding it", async () => {
    const h = await holder();
    expect(lockOwner(lock)).toBe(h.pid);
    await h.kill();
    const started = Date.now();
    const release = await acquireBuildLock(lock, { timeoutMs: 5_000 });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(lockOwner(lock)).toBe(process.pid);
    release();
    expect(existsSync(lock)).toBe(false);
  });

  it("waits for a live owner and gets the lock when it lets go", async () => {
    const h = await holder();
    try {
      await expect(acquireBuildLock(lock, { timeoutMs: 300, pollMs: 50 })).rejects.toThrow(`timed out waiting for another build (pid ${h.pid}`);
      const waiting = acquireBuildLock(lock, { timeoutMs: 10_000, pollMs: 50 });
      await h.kill();
      const release = await waiting;
      expect(lockOwner(lock)).toBe(process.pid);
      release();
    } finally {
      await h.kill();
    }
  });

  it("treats an old lock without an owner (an older run's, or one killed before it wrote its pid) as stale, a fresh one as taken", async () => {
    mkdirSync(lock);
    await expect(acquireBuildLock(lock, { timeoutMs: 200, pollMs: 50 })).rejects.toThrow(/timed out waiting for another build \(pid unknown/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const release = await acquireBuildLock(lock, { timeoutMs: 2_000, pollMs: 50 });
    expect(lockOwner(lock)).toBe(process.pid);
    release();
  });

  it("lets only one of several waiters in at a time after taking over a stale lock", async () => {
    const h = await holder();
    await h.kill();
    let inside = 0;
    let most = 0;
    await Promise.all(
      [1, 2, 3].map(async () => {
        const release = await acquireBuildLock(lock, { timeoutMs: 10_000, pollMs: 20 });
        inside++;
        most = Math.max(most, inside);
        await waitFor(() => true);
        await new Promise((r) => setImmediate(r));
        inside--;
        release();
      }),
    );
    expect(most).toBe(1);
  });
});
