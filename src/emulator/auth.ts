import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { ApiFailure, oauthError, rcError } from "./http.js";
import { EXTENSION_ID, MIN_ACCESS_TOKEN_TTL_S } from "./constants.js";

export interface StrictAuth {
  clientId: string;
  clientSecret: string;
  jwt: string;
}

export interface Session {
  readonly id: string;
  readonly clientId: string;
  readonly ownerId: string;
  accessToken: string;
  accessExpiresAt: number;
  refreshToken: string;
  refreshExpiresAt: number;
  ended: boolean;
}

export interface AuthConfig {
  strict?: StrictAuth | undefined;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  /** The app permissions granted (token `scope`); undefined = every permission the emulator knows. */
  permissions?: readonly string[] | undefined;
  /**
   * The extension id a JWT assertion logs in as, or undefined to refuse it
   * (OAU-140). Without it every JWT (the strict one, when strict) logs in as
   * the one extension.
   */
  ownerOf?: (assertion: string) => string | undefined;
  now?: () => number;
}

const SCOPE = "Faxes ReadMessages EditMessages SubscriptionWebhook WebSocketsSubscription";
const JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";

function token(prefix: string): string {
  return `${prefix}${randomBytes(24).toString("base64url")}`;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** OAuth sessions: JWT grant, single-use refresh tokens, revoke, bearer checks, WebSocket tokens. */
export class AuthStore {
  private readonly sessionsByAccess = new Map<string, Session>();
  private readonly sessionsByRefresh = new Map<string, Session>();
  /** Refresh tokens already exchanged: reuse is answered invalid_grant. */
  private readonly spentRefresh = new Set<string>();
  private readonly wsTokens = new Map<string, { session: Session; expiresAt: number }>();
  private readonly config: AuthConfig;
  private readonly now: () => number;

  constructor(config: AuthConfig) {
    this.config = config;
    this.now = config.now ?? Date.now;
  }

  /** Client authentication: Basic header (client_secret_basic) or `client_id` in the body for public clients. */
  clientOf(req: IncomingMessage, form: URLSearchParams): string {
    const header = req.headers.authorization ?? "";
    let clientId: string | undefined;
    let secret: string | undefined;
    if (/^basic\s/i.test(header)) {
      const decoded = Buffer.from(header.replace(/^basic\s+/i, ""), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon > 0) {
        clientId = decoded.slice(0, colon);
        secret = decoded.slice(colon + 1);
      }
    } else {
      clientId = form.get("client_id") ?? undefined;
    }
    if (!clientId) throw oauthError(400, "invalid_client", "OAU-123", "Client authentication is required");
    const strict = this.config.strict;
    if (strict && (!same(clientId, strict.clientId) || secret === undefined || !same(secret, strict.clientSecret))) {
      throw oauthError(400, "invalid_client", "OAU-153", "Invalid client credentials");
    }
    return clientId;
  }

  /** POST /restapi/oauth/token */
  grant(req: IncomingMessage, form: URLSearchParams): Record<string, unknown> {
    const clientId = this.clientOf(req, form);
    this.checkTtls(form);
    const grantType = form.get("grant_type");
    if (grantType === JWT_GRANT) {
      const assertion = form.get("assertion");
      if (!assertion) throw oauthError(400, "invalid_request", "OAU-101", "Parameter [assertion] is missing");
      const strict = this.config.strict;
      const owner = this.config.ownerOf !== undefined
        ? this.config.ownerOf(assertion)
        : strict && !same(assertion, strict.jwt) ? undefined : EXTENSION_ID;
      if (owner === undefined) throw oauthError(400, "invalid_grant", "OAU-140", "Invalid resource owner credentials");
      return this.tokenInfo(this.newSession(clientId, form, owner));
    }
    if (grantType === "refresh_token") {
      const refresh = form.get("refresh_token") ?? "";
      const session = this.sessionsByRefresh.get(refresh);
      if (!session || this.spentRefresh.has(refresh) || session.ended || session.clientId !== clientId) {
        throw oauthError(400, "invalid_grant", "OAU-211", "Token is revoked or expired");
      }
      if (session.refreshExpiresAt <= this.now()) {
        throw oauthError(400, "invalid_grant", "OAU-211", "Token is revoked or expired");
      }
      // Single use: the old pair dies now, a new pair continues the same session.
      this.spentRefresh.add(refresh);
      this.sessionsByRefresh.delete(refresh);
      this.sessionsByAccess.delete(session.accessToken);
      this.issue(session, form);
      return this.tokenInfo(session);
    }
    if (!grantType) throw oauthError(400, "invalid_request", "OAU-101", "Parameter [grant_type] is missing");
    throw oauthError(400, "unsupported_grant_type", "OAU-251", "Unsupported grant type");
  }

  /** POST /restapi/oauth/revoke: revoking any token of a session ends the whole session. */
  revoke(req: IncomingMessage, form: URLSearchParams, queryToken: string | null): void {
    this.clientOf(req, form);
    const value = form.get("token") ?? queryToken ?? "";
    if (!value) throw oauthError(400, "invalid_request", "OAU-101", "Parameter [token] is missing");
    const session = this.sessionsByAccess.get(value) ?? this.sessionsByRefresh.get(value);
    if (session) this.end(session);
  }

  /** The extension whose session an access or refresh token belongs to (live or not), if any. */
  ownerOfToken(value: string): string | undefined {
    return (this.sessionsByAccess.get(value) ?? this.sessionsByRefresh.get(value))?.ownerId;
  }

  /** Checks `Authorization: Bearer` (or `access_token` in the query where allowed). */
  authenticate(req: IncomingMessage, queryToken?: string | null): Session {
    const header = req.headers.authorization ?? "";
    let value: string | undefined;
    if (/^bearer\s/i.test(header)) value = header.replace(/^bearer\s+/i, "").trim();
    else if (queryToken) value = queryToken;
    const wwwAuth = { "WWW-Authenticate": 'Bearer realm="RingCentral REST API", error="invalid_token"' };
    if (!value) throw rcError(401, "OAU-123", "Authorization header is not specified", {}, wwwAuth);
    const session = this.sessionsByAccess.get(value);
    if (!session || session.ended) throw rcError(401, "OAU-129", "Access token corrupted", {}, wwwAuth);
    if (session.accessExpiresAt <= this.now()) throw rcError(401, "OAU-128", "Access token expired", {}, wwwAuth);
    return session;
  }

  /** POST /restapi/oauth/wstoken: a single-use token valid for 30 s. */
  wsToken(session: Session): { token: string; expiresIn: number } {
    const value = token("WS");
    this.wsTokens.set(value, { session, expiresAt: this.now() + 30_000 });
    return { token: value, expiresIn: 30 };
  }

  consumeWsToken(value: string): Session | undefined {
    const entry = this.wsTokens.get(value);
    this.wsTokens.delete(value);
    if (!entry || entry.expiresAt <= this.now() || entry.session.ended) return undefined;
    return entry.session;
  }

  /**
   * 403 CMN-401 "[Faxes] permission required" when the app lacks every one of
   * `anyOf` (an operation's x-app-permission). Nothing is checked when the
   * emulator was started without `permissions`.
   */
  requirePermission(anyOf: readonly string[]): void {
    const granted = this.config.permissions;
    if (granted === undefined || anyOf.length === 0) return;
    if (anyOf.some((p) => granted.includes(p))) return;
    // As RingCentral answers it: the top-level code names the reason, the item carries CMN-401.
    const permissionName = anyOf[0] ?? "";
    const message = `In order to call this API endpoint, application needs to have [${permissionName}] permission`;
    throw new ApiFailure(403, {
      errorCode: "InsufficientPermissions",
      message,
      permissionName,
      errors: [{ errorCode: "CMN-401", message, permissionName }],
    });
  }

  isLive(session: Session): boolean {
    return !session.ended && session.accessExpiresAt > this.now();
  }

  private newSession(clientId: string, form: URLSearchParams, ownerId: string): Session {
    const session: Session = {
      id: randomUUID(),
      clientId,
      ownerId,
      accessToken: "",
      accessExpiresAt: 0,
      refreshToken: "",
      refreshExpiresAt: 0,
      ended: false,
    };
    this.issue(session, form);
    return session;
  }

  private issue(session: Session, form: URLSearchParams): void {
    const now = this.now();
    const accessTtl = this.ttl(form.get("access_token_ttl"), this.config.accessTokenTtlSeconds);
    const refreshTtl = this.ttl(form.get("refresh_token_ttl"), this.config.refreshTokenTtlSeconds);
    session.accessToken = token("AT");
    session.refreshToken = token("RT");
    session.accessExpiresAt = now + accessTtl * 1000;
    session.refreshExpiresAt = now + refreshTtl * 1000;
    this.sessionsByAccess.set(session.accessToken, session);
    this.sessionsByRefresh.set(session.refreshToken, session);
  }

  /** A requested TTL may shorten, never lengthen, the configured one. */
  private ttl(requested: string | null, configured: number): number {
    const n = requested === null ? NaN : Number(requested);
    return Number.isInteger(n) && n > 0 && n < configured ? n : configured;
  }

  /** The spec's TokenRequest: access_token_ttl 600…3600, refresh_token_ttl up to 2592000 (checked before anything is issued). */
  private checkTtls(form: URLSearchParams): void {
    const check = (name: string, min: number, max: number): void => {
      const raw = form.get(name);
      if (raw === null || raw === "") return;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw oauthError(400, "invalid_request", "OAU-101", `Parameter [${name}] value is invalid`);
      }
    };
    check("access_token_ttl", MIN_ACCESS_TOKEN_TTL_S, 3600);
    check("refresh_token_ttl", 1, 2592000);
  }

  private end(session: Session): void {
    session.ended = true;
    this.sessionsByAccess.delete(session.accessToken);
    this.sessionsByRefresh.delete(session.refreshToken);
    for (const [k, v] of this.wsTokens) if (v.session === session) this.wsTokens.delete(k);
  }

  private tokenInfo(session: Session): Record<string, unknown> {
    const now = this.now();
    return {
      access_token: session.accessToken,
      token_type: "bearer",
      expires_in: Math.round((session.accessExpiresAt - now) / 1000),
      refresh_token: session.refreshToken,
      refresh_token_expires_in: Math.round((session.refreshExpiresAt - now) / 1000),
      scope: this.config.permissions === undefined ? SCOPE : this.config.permissions.join(" "),
      owner_id: session.ownerId,
      endpoint_id: session.id.slice(0, 22),
      session_id: session.id,
    };
  }
}

export function isApiFailure(e: unknown): e is ApiFailure {
  return e instanceof ApiFailure;
}
