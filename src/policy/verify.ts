import { createReadStream } from "node:fs";
import { authenticate, type AuthenticateResult, type DNSResolver } from "mailauth";
import type { VerifySenderMode } from "../config/schema.js";
import { domainOf } from "./senders.js";
import { parseAuthenticationResults, type AuthResult, type Header } from "./headers.js";

/**
 * Proving that an unauthenticated sender is who the From header says, for
 * sender rules with an allowlist:
 *
 * - "dmarc": DMARC passes for the From domain (an aligned DKIM signature or
 *   an aligned SPF pass), checked here with mailauth.
 * - "spf-dkim": for domains without DMARC: SPF passes for the envelope sender
 *   and a DKIM signature by the From domain (or a parent) verifies.
 * - "authentication-results": an upstream MTA already checked: its
 *   Authentication-Results header is trusted when the client is one of
 *   `trustedRelays` and the header's authserv-id is one of `authservIds`; it
 *   must say dmarc=pass for the From domain (or dkim=pass aligned with it).
 *   From any other client the header is ignored and DMARC is checked here.
 */

export type VerifyOutcome =
  | { readonly ok: true; readonly method: string }
  /**
   * `temporary`: a DNS failure or timeout; the client should retry (451).
   * `ambiguous`: the verifier read the From header as another sender than the sender rules did (550 5.7.1).
   */
  | { readonly ok: false; readonly temporary: boolean; readonly message: string; readonly ambiguous?: boolean };

export interface VerifyInput {
  readonly mode: Exclude<VerifySenderMode, "none">;
  readonly path: string;
  readonly headers: readonly Header[];
  readonly from: string;
  readonly mailFrom: string;
  readonly ip: string;
  readonly helo: string;
  /** The client is in policy.trustedRelays. */
  readonly trustedRelay: boolean;
}

export interface VerifierOptions {
  readonly authservIds: readonly string[];
  /** Our name in mailauth's results (smtp.hostname). */
  readonly mta: string;
  readonly timeoutMs: number;
  /** DNS resolver for mailauth (tests answer from a table); default: the system resolver. */
  readonly resolver?: DNSResolver;
}

export type SenderVerifier = (input: VerifyInput) => Promise<VerifyOutcome>;

export function createSenderVerifier(opts: VerifierOptions): SenderVerifier {
  const authservIds = new Set(opts.authservIds.map((s) => s.toLowerCase()));
  return async (input) => {
    const fromDomain = domainOf(input.from);
    if (input.mode === "authentication-results" && input.trustedRelay) return fromTrustedHeader(input.headers, fromDomain, authservIds);
    let result: AuthenticateResult;
    try {
      result = await runMailauth(input, opts);
    } catch (err) {
      if (err instanceof VerifyTimeout) return { ok: false, temporary: true, message: `could not verify ${fromDomain} in time, try again later` };
      throw err;
    }
    // One From identity per mail: mailauth's own reading of From must be the address the sender rules checked,
    // else a header folded to read one way here and another way there passes as someone else.
    const read = result.dkim.headerFrom;
    if (read.length !== 1 || (read[0] ?? "").toLowerCase() !== input.from.toLowerCase()) {
      return {
        ok: false,
        temporary: false,
        ambiguous: true,
        message: "the From header can be read as more than one sender; send it with exactly one plain address",
      };
    }
    return input.mode === "spf-dkim" ? spfAndDkim(result, input, fromDomain) : dmarcPass(result, fromDomain);
  };
}

class VerifyTimeout extends Error {
  constructor() {
    super("sender verification timed out");
    this.name = "VerifyTimeout";
  }
}

async function runMailauth(input: VerifyInput, opts: VerifierOptions): Promise<AuthenticateResult> {
  const stream = createReadStream(input.path);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new VerifyTimeout()), opts.timeoutMs);
  });
  try {
    return await Promise.race([
      authenticate(stream, {
        ip: input.ip,
        helo: input.helo,
        ...(input.mailFrom !== "" && { sender: input.mailFrom }),
        mta: opts.mta,
        disableArc: true,
        disableBimi: true,
        ...(opts.resolver !== undefined && { resolver: opts.resolver }),
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
    stream.destroy();
  }
}

function isTemp(result: string | undefined): boolean {
  return result === "temperror" || result === "temperr";
}

function dkimSummary(r: AuthenticateResult): string {
  const signatures = r.dkim.results.filter((d) => d.signingDomain);
  if (signatures.length === 0) return "dkim=none (no signature)";
  return signatures
    .map((d) => `dkim=${d.status.result}${d.signingDomain ? ` (d=${d.signingDomain}${d.status.comment ? `: ${d.status.comment}` : ""})` : ""}`)
    .join(", ");
}

function spfSummary(r: AuthenticateResult): string {
  return r.spf === false ? "spf=none" : `spf=${r.spf.status.result}`;
}

function dmarcPass(r: AuthenticateResult, fromDomain: string): VerifyOutcome {
  const d = r.dmarc;
  const status = d === false ? "none" : d.status.result;
  if (status === "pass") {
    // A pass counts only for the domain of the address the sender rules allowed (mailauth reports the organisational domain).
    const dmarcDomain = d === false ? "" : String(d.domain ?? "").toLowerCase().replace(/\.$/, "");
    if (dmarcDomain !== "" && (fromDomain === dmarcDomain || fromDomain.endsWith(`.${dmarcDomain}`))) return { ok: true, method: "dmarc" };
    return { ok: false, temporary: false, ambiguous: true, message: `DMARC passed for ${dmarcDomain || "another domain"}, not for ${fromDomain}` };
  }
  const temporary = isTemp(status) || r.dkim.results.some((x) => isTemp(x.status.result)) || (r.spf !== false && isTemp(r.spf.status.result));
  if (temporary) return { ok: false, temporary: true, message: `DMARC verification of ${fromDomain} hit a temporary DNS error, try again later` };
  const why = status === "none" ? `${fromDomain} publishes no DMARC record` : `no aligned pass (${dkimSummary(r)}; ${spfSummary(r)})`;
  return { ok: false, temporary: false, message: `DMARC verification failed for ${fromDomain}: ${why}` };
}

/** d= aligned with the From domain: the same domain or a parent of it. */
function aligned(signingDomain: string, fromDomain: string): boolean {
  const d = signingDomain.toLowerCase().replace(/\.$/, "");
  return d !== "" && (fromDomain === d || fromDomain.endsWith(`.${d}`));
}

function spfAndDkim(r: AuthenticateResult, input: VerifyInput, fromDomain: string): VerifyOutcome {
  const spf = r.spf === false ? "none" : r.spf.status.result;
  const dkimOk = r.dkim.results.some((d) => d.status.result === "pass" && aligned(d.signingDomain, fromDomain));
  if (spf === "pass" && dkimOk) return { ok: true, method: "spf-dkim" };
  if (isTemp(spf) || r.dkim.results.some((d) => isTemp(d.status.result))) {
    return { ok: false, temporary: true, message: `SPF/DKIM verification of ${fromDomain} hit a temporary DNS error, try again later` };
  }
  const envDomain = domainOf(input.mailFrom) || "(null sender)";
  const problems = [
    ...(spf === "pass" ? [] : [`spf=${spf} for ${envDomain}`]),
    ...(dkimOk ? [] : [`no valid DKIM signature of ${fromDomain} (${dkimSummary(r)})`]),
  ];
  return { ok: false, temporary: false, message: `SPF/DKIM verification failed for ${fromDomain}: ${problems.join("; ")}` };
}

function fromTrustedHeader(headers: readonly Header[], fromDomain: string, authservIds: ReadonlySet<string>): VerifyOutcome {
  // The topmost header with a trusted authserv-id is the relay's own (RFC 8601 section 5: it removes such headers arriving from outside).
  const ar = headers
    .filter((h) => h.name === "authentication-results")
    .map((h) => parseAuthenticationResults(h.value))
    .find((a) => a !== undefined && authservIds.has(a.authservId));
  if (ar === undefined) {
    return { ok: false, temporary: false, message: `no Authentication-Results header from a trusted relay vouches for ${fromDomain}` };
  }
  const dmarc = ar.results.find((x) => x.method === "dmarc");
  const fromOf = (x: AuthResult): string => (x.props["header.from"] ?? "").toLowerCase();
  if (dmarc !== undefined && dmarc.result === "pass" && fromOf(dmarc) === fromDomain) return { ok: true, method: `authentication-results:${ar.authservId}` };
  const dkim = ar.results.find((x) => x.method === "dkim" && x.result === "pass" && aligned(x.props["header.d"] ?? domainOf(x.props["header.i"] ?? ""), fromDomain));
  if (dkim !== undefined && (dmarc === undefined || dmarc.result !== "fail")) return { ok: true, method: `authentication-results:${ar.authservId}` };
  const said = ar.results
    .filter((x) => x.method === "dmarc" || x.method === "dkim" || x.method === "spf")
    .map((x) => `${x.method}=${x.result}`)
    .join(" ");
  return { ok: false, temporary: false, message: `sender verification failed for ${fromDomain}: ${ar.authservId} reports ${said || "no DMARC, DKIM or SPF result"}` };
}
