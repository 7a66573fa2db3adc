import { generateKeyPairSync } from "node:crypto";
import { dkimSign, type DNSResolver } from "mailauth";
import { expect } from "vitest";

/** A DKIM signing key and its DNS TXT record (selector s1). */
export function keyPair(): { privateKey: string; dns: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    dns: `v=DKIM1; k=rsa; p=${publicKey.export({ type: "spki", format: "der" }).toString("base64")}`,
  };
}

/** DNS that answers from a table keyed "TXT name" (no network in tests); other names are ENOTFOUND. */
export function tableResolver(table: Record<string, string[][]>): DNSResolver {
  return async (name, rrtype) => {
    const answer = table[`${rrtype} ${name.toLowerCase()}`];
    if (answer !== undefined) return answer;
    throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: "ENOTFOUND" });
  };
}

/** `raw` with a DKIM-Signature of `domain` (selector s1) in front. */
export async function signed(raw: string, domain: string, privateKey: string): Promise<string> {
  const r = await dkimSign(raw, { signatureData: [{ signingDomain: domain, selector: "s1", privateKey }] } as Parameters<typeof dkimSign>[1]);
  expect(r.errors).toEqual([]);
  return r.signatures + raw;
}
