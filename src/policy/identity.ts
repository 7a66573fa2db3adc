/**
 * Who the sender of a mail is, decided once per mail at SMTP time and stored
 * on its job row. The same identity keys the quotas, the report recipient's
 * rate limit, forwarding rights and duplicate suppression, so no two parts of
 * the gateway can disagree about it:
 *
 *   1. the SMTP AUTH user, when the client authenticated;
 *   2. else the From address, when a verifier (DMARC, SPF+DKIM or a trusted
 *      relay's Authentication-Results) proved it, as the verifier read it;
 *   3. else the envelope sender, normalised: lower case, quotes removed,
 *      `+tag` dropped, so `q1+x@…` and `"q1"@…` are the same sender as `q1@…`.
 *
 * The null sender `<>` is its own identity (it never gets reports).
 */

export type IdentitySource = "user" | "verified-from" | "envelope";

export interface SenderIdentity {
  /** The stable key: `user:<name>`, a normalised address, or `<>`. */
  readonly key: string;
  readonly source: IdentitySource;
}

const MAX_ADDRESS = 254;
const MAX_LOCAL = 64;
// RFC 5321 dot-atom (RFC 6531 allows UTF-8 beyond ASCII).
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\\u0080-\\uffff]";
const DOT_ATOM = new RegExp(`^${ATEXT}+(\\.${ATEXT}+)*$`);
// Printable ASCII except `"` and `\`, or a backslash pair.
const QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\uffff]|\\[\x20-\x7e])*"$/;
const LABEL = /^(?!-)[A-Za-z0-9\-\u0080-\uffff]{1,63}(?<!-)$/;
const ADDRESS_LITERAL = /^\[(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|IPv6:[0-9A-Fa-f:.]+)\]$/;

/**
 * Whether `address` is exactly one valid mailbox (RFC 5321 Mailbox): one
 * local part (dot-atom or quoted string) and one domain. A list such as
 * `alice,bob@example.org`, a route, spaces or control characters are not.
 */
export function isSingleMailbox(address: string): boolean {
  if (address.length === 0 || address.length > MAX_ADDRESS) return false;
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > MAX_LOCAL) return false;
  if (!DOT_ATOM.test(local) && !QUOTED.test(local)) return false;
  if (ADDRESS_LITERAL.test(domain)) return true;
  const labels = domain.replace(/\.$/, "").split(".");
  return labels.every((l) => LABEL.test(l));
}

/** An address as one sender: lower case, quotes removed, `+tag` dropped, no trailing dot. "" stays "" (the null sender). */
export function normaliseAddress(address: string): string {
  const at = address.lastIndexOf("@");
  if (at < 0) return address.trim().toLowerCase();
  let local = address.slice(0, at);
  if (local.startsWith('"') && local.endsWith('"') && local.length >= 2) local = local.slice(1, -1).replace(/\\(.)/g, "$1");
  const plus = local.indexOf("+");
  if (plus > 0) local = local.slice(0, plus);
  return `${local}@${address.slice(at + 1).replace(/\.$/, "")}`.toLowerCase();
}

export interface IdentityInput {
  /** The SMTP AUTH user, if the client authenticated. */
  readonly user?: string | undefined;
  /** The From address a verifier proved (as the verifier read it), if any. */
  readonly verifiedFrom?: string | undefined;
  /** The envelope sender; "" for `<>`. */
  readonly mailFrom: string;
}

/** The one decision of who sent a mail. */
export function senderIdentity(input: IdentityInput): SenderIdentity {
  if (input.user !== undefined) return { key: `user:${input.user}`, source: "user" };
  if (input.verifiedFrom !== undefined && input.verifiedFrom !== "") return { key: normaliseAddress(input.verifiedFrom), source: "verified-from" };
  return { key: input.mailFrom === "" ? "<>" : normaliseAddress(input.mailFrom), source: "envelope" };
}

/** The identity as people read it in a refusal or notice. */
export function identityLabel(key: string): string {
  return key.startsWith("user:") ? key.slice(5) : key;
}
