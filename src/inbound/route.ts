/**
 * Which mailboxes a received fax goes to: the first `inbound.routes` entry
 * whose conditions all match (receiving number, extension, sender pattern),
 * else `inbound.defaultTo`.
 */
import type { InboundRoute } from "../config/schema.js";
import type { InboundRouteResult } from "../store/inbound.js";

export interface RouteInput {
  /** Receiving numbers of the fax. */
  readonly to: readonly string[];
  /** Resolved extension id, and the configured extension (e.g. "~") it was synced under. */
  readonly extensions: readonly string[];
  /** Sender number ("" when withheld). */
  readonly from: string;
}

/** Digits and a leading +, so "+1 (555) 123-4567" and "+15551234567" compare equal. */
function normalizeNumber(n: string): string {
  const trimmed = n.trim();
  const digits = trimmed.replace(/\D/g, "");
  return trimmed.startsWith("+") ? `+${digits}` : digits;
}

/** Match a number against an E.164 pattern with `*` wildcards ("+1555*", "*4567"). */
export function matchNumberPattern(pattern: string, number: string): boolean {
  const p = pattern.trim();
  if (p === "*") return true;
  const parts = p.split("*").map((s) => normalizeNumber(s).replace(/[+]/g, "\\+"));
  const re = new RegExp(`^${parts.join(".*")}$`);
  return re.test(normalizeNumber(number));
}

export function routeFax(input: RouteInput, routes: readonly InboundRoute[], defaultTo: string): InboundRouteResult & { matched: boolean } {
  for (const [i, r] of routes.entries()) {
    if (r.to !== undefined) {
      const want = normalizeNumber(r.to);
      if (!input.to.some((t) => normalizeNumber(t) === want)) continue;
    }
    if (r.extension !== undefined && !input.extensions.includes(r.extension)) continue;
    if (r.from !== undefined && !matchNumberPattern(r.from, input.from)) continue;
    return { route: i, mailTo: [...r.mailTo], matched: true };
  }
  return { route: -1, mailTo: [defaultTo], matched: false };
}
