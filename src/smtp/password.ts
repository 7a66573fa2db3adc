import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

/**
 * SMTP AUTH password hashes: `scrypt$N$r$p$saltB64$hashB64`, produced by
 * `faxbridge hash-password` and stored in `smtp.users[].passwordHash`.
 */

const DEFAULT = { N: 16_384, r: 8, p: 1, saltBytes: 16, keyBytes: 32 } as const;
/** Bounds on parameters read from a hash, so a mistyped config cannot make a login cost gigabytes. */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;

function derive(password: string, salt: Buffer, keyLen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function scryptOptions(N: number, r: number, p: number): ScryptOptions {
  // scrypt needs about 128 * N * r bytes; leave headroom over Node's 32 MB default.
  return { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(DEFAULT.saltBytes);
  const key = await derive(password, salt, DEFAULT.keyBytes, scryptOptions(DEFAULT.N, DEFAULT.r, DEFAULT.p));
  return `scrypt$${DEFAULT.N}$${DEFAULT.r}$${DEFAULT.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/** Parse a stored hash; undefined when it is not a well-formed scrypt hash. */
export function parsePasswordHash(hash: string): ParsedHash | undefined {
  const parts = hash.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return undefined;
  const [, n, r, p, salt, key] = parts as [string, string, string, string, string, string];
  if (![n, r, p].every((v) => /^\d{1,8}$/.test(v))) return undefined;
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0 || R < 1 || R > MAX_R || P < 1 || P > MAX_P) return undefined;
  const b64 = /^[A-Za-z0-9+/]+={0,2}$/;
  if (!b64.test(salt) || !b64.test(key)) return undefined;
  const saltBuf = Buffer.from(salt, "base64");
  const keyBuf = Buffer.from(key, "base64");
  if (saltBuf.length < 8 || keyBuf.length < 16) return undefined;
  return { N, r: R, p: P, salt: saltBuf, key: keyBuf };
}

/** Constant-time check of a password against a stored hash; false for a malformed hash. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parsePasswordHash(hash);
  if (parsed === undefined) return false;
  const key = await derive(password, parsed.salt, parsed.key.length, scryptOptions(parsed.N, parsed.r, parsed.p));
  return timingSafeEqual(key, parsed.key);
}
