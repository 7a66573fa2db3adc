// The lock that keeps two builds of dist/ from running at once: `npm start`
// (scripts/build-if-stale.mjs) and the tests that run the compiled CLI
// (test/helpers/build.ts) share it. It is a directory (mkdir is atomic) with
// the owner's pid inside, so a lock left by a killed run (kill -9, a test run
// stopped half way) is seen to be stale and taken over at once, instead of
// making every later build wait for the timeout.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/** A lock directory without a pid file is being created; only this old is it left over from a killed run. */
const UNOWNED_GRACE_MS = 10_000;

/** The pid recorded in a lock directory, or undefined when there is none (yet). */
export function lockOwner(lock) {
  try {
    const pid = Number.parseInt(readFileSync(join(lock, "pid"), "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return err?.code === "EPERM";
  }
}

/** Moves a stale lock aside; true when the caller should try to take the lock again at once. */
function takeOverIfStale(lock) {
  const pid = lockOwner(lock);
  if (pid === undefined) {
    try {
      if (Date.now() - statSync(lock).mtimeMs < UNOWNED_GRACE_MS) return false;
    } catch {
      return true; // gone meanwhile
    }
  } else if (alive(pid)) {
    return false;
  }
  const aside = `${lock}.stale-${process.pid}-${Date.now()}`;
  try {
    renameSync(lock, aside);
  } catch {
    return true; // another waiter moved it first
  }
  // A new owner may have taken the lock between the check and the rename: then it is not ours to remove.
  if (lockOwner(aside) !== pid) {
    try {
      renameSync(aside, lock);
    } catch {
      // A third process holds the lock by now; the moved one's owner still finishes its build.
    }
    return false;
  }
  rmSync(aside, { recursive: true, force: true });
  return true;
}

/**
 * Take the build lock, waiting while a live process holds it (at most
 * `timeoutMs`). Returns the release function.
 */
export async function acquireBuildLock(lock, { timeoutMs = 120_000, pollMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), `${process.pid}\n`);
      return () => {
        if (lockOwner(lock) === process.pid) rmSync(lock, { recursive: true, force: true });
      };
    } catch (err) {
      if (err?.code !== "EEXIST") throw err;
    }
    if (takeOverIfStale(lock)) continue;
    if (Date.now() > deadline) throw new Error(`timed out waiting for another build (pid ${lockOwner(lock) ?? "unknown"}; remove ${lock} if no build runs)`);
    await sleep(pollMs);
  }
}
