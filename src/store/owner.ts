import { randomBytes } from "node:crypto";

/**
 * A fresh store owner id: the host's process id and randomness, readable in
 * logs. Every backend's claims carry one (the lease owner), so it lives beside
 * the ports, not in one backend.
 */
export function newOwnerId(): string {
  return `${process.pid}-${randomBytes(6).toString("hex")}`;
}
