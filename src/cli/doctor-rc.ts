/**
 * `faxbridge doctor`, RingCentral part: logs each pool member in (reusing the
 * daemon's kept token pair), says in plain words why a login failed, and
 * checks the app's permissions against what the configuration needs.
 */
import { notificationMode, type NotificationMode } from "../config/resolve.js";
import { hasCredentials, splitJwts, type Config } from "../config/schema.js";
import { errorMessage } from "../errors.js";
import { silentLogger } from "../log.js";
import { RingCentralClient } from "../rc/client.js";
import { tokenFileStore } from "../rc/token-file.js";
import { memberTokenFile } from "../rc/open-pool.js";
import { RcApiError, RcNetworkError, RcProtocolError } from "../rc/errors.js";
import { code, fail, ok, warn, withTimeout, type Check } from "./doctor-common.js";

const CLIENT_CODES = new Set(["invalid_client", "OAU-153", "OAU-123", "OAU-102", "OAU-152"]);
const GRANT_CODES = new Set(["invalid_grant", "OAU-140", "OAU-211", "OAU-213", "OAU-214", "OAU-215"]);
const FLOW_CODES = new Set(["unauthorized_client", "unsupported_grant_type", "OAU-251", "OAU-250"]);

export function describeLoginFailure(err: unknown, serverUrl: string): Check {
  const name = "ringcentral login";
  if (err instanceof RcApiError) {
    const c = err.errorCode ?? "";
    const said = `${err.status}${c !== "" ? ` ${c}` : ""}${err.serverMessage !== undefined ? `: ${err.serverMessage}` : ""}`;
    if (CLIENT_CODES.has(c) || (err.status === 401 && !GRANT_CODES.has(c))) {
      return fail(
        name,
        `RingCentral rejected the app's client id or client secret (invalid_client; HTTP ${said})`,
        "check RC_CLIENT_ID and RC_CLIENT_SECRET against the app's credentials in the RingCentral developer console; sandbox and production apps have different ones, and ringcentral.serverUrl must match the app's environment",
      );
    }
    if (GRANT_CODES.has(c)) {
      return fail(
        name,
        `RingCentral rejected the JWT (invalid_grant; HTTP ${said}): it is malformed, expired or revoked, or not valid for this app or environment`,
        "create a new JWT credential for the user in the RingCentral developer console (allowed for this app) and set RC_JWT (or RC_JWT_FILE)",
      );
    }
    if (FLOW_CODES.has(c)) {
      return fail(name, `RingCentral does not let this app log in with a JWT (HTTP ${said})`, "enable the JWT auth flow in the app's settings in the RingCentral developer console");
    }
    if (err.status === 404 || err.status === 405) {
      return fail(name, `${serverUrl} has no RingCentral login endpoint (HTTP ${err.status})`, "check ringcentral.serverUrl (RC_SERVER_URL): https://platform.ringcentral.com, or https://platform.devtest.ringcentral.com for a sandbox app");
    }
    if (err.status === 429) {
      return warn(name, `RingCentral's login rate limit is used up right now (HTTP ${said})`, "the daemon may be logging in at the same moment; run doctor again in a minute");
    }
    if (err.status >= 500) {
      return fail(name, `RingCentral is having trouble (HTTP ${said})`, "try again later; see https://status.ringcentral.com");
    }
    return fail(name, `RingCentral refused the login (HTTP ${said})`, "check RC_CLIENT_ID, RC_CLIENT_SECRET and RC_JWT in the RingCentral developer console");
  }
  if (err instanceof RcNetworkError) {
    return fail(
      name,
      `cannot reach RingCentral at ${serverUrl} (${err.code ?? "network error"})`,
      "check ringcentral.serverUrl (RC_SERVER_URL), DNS, and that the firewall or proxy lets this host make HTTPS connections to it",
    );
  }
  if (err instanceof RcProtocolError) {
    return fail(name, `${serverUrl} answered, but not like RingCentral does (${err.message})`, "check ringcentral.serverUrl (RC_SERVER_URL); a proxy may be answering in its place");
  }
  if (code(err) === "ETIMEDOUT") return fail(name, `RingCentral at ${serverUrl} did not answer in time`, "check the network path (firewall, proxy) to it");
  return fail(name, `login failed: ${errorMessage(err)}`, "check ringcentral.serverUrl and the credentials");
}

interface PermissionNeed {
  readonly anyOf: readonly string[];
  readonly why: string;
  readonly required: boolean;
}

export function permissionNeeds(config: Readonly<Config>): PermissionNeed[] {
  const needs: PermissionNeed[] = [
    { anyOf: ["Faxes"], why: "to send faxes", required: true },
    { anyOf: ["ReadMessages"], why: "to follow sent faxes and find received ones", required: true },
  ];
  // loadConfig refuses "webhook" without a URL (src/config/resolve.ts).
  const mode: NotificationMode = notificationMode(config);
  const explicit = config.inbound.notifications !== "auto";
  if (mode === "webhook") needs.push({ anyOf: ["SubscriptionWebhook", "WebhookSubscriptions"], why: "for webhook notifications of received faxes", required: explicit });
  if (mode === "websocket") needs.push({ anyOf: ["WebSocketsSubscription", "WebSocket"], why: "for WebSocket notifications of received faxes", required: explicit });
  if (config.inbound.markAsRead) needs.push({ anyOf: ["EditMessages"], why: "to mark delivered faxes as read (inbound.markAsRead)", required: false });
  return needs;
}

export function checkPermissions(config: Readonly<Config>, scopes: readonly string[] | undefined): Check {
  const name = "ringcentral permissions";
  if (scopes === undefined) return warn(name, "RingCentral did not say which permissions the app has, so they were not checked", "make sure the app has Faxes and ReadMessages");
  const missing = permissionNeeds(config).filter((n) => !n.anyOf.some((p) => scopes.includes(p)));
  const fix =
    "add the permission(s) to the app in the RingCentral developer console (Settings → App permissions); a production app needs its new version approved before the change applies";
  const required = missing.filter((m) => m.required);
  const optional = missing.filter((m) => !m.required);
  const words = (list: PermissionNeed[]): string => list.map((m) => `${m.anyOf[0] ?? "?"} (${m.why})`).join(", ");
  if (required.length > 0) return fail(name, `the RingCentral app lacks the permission ${words(required)}; granted: ${scopes.join(" ") || "none"}`, fix);
  if (optional.length > 0) {
    return warn(name, `the RingCentral app lacks ${words(optional)}; received faxes are still found by the periodic sync, only later`, fix);
  }
  return ok(name, `the app has what faxbridge needs (${scopes.join(" ")})`);
}

export async function checkRingCentral(config: Readonly<Config>, timeoutMs: number, tokenDir: string | undefined): Promise<Check[]> {
  const rc = config.ringcentral;
  const set = { RC_CLIENT_ID: rc.clientId !== "", RC_CLIENT_SECRET: rc.clientSecret !== "", RC_JWT: rc.jwt !== "" };
  if (!hasCredentials(config as Config)) {
    const given = Object.entries(set).filter(([, v]) => v).map(([k]) => k);
    if (given.length > 0) {
      const missing = Object.entries(set).filter(([, v]) => !v).map(([k]) => k);
      return [fail("ringcentral", `only some RingCentral credentials are set (${given.join(", ")}); without ${missing.join(" and ")} faxbridge runs in SANDBOX mode and sends no real faxes`, `set ${missing.join(" and ")} (or the matching *_FILE variables)`)];
    }
    return [
      warn(
        "ringcentral",
        "SANDBOX mode: no RingCentral credentials, so faxes go to the built-in emulator and nothing is really faxed",
        "for real faxes set RC_CLIENT_ID, RC_CLIENT_SECRET and RC_JWT (a JWT credential of the RingCentral user faxbridge acts as)",
      ),
    ];
  }
  const checks: Check[] = [];
  if (!set.RC_CLIENT_SECRET) checks.push(warn("ringcentral", "RC_CLIENT_SECRET is empty; RingCentral JWT apps normally need it", "set RC_CLIENT_SECRET from the app's credentials"));
  const jwts = splitJwts(rc.jwt);
  // Each pool member logs in with its own JWT (and token file); the API answers the same for all, so it is asked once.
  const owners = new Map<string, number>();
  for (const [index, jwt] of jwts.entries()) {
    const r = await checkPoolMember(config, { jwt, index, count: jwts.length }, timeoutMs, tokenDir);
    checks.push(...r.checks);
    const first = r.ownerId !== undefined ? owners.get(r.ownerId) : undefined;
    if (first !== undefined) {
      checks.push(warn("ringcentral pool", `JWTs #${first + 1} and #${index + 1} of RC_JWT both log in as extension ${r.ownerId}: they share one rate limit, so the pool is smaller than it looks`, "give each pool member the JWT of a different user (extension)"));
    } else if (r.ownerId !== undefined) {
      owners.set(r.ownerId, index);
    }
  }
  return checks;
}

async function checkPoolMember(config: Readonly<Config>, member: { jwt: string; index: number; count: number }, timeoutMs: number, tokenDir: string | undefined): Promise<{ checks: Check[]; ownerId: string | undefined }> {
  const rc = config.ringcentral;
  const checks: Check[] = [];
  const creds = { serverUrl: rc.serverUrl, clientId: rc.clientId, clientSecret: rc.clientSecret, jwt: member.jwt };
  const client = new RingCentralClient({
    ...creds,
    logger: silentLogger(),
    requestTimeoutMs: Math.min(rc.requestTimeoutMs, timeoutMs),
    retry: { attempts: 1 },
    ...(tokenDir !== undefined ? { tokenStore: tokenFileStore(tokenDir, creds, memberTokenFile(member.index)) } : {}),
  });
  const which = member.count > 1 ? `pool extension ${member.index + 1} of ${member.count} (JWT #${member.index + 1} of RC_JWT): ` : "";
  const named = (c: Check): Check => (which === "" ? c : { ...c, message: which + c.message });
  try {
    try {
      await withTimeout(client.ensureAuthenticated(), timeoutMs, "RingCentral login");
    } catch (err) {
      checks.push(named(describeLoginFailure(err, rc.serverUrl)));
      return { checks, ownerId: undefined };
    }
    checks.push(named(ok("ringcentral login", `logged in to ${rc.serverUrl}${client.ownerId !== undefined ? ` as extension ${client.ownerId}` : ""}`)));
    checks.push(named(checkPermissions(config, client.scopes)));
    if (member.index > 0) return { checks, ownerId: client.ownerId };
    try {
      const pages = await withTimeout(client.listCoverPages(), timeoutMs, "RingCentral API");
      checks.push(ok("ringcentral api", `the API answers (${pages.length} fax cover pages)`));
    } catch (err) {
      const failed = describeLoginFailure(err, rc.serverUrl);
      checks.push({ ...failed, name: "ringcentral api", message: failed.message.replace("the login", "an API call") });
    }
    return { checks, ownerId: client.ownerId };
  } finally {
    await client.close();
  }
}
