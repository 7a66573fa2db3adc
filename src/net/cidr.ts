import { BlockList, isIP } from "node:net";

/**
 * Client address matching for `smtp.allowUnauthenticatedFrom`: IPv4 and IPv6
 * CIDRs (a bare address means a single host). IPv4-mapped IPv6 clients
 * (`::ffff:10.1.2.3`, what a dual-stack listener reports) match IPv4 rules.
 */

export type AddressMatcher = (ip: string) => boolean;

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** Reduce an IPv4-mapped IPv6 address to its IPv4 form; other addresses unchanged. */
export function normalizeIp(ip: string): string {
  const m = MAPPED_V4.exec(ip);
  return m?.[1] !== undefined ? m[1] : ip;
}

/** Build a matcher; throws with the offending entry when one is not a valid CIDR. */
export function createCidrMatcher(cidrs: readonly string[]): AddressMatcher {
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addrRaw = "", prefixRaw, ...rest] = entry.trim().split("/");
    const addr = normalizeIp(addrRaw);
    const family = isIP(addr);
    const max = family === 4 ? 32 : 128;
    const prefix = prefixRaw === undefined ? max : /^\d{1,3}$/.test(prefixRaw) ? Number(prefixRaw) : NaN;
    if (family === 0 || rest.length > 0 || !(prefix >= 0 && prefix <= max)) {
      throw new Error(`"${entry}" is not an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8`);
    }
    list.addSubnet(addr, prefix, family === 4 ? "ipv4" : "ipv6");
  }
  return (ip: string): boolean => {
    const addr = normalizeIp(ip);
    const family = isIP(addr);
    if (family === 0) return false;
    return list.check(addr, family === 4 ? "ipv4" : "ipv6");
  };
}

export const isLoopback: AddressMatcher = createCidrMatcher(["127.0.0.0/8", "::1/128"]);

/**
 * The rule for "a local client" (AUTH in clear is allowed only for these):
 * the connection is on the loopback interface and the client connects from
 * the very address it connects to (127.0.0.1 → 127.0.0.1, ::1 → ::1), which
 * is what a program on this host talking to a loopback listener looks like.
 * Everything else, including another loopback address (127.0.0.2 → 127.0.0.1),
 * counts as a network client: fail closed.
 */
export function isLocalClient(remoteAddress: string, localAddress: string): boolean {
  return isLoopback(remoteAddress) && normalizeIp(remoteAddress) === normalizeIp(localAddress);
}
