import addressparser from "nodemailer/lib/addressparser";
import { readHeaderBlock } from "../mail/header-block.js";
import { MAX_HEADER_BYTES } from "../tunables.js";

/**
 * Reading what the sender rules need from a spooled message: its header
 * section (never the body), the From address and Authentication-Results.
 */

export interface Header {
  /** Lower case. */
  readonly name: string;
  /** Unfolded. */
  readonly value: string;
}

/** Read and unfold the header section of a message file; none when it is longer than `maxBytes`. */
export async function readHeaders(path: string, maxBytes = MAX_HEADER_BYTES): Promise<Header[]> {
  const block = await readHeaderBlock(path, maxBytes);
  return block.complete ? parseHeaderBlock(block.bytes.toString("latin1")) : [];
}

export function parseHeaderBlock(block: string): Header[] {
  const headers: Header[] = [];
  let current: string | undefined;
  const flush = (): void => {
    if (current === undefined) return;
    const colon = current.indexOf(":");
    if (colon > 0) headers.push({ name: current.slice(0, colon).trim().toLowerCase(), value: current.slice(colon + 1).trim() });
    current = undefined;
  };
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && current !== undefined) current += ` ${line.trim()}`;
    else {
      flush();
      current = line;
    }
  }
  flush();
  return headers;
}

/** The single From address of a message; a reason when there is none or more than one (DMARC needs exactly one). */
export function fromAddress(headers: readonly Header[]): { ok: true; address: string } | { ok: false; reason: string } {
  const from = headers.filter((h) => h.name === "from");
  if (from.length !== 1) return { ok: false, reason: from.length === 0 ? "the mail has no From header" : "the mail has more than one From header" };
  const addresses = addressparser(Buffer.from((from[0] as Header).value, "latin1").toString("utf8"), { flatten: true }).filter((a) => a.address !== "");
  if (addresses.length !== 1) return { ok: false, reason: addresses.length === 0 ? "the From header has no address" : "the From header has more than one address" };
  const address = (addresses[0] as { address: string }).address;
  if (!/^[^@\s]+@[^@\s]+$/.test(address)) return { ok: false, reason: "the From address is malformed" };
  return { ok: true, address };
}

/** One method result of an Authentication-Results header (RFC 8601), e.g. dmarc=pass header.from=example.com. */
export interface AuthResult {
  readonly method: string;
  readonly result: string;
  /** ptype.property → value, lower-cased keys (header.from, header.d, header.i, smtp.mailfrom). */
  readonly props: Readonly<Record<string, string>>;
}

export interface AuthenticationResults {
  readonly authservId: string;
  readonly results: readonly AuthResult[];
}

/** Parse an Authentication-Results value; undefined when it is not one. */
export function parseAuthenticationResults(value: string): AuthenticationResults | undefined {
  const text = stripComments(value);
  const [head = "", ...rest] = splitOutsideQuotes(text, ";");
  const authservId = head.trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  if (authservId === "") return undefined;
  const results: AuthResult[] = [];
  for (const segment of rest) {
    const tokens = segment.trim().match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
    const first = tokens[0];
    if (first === undefined) continue;
    const eq = first.indexOf("=");
    if (eq <= 0) continue;
    const method = first.slice(0, eq).split("/")[0]?.toLowerCase() ?? "";
    const result = first.slice(eq + 1).toLowerCase();
    const props: Record<string, string> = {};
    for (const t of tokens.slice(1)) {
      const i = t.indexOf("=");
      if (i <= 0) continue;
      const key = t.slice(0, i).toLowerCase();
      if (!key.includes(".")) continue;
      props[key] = t.slice(i + 1).replace(/^"(.*)"$/, "$1");
    }
    results.push({ method, result, props });
  }
  return { authservId, results };
}

/** Remove RFC 5322 comments (nested parentheses), keeping quoted strings. */
function stripComments(s: string): string {
  let out = "";
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === "\\" && i + 1 < s.length) {
      if (depth === 0) out += c + (s[i + 1] as string);
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      out += c;
    } else if (c === "(") depth++;
    else if (c === ")" && depth > 0) depth--;
    else if (depth === 0) {
      if (c === '"') quoted = true;
      out += c;
    }
  }
  return out;
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = "";
  let quoted = false;
  for (const c of s) {
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      parts.push(cur);
      cur = "";
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}
