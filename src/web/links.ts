import { createHmac } from "node:crypto";
import { safeEqual } from "./auth.js";

/**
 * Signed, short-lived links to a received fax, mailed instead of the fax
 * itself (inbound.delivery: link). The link names the fax and its expiry and
 * carries an HMAC over both under the web key, so it cannot be forged,
 * retargeted or extended; what opening it allows is decided by the console
 * (sign-in or one-time use) and every opening is audited.
 */

const ID = /^[A-Za-z0-9_-]{1,64}$/;

function mac(key: Buffer, faxId: string, expiresAt: number): string {
  return createHmac("sha256", key).update(`faxbridge-inbound-link\0${faxId}\0${expiresAt}`).digest("base64url");
}

/** The path part of a link: /l/<faxId>.<expires (unix seconds)>.<mac>. */
export function signedLinkPath(key: Buffer, faxId: string, expiresAtMs: number): string {
  const exp = Math.floor(expiresAtMs / 1000);
  return `/l/${faxId}.${exp}.${mac(key, faxId, exp)}`;
}

export type LinkCheck = { ok: true; faxId: string; expiresAt: number } | { ok: false; reason: "malformed" | "bad_signature" | "expired"; faxId?: string };

export function verifyLink(key: Buffer, token: string, now: number): LinkCheck {
  const parts = token.split(".");
  if (parts.length !== 3) return { ok: false, reason: "malformed" };
  const [faxId = "", expText = "", sig = ""] = parts;
  if (!ID.test(faxId) || !/^\d{1,12}$/.test(expText)) return { ok: false, reason: "malformed" };
  const exp = Number(expText);
  if (!safeEqual(sig, mac(key, faxId, exp))) return { ok: false, reason: "bad_signature" };
  if (exp * 1000 <= now) return { ok: false, reason: "expired", faxId };
  return { ok: true, faxId, expiresAt: exp * 1000 };
}

/** Builds the full link for a fax, or undefined when web.publicUrl is not set. */
export function linkBuilder(publicUrl: string, key: Buffer, ttlHours: number, now: () => number = Date.now): ((faxId: string) => { url: string; expiresAt: number }) | undefined {
  if (publicUrl.trim() === "") return undefined;
  const base = publicUrl.trim().replace(/\/+$/, "");
  return (faxId) => {
    const expiresAt = now() + ttlHours * 3_600_000;
    return { url: `${base}${signedLinkPath(key, faxId, expiresAt)}`, expiresAt };
  };
}
