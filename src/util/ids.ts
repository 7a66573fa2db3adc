import { randomBytes } from "node:crypto";

let lastMs = 0;
let counter = 0;

/**
 * A queue id: sortable by creation time, unique across processes, safe in file
 * names and SMTP replies. 13 base-36 characters of time and counter, then 8 of
 * randomness, e.g. `0mhx8f2k1a00c-3f9d2a7b`.
 */
export function newId(now: number = Date.now()): string {
  if (now === lastMs) counter++;
  else {
    lastMs = now;
    counter = 0;
  }
  const time = now.toString(36).padStart(9, "0");
  const seq = counter.toString(36).padStart(4, "0");
  return `${time}${seq}-${randomBytes(4).toString("hex")}`;
}

const ID_RE = /^[0-9a-z]{13}-[0-9a-f]{8}$/;

export function isId(value: string): boolean {
  return ID_RE.test(value);
}

/** When an id was made (epoch ms), from its first nine characters; NaN for something else. */
export function idCreatedAt(id: string): number {
  return isId(id) ? parseInt(id.slice(0, 9), 36) : Number.NaN;
}
