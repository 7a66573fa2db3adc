/**
 * The token pair of one RingCentral session: JWT login, refresh ahead of
 * expiry, one login or refresh at a time (single flight), the token file
 * shared with `doctor` and earlier runs, and revocation at close.
 */
import type { Logger } from "../log.js";
import { RcApiError } from "./errors.js";
import type { Rest } from "./endpoints.js";
import { errCode, formBody } from "./http-util.js";
import type { StoredToken, TokenStore } from "./token-file.js";
import type { Secrets, TokenSource } from "./transport.js";
import { tokenInfoSchema, type TokenInfo } from "./types.js";

/** The token pair held (same shape as the stored one). `scopes`: TokenInfo.scope split, when RingCentral said. */
type TokenState = StoredToken;

export type AuthResult = { ok: true } | { ok: false; status: number; errorCode: string | undefined };

export interface TokenManagerOptions {
  jwt: string;
  logger: Logger;
  now: () => number;
  secrets: Secrets;
  /** Unauthenticated calls (token endpoint, revoke). */
  rest: Rest;
  tokenStore?: TokenStore | undefined;
  onAuthResult?: ((result: AuthResult) => void) | undefined;
}

export class TokenManager implements TokenSource {
  private readonly o: TokenManagerOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private token: TokenState | undefined;
  private authFlight: Promise<TokenState> | undefined;

  constructor(opts: TokenManagerOptions) {
    this.o = opts;
    this.log = opts.logger;
    this.now = opts.now;
    this.adoptStored();
  }

  /** The extension id the token belongs to (after login), from TokenInfo.owner_id. */
  get ownerId(): string | undefined {
    return this.token?.ownerId;
  }

  /** The app permissions the current token grants (TokenInfo.scope), after login; undefined when unknown. */
  get scopes(): readonly string[] | undefined {
    return this.token?.scopes;
  }

  /** The token pair held, if any. */
  get current(): StoredToken | undefined {
    return this.token;
  }

  /** Explicit JWT login. */
  async login(): Promise<void> {
    await this.singleFlight(() => this.jwtLogin());
  }

  async accessToken(): Promise<string> {
    const t = this.token;
    if (t !== undefined && t.expiresAt - this.refreshThresholdMs(t) > this.now()) return t.accessToken;
    const fresh = await this.singleFlight(() => this.renew());
    return fresh.accessToken;
  }

  invalidate(used: string): void {
    const t = this.token;
    if (t !== undefined && t.accessToken === used) this.token = { ...t, expiresAt: 0 };
  }

  /**
   * Forget the token; revoke the session (failures ignored, per RingCentral)
   * unless a token store keeps it for the next run.
   */
  async close(timeoutMs: number): Promise<void> {
    const t = this.token;
    this.token = undefined;
    if (t === undefined || this.o.tokenStore !== undefined) return;
    try {
      const res = await this.o.rest.once("revokeToken", {
        signal: AbortSignal.timeout(Math.min(timeoutMs, 5_000)),
        body: () => formBody({ token: t.accessToken }),
      });
      await res.body.dump();
      this.log.debug({ event: "rc.auth.revoked", status: res.status }, "token revoked");
    } catch (err) {
      // RingCentral: if revoke fails, ignore it and do not retry.
      this.log.debug({ event: "rc.auth.revoke_failed", err: this.o.secrets.scrub(String(err)) }, "token revoke failed (ignored)");
    }
  }

  /** Take the stored token pair when it is still usable (access token or refresh token alive). */
  private adoptStored(): boolean {
    let t: StoredToken | undefined;
    try {
      t = this.o.tokenStore?.load();
    } catch (err) {
      this.log.warn({ event: "rc.auth.token_store_unreadable", err: errCode(err) ?? "error" }, "stored RingCentral token unreadable; logging in instead");
    }
    if (t === undefined || t.accessToken === this.token?.accessToken) return false;
    const now = this.now();
    if (t.expiresAt <= now && !(t.refreshToken !== undefined && t.refreshExpiresAt - 5_000 > now)) return false;
    this.o.secrets.add(t.accessToken);
    this.o.secrets.add(t.refreshToken);
    this.token = t;
    this.log.debug({ event: "rc.auth.token_reused", expiresAt: new Date(t.expiresAt).toISOString() }, "reusing the stored RingCentral token");
    return true;
  }

  private persist(t: StoredToken): void {
    try {
      this.o.tokenStore?.save(t);
    } catch (err) {
      this.log.warn({ event: "rc.auth.token_store_failed", err: errCode(err) ?? "error" }, "could not keep the RingCentral token for the next start");
    }
  }

  private refreshThresholdMs(t: TokenState): number {
    return Math.min(60_000, t.ttlMs * 0.1);
  }

  private singleFlight(fn: () => Promise<TokenState>): Promise<TokenState> {
    if (this.authFlight === undefined) {
      this.authFlight = fn().finally(() => {
        this.authFlight = undefined;
      });
    }
    return this.authFlight;
  }

  /** Refresh with the refresh token; when it is dead (400/401 or expired), log in again with the JWT. */
  private async renew(): Promise<TokenState> {
    const t = this.token;
    if (t === undefined) return this.jwtLogin();
    if (t.expiresAt - this.refreshThresholdMs(t) > this.now()) return t; // someone else renewed meanwhile
    if (t.refreshToken !== undefined && t.refreshExpiresAt - 5_000 > this.now()) {
      try {
        const state = await this.tokenRequest({ grant_type: "refresh_token", refresh_token: t.refreshToken });
        this.log.info({ event: "rc.auth.refreshed", expiresInSeconds: state.ttlMs / 1000 }, "access token refreshed");
        return state;
      } catch (err) {
        if (err instanceof RcApiError && (err.status === 400 || err.status === 401)) {
          // Another process sharing the token file (doctor, a previous run) may have refreshed it.
          if (this.adoptStored() && this.token !== undefined && this.token.expiresAt - this.refreshThresholdMs(this.token) > this.now()) return this.token;
          this.log.warn(
            { event: "rc.auth.refresh_rejected", status: err.status, errorCode: err.errorCode },
            "refresh token rejected; logging in again with the JWT",
          );
        } else {
          throw err;
        }
      }
    }
    return this.jwtLogin();
  }

  private async jwtLogin(): Promise<TokenState> {
    let state: TokenState;
    try {
      state = await this.tokenRequest({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: this.o.jwt });
    } catch (err) {
      if (err instanceof RcApiError && (err.status === 400 || err.status === 401 || err.status === 403)) {
        this.o.onAuthResult?.({ ok: false, status: err.status, errorCode: err.errorCode });
      }
      throw err;
    }
    this.log.info({ event: "rc.auth.login", expiresInSeconds: state.ttlMs / 1000 }, "logged in with JWT");
    this.o.onAuthResult?.({ ok: true });
    return state;
  }

  private async tokenRequest(form: Record<string, string>): Promise<TokenState> {
    const info: TokenInfo = await this.o.rest.json("getToken", tokenInfoSchema, { body: () => formBody(form) });
    const now = this.now();
    const state: TokenState = {
      accessToken: info.access_token,
      expiresAt: now + info.expires_in * 1000,
      ttlMs: info.expires_in * 1000,
      refreshToken: info.refresh_token,
      refreshExpiresAt: info.refresh_token !== undefined ? now + (info.refresh_token_expires_in ?? 7 * 24 * 3600) * 1000 : 0,
      ownerId: info.owner_id,
      scopes: info.scope?.split(/\s+/).filter((s) => s !== ""),
    };
    this.o.secrets.add(state.accessToken);
    this.o.secrets.add(state.refreshToken);
    this.token = state;
    this.persist(state);
    return state;
  }
}
