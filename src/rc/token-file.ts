/**
 * Keeps RingCentral's token pair across restarts, so a start, a stop or a
 * `doctor` run does not spend the Auth group (5 logins a minute): the daemon
 * and doctor reuse the access token while it is valid and refresh it with the
 * refresh token afterwards; only a missing or dead pair costs a JWT login.
 *
 * The pair lives in <dataDir>/rc-token.json, mode 0600 (the data directory is
 * 0700 too), written via tmp → fsync → rename. It is bound to the server URL,
 * the client id and a hash of the client secret and JWT: changing any of them discards it.
 * Tokens never reach a log line.
 */
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

export interface StoredToken {
  accessToken: string;
  /** epoch ms */
  expiresAt: number;
  ttlMs: number;
  refreshToken: string | undefined;
  refreshExpiresAt: number;
  ownerId: string | undefined;
  scopes: readonly string[] | undefined;
}

/** Where the client keeps its token pair between runs. */
export interface TokenStore {
  load(): StoredToken | undefined;
  save(token: StoredToken): void;
  clear(): void;
}

const fileSchema = z.object({
  version: z.literal(1),
  binding: z.string(),
  token: z.object({
    accessToken: z.string().min(1),
    expiresAt: z.number(),
    ttlMs: z.number(),
    refreshToken: z.string().optional(),
    refreshExpiresAt: z.number(),
    ownerId: z.string().optional(),
    scopes: z.array(z.string()).optional(),
  }),
});

export const TOKEN_FILE = "rc-token.json";

/** The token file of a data directory, bound to these credentials. */
export function tokenFileStore(dataDir: string, creds: { serverUrl: string; clientId: string; clientSecret: string; jwt: string }, name = TOKEN_FILE): TokenStore {
  const file = join(dataDir, name);
  const binding = createHash("sha256").update(`${new URL(creds.serverUrl).origin}\n${creds.clientId}\n${creds.clientSecret}\n${creds.jwt}`).digest("hex");
  return {
    load() {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch {
        return undefined;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        return undefined;
      }
      const parsed = fileSchema.safeParse(json);
      if (!parsed.success || parsed.data.binding !== binding) return undefined;
      const t = parsed.data.token;
      return { ...t, refreshToken: t.refreshToken, ownerId: t.ownerId, scopes: t.scopes };
    },
    save(token) {
      const body = JSON.stringify({ version: 1, binding, token });
      const tmp = `${file}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeSync(fd, body);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    },
    clear() {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    },
  };
}
