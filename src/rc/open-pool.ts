/**
 * Builds the extension pool from the configured credentials: one
 * RingCentralClient per JWT (RC_JWT, comma-separated), each with its own token
 * file (the first keeps rc-token.json, so a single JWT behaves as before).
 */
import { RingCentralClient, type RcClientOptions } from "./client.js";
import { RcPool } from "./pool.js";
import { TOKEN_FILE, tokenFileStore } from "./token-file.js";
import type { AuthResult } from "./token-manager.js";
import type { RcCall } from "./transport.js";

/** The token file of pool member `index` (0-based). */
export function memberTokenFile(index: number): string {
  return index === 0 ? TOKEN_FILE : TOKEN_FILE.replace(/\.json$/, `-${index + 1}.json`);
}

/** The label of a member in logs and metrics: its extension id once known. */
export function memberLabel(client: { ownerId: string | undefined }, index: number): string {
  return client.ownerId ?? `member-${index + 1}`;
}

export interface OpenPoolOptions extends Omit<RcClientOptions, "jwt" | "tokenStore" | "onCall" | "onAuthResult"> {
  /** One per pool member (at least one). */
  jwts: readonly string[];
  /** Keep each member's token pair in this directory between runs. */
  tokenDir?: string | undefined;
  onCall?: (call: RcCall, member: { index: number; extension: string; client: RingCentralClient }) => void;
  onAuthResult?: (result: AuthResult, member: { index: number; extension: string }) => void;
}

export function openRcPool(opts: OpenPoolOptions): { pool: RcPool; clients: RingCentralClient[] } {
  const { jwts, tokenDir, onCall, onAuthResult, ...common } = opts;
  if (jwts.length === 0) throw new TypeError("openRcPool: no JWT");
  const clients: RingCentralClient[] = [];
  jwts.forEach((jwt, index) => {
    const creds = { serverUrl: common.serverUrl, clientId: common.clientId, clientSecret: common.clientSecret, jwt };
    const logger = jwts.length > 1 ? common.logger.child({ poolMember: index + 1 }) : common.logger;
    const client: RingCentralClient = new RingCentralClient({
      ...common,
      jwt,
      logger,
      ...(tokenDir !== undefined && { tokenStore: tokenFileStore(tokenDir, creds, memberTokenFile(index)) }),
      ...(onCall !== undefined && { onCall: (call: RcCall) => onCall(call, { index, extension: memberLabel(client, index), client }) }),
      ...(onAuthResult !== undefined && { onAuthResult: (r: AuthResult) => onAuthResult(r, { index, extension: memberLabel(client, index) }) }),
    });
    clients.push(client);
  });
  return { pool: new RcPool(clients, { logger: common.logger, ...(common.now !== undefined && { now: common.now }) }), clients };
}
