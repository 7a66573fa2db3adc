import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { finished } from "node:stream/promises";
import { join } from "node:path";
import { newId } from "../util/ids.js";

/**
 * Writes a document to disk chunk by chunk while computing size, sha256 and a
 * rough PDF page count (`/Type /Page` objects). Nothing is buffered whole.
 */
export class DocumentWriter {
  readonly path: string;
  size = 0;
  private readonly hash = createHash("sha256");
  private readonly out;
  private readonly countPages: boolean;
  private carry = "";
  private pages = 0;

  constructor(dir: string, countPdfPages: boolean) {
    this.path = join(dir, newId());
    this.out = createWriteStream(this.path, { flags: "wx" });
    this.countPages = countPdfPages;
  }

  async write(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    this.hash.update(chunk);
    if (this.countPages) this.scan(chunk);
    if (!this.out.write(chunk)) await once(this.out, "drain");
  }

  async finish(): Promise<{ size: number; sha256: string; pages: number }> {
    this.out.end();
    await finished(this.out);
    return { size: this.size, sha256: this.hash.digest("hex"), pages: this.countPages ? this.pages : 1 };
  }

  abort(): void {
    this.out.destroy();
  }

  /** Counts `/Type /Page` not followed by a letter; matches are counted once, across chunk edges. */
  private scan(chunk: Buffer): void {
    const text = this.carry + chunk.toString("latin1");
    const re = /\/Type\s*\/Page[^A-Za-z]/g;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m.index + m[0].length > this.carry.length) this.pages++;
    }
    this.carry = text.slice(-64);
  }
}
