import type { PolicyConfig, VerifySenderMode } from "../config/schema.js";

/**
 * Sender lists: entries are whole addresses ("alice@example.com") or whole
 * domains ("@example.org", exactly that domain, not its subdomains). Matching
 * ignores case.
 */

export interface SenderRule {
  readonly senders: readonly string[];
  readonly requireAuth: boolean;
  readonly verifySender: VerifySenderMode;
}

export type SenderMatcher = (address: string) => boolean;

export function createSenderMatcher(entries: readonly string[]): SenderMatcher {
  const addresses = new Set<string>();
  const domains = new Set<string>();
  for (const e of entries) {
    const lower = e.trim().toLowerCase();
    if (lower.startsWith("@")) domains.add(lower.slice(1).replace(/\.$/, ""));
    else addresses.add(lower);
  }
  return (address: string): boolean => {
    const lower = address.trim().toLowerCase();
    if (lower === "") return false;
    if (addresses.has(lower)) return true;
    const at = lower.lastIndexOf("@");
    return at > 0 && domains.has(lower.slice(at + 1).replace(/\.$/, ""));
  };
}

/** The domain of an address, lower case, without a trailing dot; "" when there is none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at < 0 ? "" : address.slice(at + 1).toLowerCase().replace(/\.$/, "");
}

export interface CompiledRule extends SenderRule {
  /** True when the rule restricts senders (a non-empty list). */
  readonly restricted: boolean;
  readonly matches: SenderMatcher;
}

/** The sender rule of each fax domain: its `policy.domains` entry, else `policy.default`. */
export class SenderRules {
  readonly #byDomain = new Map<string, CompiledRule>();
  readonly #default: CompiledRule;
  readonly #users = new Map<string, SenderMatcher>();

  constructor(policy: Pick<PolicyConfig, "default" | "domains" | "users">) {
    this.#default = compile(policy.default);
    for (const d of policy.domains) this.#byDomain.set(d.domain.toLowerCase().replace(/\.$/, ""), compile(d));
    for (const u of policy.users) this.#users.set(u.username, createSenderMatcher(u.senders));
  }

  forDomain(domain: string): CompiledRule {
    return this.#byDomain.get(domain.toLowerCase().replace(/\.$/, "")) ?? this.#default;
  }

  /** The addresses an SMTP user is bound to; undefined when the user is not bound. */
  userBinding(username: string): SenderMatcher | undefined {
    return this.#users.get(username);
  }

  /** Domains named in `policy.domains`, for checking them against fax.domains. */
  get configuredDomains(): string[] {
    return [...this.#byDomain.keys()];
  }
}

function compile(rule: SenderRule): CompiledRule {
  return { ...rule, senders: [...rule.senders], restricted: rule.senders.length > 0, matches: createSenderMatcher(rule.senders) };
}
