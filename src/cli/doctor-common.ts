/** What every doctor check returns, and the helpers the check modules share. */
export type CheckStatus = "ok" | "warn" | "FAIL";

export interface Check {
  /** Short area name: "config", "data dir", "ringcentral login", ... */
  readonly name: string;
  readonly status: CheckStatus;
  /** What was found, in plain words. */
  readonly message: string;
  /** What to do about it (warn and FAIL). */
  readonly fix?: string;
}

export const ok = (name: string, message: string): Check => ({ name, status: "ok", message });
export const warn = (name: string, message: string, fix: string): Check => ({ name, status: "warn", message, fix });
export const fail = (name: string, message: string, fix: string): Check => ({ name, status: "FAIL", message, fix });

export function code(err: unknown): string | undefined {
  const c = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof c === "string" ? c : undefined;
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`), { code: "ETIMEDOUT" })), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

