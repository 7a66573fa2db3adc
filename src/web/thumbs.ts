import { execFile } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import { THUMBNAILS_AT_ONCE } from "../tunables.js";

/**
 * First-page thumbnails of received faxes, rendered by poppler's `pdftoppm`
 * (Debian package poppler-utils): a mature renderer that runs offline, in its
 * own process (a hostile PDF cannot take the daemon down) and with a time
 * limit. When it is not installed, or cannot read the document, the console
 * shows a plain placeholder instead; nothing else depends on it.
 */

export const PLACEHOLDER_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="124" viewBox="0 0 96 124"><rect width="96" height="124" fill="#fff" stroke="#bbb"/>' +
  '<text x="48" y="66" font-family="sans-serif" font-size="16" text-anchor="middle" fill="#888">PDF</text></svg>';

let available: Promise<boolean> | undefined;

function run(cmd: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err) => (err ? reject(err) : resolve()));
  });
}

export function pdftoppmAvailable(): Promise<boolean> {
  available ??= run("pdftoppm", ["-v"], 5_000).then(
    () => true,
    (err: NodeJS.ErrnoException) => err.code !== "ENOENT",
  );
  return available;
}

/** Renderings at the same time: an Inbox page asks for up to 50 at once. */
const MAX_RUNNING = THUMBNAILS_AT_ONCE;
let running = 0;
const queue: (() => void)[] = [];

async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) await new Promise<void>((resolve) => queue.push(resolve));
  running++;
  try {
    return await work();
  } finally {
    running--;
    queue.shift()?.();
  }
}

/**
 * A PNG of the first page, or undefined when it cannot be made. Rendered on
 * demand in `dir` and deleted at once: a thumbnail is as sensitive as the fax,
 * so none outlives the document's retention (browsers cache it privately).
 * Only documents on disk are rendered: fetching each from RingCentral for an
 * Inbox page would spend its rate limits on pictures.
 */
export async function thumbnail(dir: string, faxId: string, open: () => Promise<{ body: Readable } | undefined>): Promise<Buffer | undefined> {
  if (!(await pdftoppmAvailable())) return undefined;
  return slot(() => render(dir, faxId, open));
}

async function render(dir: string, faxId: string, open: () => Promise<{ body: Readable } | undefined>): Promise<Buffer | undefined> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const nonce = `${faxId}-${process.hrtime.bigint()}`;
  const pdf = join(dir, `${nonce}.pdf`);
  const prefix = join(dir, nonce);
  try {
    const doc = await open();
    if (doc === undefined) return undefined;
    await pipeline(doc.body, createWriteStream(pdf, { mode: 0o600 }));
    if ((await stat(pdf)).size === 0) return undefined;
    await run("pdftoppm", ["-png", "-f", "1", "-l", "1", "-scale-to", "240", "-singlefile", pdf, prefix], 15_000);
    return await readFile(`${prefix}.png`);
  } catch {
    return undefined;
  } finally {
    await rm(pdf, { force: true });
    await rm(`${prefix}.png`, { force: true });
  }
}
