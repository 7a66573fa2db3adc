import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { ApiToken, Config, WebUser } from "../config/schema.js";
import { verifyPassword } from "../smtp/password.js";
import type { OutboundJob } from "../store/outbound.js";
import type { KeyValueStore } from "../store/ports.js";

/**
 * Who is asking, and what they may see. An API token and a console user are
 * both an Identity: one sender identity for policy, quotas and reports
 * (`user` is what quotas and the job's client record carry), plus the
 * addresses whose faxes and received faxes it may read.
 */
export interface Identity {
  readonly kind: "api" | "web";
  /** Token name or username. */
  readonly name: string;
  /** `api:<name>` or `web:<username>`: the quota key and the job's client user. */
  readonly user: string;
  readonly admin: boolean;
  /** Lower-cased addresses this identity sends as and receives at. */
  readonly senders: readonly string[];
}

// Unknown names cost the same scrypt work as known ones.
const DUMMY_HASH = `scrypt$16384$8$1$${randomBytes(16).toString("base64")}$${randomBytes(32).toString("base64")}`;

export function tokenIdentity(t: ApiToken): Identity {
  return { kind: "api", name: t.name, user: `api:${t.name}`, admin: false, senders: t.senders.map((s) => s.toLowerCase()) };
}

export function userIdentity(u: WebUser): Identity {
  return { kind: "web", name: u.username, user: `web:${u.username}`, admin: u.role === "admin", senders: u.senders.map((s) => s.toLowerCase()) };
}

/**
 * Bearer tokens. A token is checked against every configured scrypt hash
 * once; a match is then remembered under an HMAC of the token (never the
 * token itself), so later requests cost no scrypt work.
 */
export class TokenAuth {
  readonly #tokens: readonly ApiToken[];
  readonly #key = randomBytes(32);
  readonly #known = new Map<string, Identity>();

  constructor(tokens: readonly ApiToken[]) {
    this.#tokens = tokens;
  }

  async verify(token: string): Promise<Identity | undefined> {
    if (token.length === 0 || token.length > 512) return undefined;
    const mac = createHmac("sha256", this.#key).update(token).digest("base64");
    const cached = this.#known.get(mac);
    if (cached !== undefined) return cached;
    if (this.#tokens.length === 0) {
      await verifyPassword(token, DUMMY_HASH);
      return undefined;
    }
    for (const t of this.#tokens) {
      if (await verifyPassword(token, t.tokenHash)) {
        const id = tokenIdentity(t);
        this.#known.set(mac, id);
        return id;
      }
    }
    return undefined;
  }
}

/** Console sign-in: constant work whether or not the user exists. */
export async function checkUser(users: readonly WebUser[], username: string, password: string): Promise<WebUser | undefined> {
  const user = users.find((u) => u.username === username);
  const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
  return ok && user !== undefined ? user : undefined;
}

/** The key for session cookies and signed links: web.secret, else one generated once in <dataDir>/web.key. */
export function webSecret(config: Pick<Config, "web">, keyFile: string): Buffer {
  if (config.web.secret !== "") return createHash("sha256").update(config.web.secret).digest();
  if (existsSync(keyFile)) {
    const b = Buffer.from(readFileSync(keyFile, "utf8").trim(), "base64");
    if (b.length >= 32) return b;
  }
  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(keyFile, `${key.toString("base64")}\n`, { mode: 0o600, flag: "w" });
  chmodSync(keyFile, 0o600);
  return key;
}

/**
 * The key with several instances on one database (web.secret not set): one
 * generated key kept in the database, the first instance's winning, so a
 * link or session signed by one instance verifies on every other.
 */
export async function sharedWebSecret(config: Pick<Config, "web">, kv: KeyValueStore, now: number): Promise<Buffer> {
  if (config.web.secret !== "") return createHash("sha256").update(config.web.secret).digest();
  const stored = await kv.setValueIfAbsent("web.secret", randomBytes(32).toString("base64"), now);
  return Buffer.from(stored, "base64");
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** May this identity see (and act on) this outbound job? */
export function canSeeJob(who: Identity, job: OutboundJob): boolean {
  if (who.admin) return true;
  if (job.client.user === who.user) return true;
  return job.mailFrom !== "" && who.senders.includes(job.mailFrom.toLowerCase());
}

/** May this identity read this received fax? Only when it was routed to one of its addresses. */
export function canSeeInbound(who: Identity, routedTo: readonly string[]): boolean {
  if (who.admin) return true;
  return routedTo.some((m) => who.senders.includes(bareAddress(m)));
}

/** "Front Desk <desk@example.com>" → "desk@example.com". */
export function bareAddress(mailbox: string): string {
  const m = /<([^>]+)>/.exec(mailbox);
  return (m?.[1] ?? mailbox).trim().toLowerCase();
}
