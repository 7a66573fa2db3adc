import { execFileSync } from "node:child_process";
import { join } from "node:path";

/** True when the openssl command is there to make test certificates (tests that need one skip without it). */
export function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A throwaway self-signed key and certificate (PEM files in `dir`) for `cn`, valid one day. */
export function selfSignedCert(dir: string, cn = "fax.test"): { key: string; cert: string } {
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", `/CN=${cn}`], { stdio: "ignore" });
  return { key, cert };
}
