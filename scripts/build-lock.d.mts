/** See build-lock.mjs. */
export function lockOwner(lock: string): number | undefined;
export function acquireBuildLock(lock: string, opts?: { timeoutMs?: number; pollMs?: number }): Promise<() => void>;
