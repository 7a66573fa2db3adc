/**
 * One daemon owns a data directory at a time. Owning it means every lease in
 * the stores that is still set when the daemon starts was taken by a process
 * that is gone (killed, crashed, power loss), so it is released at once
 * instead of making that work wait out the lease (minutes: 5 for parse, poll
 * and report steps, 15 for a submission, 10 for an inbound delivery).
 *
 * Ownership is a pid file, `<dataDir>/faxbridge.pid`. A pid file whose process
 * no longer runs (or is this very process, e.g. pid 1 again after a container
 * restart) is stale and taken over; one whose process runs refuses the start.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../log.js";
import type { Db } from "./db.js";

export const PID_FILE = "faxbridge.pid";

export class DataDirInUseError extends Error {
  readonly pid: number;
  constructor(dataDir: string, pid: number, file: string) {
    super(`data directory ${dataDir} is in use by process ${pid} (another faxbridge daemon); stop it first, or remove ${file} if that process is not faxbridge`);
    this.name = "DataDirInUseError";
    this.pid = pid;
  }
}

function running(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else; ESRCH: it is gone.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Take the data directory (or throw DataDirInUseError). The returned function gives it back. */
export function lockDataDir(dataDir: string, log: Logger): () => void {
  const file = join(dataDir, PID_FILE);
  const mine = `${process.pid}\n`;
  try {
    const fd = openSync(file, "wx", 0o600);
    try {
      writeSync(fd, mine);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const previous = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
    if (Number.isInteger(previous) && previous > 0 && running(previous)) throw new DataDirInUseError(dataDir, previous, file);
    log.warn({ event: "datadir.stale_lock", previousPid: Number.isInteger(previous) ? previous : null }, "previous daemon did not stop cleanly; taking over its data directory");
    writeFileSync(file, mine, { mode: 0o600 });
  }
  return () => {
    try {
      if (readFileSync(file, "utf8") === mine) unlinkSync(file);
    } catch (err) {
      log.warn({ event: "datadir.unlock_failed", err }, "could not remove the pid file");
    }
  };
}

/**
 * Release every lease in the outbound and inbound stores. Only call this as
 * the data directory's owner, before any worker starts: the leases belong to
 * a dead process. Interrupted submissions are then reconciled at once.
 * (The database is migrated first, so both tables exist.)
 */
export function releaseStaleLeases(db: Db, log: Logger): { outbound: number; inbound: number } {
  const release = (table: "outbound_jobs" | "inbound_faxes"): number =>
    db.prepare(`UPDATE ${table} SET lease_until = NULL, lease_owner = NULL WHERE lease_until IS NOT NULL`).run().changes;
  const released = db.transaction(() => ({ outbound: release("outbound_jobs"), inbound: release("inbound_faxes") }))();
  if (released.outbound + released.inbound > 0) {
    log.warn({ event: "store.stale_leases_released", ...released }, "released work leased by a process that is gone");
  }
  return released;
}
