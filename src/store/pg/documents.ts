/**
 * Documents (spooled mail, extracted attachments) in PostgreSQL, so every
 * instance reads every job's files without a shared disk. A document is a
 * run of ~256 kB chunks (`document_chunks`) plus a head row
 * (`document_heads`) written last in the same transaction: a reader sees a
 * whole document or none, and a write that dies leaves nothing behind (the
 * transaction rolls back). Bytes stream in and out one chunk at a time: a
 * 50 MB attachment never sits in memory whole.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import type { Logger } from "../../log.js";
import { NOW_MS, type Pool, type PoolClient } from "./connect.js";

export const CHUNK_BYTES = 256 * 1024;
/** Chunks fetched per round trip when reading. */
const READ_BATCH = 2;

export class DocumentNotFoundError extends Error {
  readonly code = "ENOENT";
  readonly key: string;
  constructor(key: string) {
    super(`document ${key} does not exist`);
    this.name = "DocumentNotFoundError";
    this.key = key;
  }
}

export class DocumentTooBigError extends Error {
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    super(`document exceeds ${maxBytes} bytes`);
    this.name = "DocumentTooBigError";
    this.maxBytes = maxBytes;
  }
}

export interface PutOptions {
  /** Refuse (DocumentTooBigError, nothing stored) past this many bytes; the source is still read to its end. */
  readonly maxBytes?: number;
  /** Run inside this open transaction instead of one of its own (the caller commits). */
  readonly client?: PoolClient;
}

export interface StoredDocument {
  readonly key: string;
  readonly size: number;
}

const KEY_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

function checkKey(key: string): void {
  if (!KEY_RE.test(key) || key.split("/").some((s) => s === "." || s === "..")) throw new Error(`invalid document key ${JSON.stringify(key)}`);
}

/** The binary COPY header: signature, flags, header extension length. */
const COPY_HEADER = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)]);
const COPY_TRAILER = Buffer.from([0xff, 0xff]);

/** One `document_chunks` row's header in binary COPY format: 3 fields (key, seq, then the bytes' length). */
function rowHeader(key: Buffer, seq: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(2 + 4 + key.length + 4 + 4 + 4);
  let at = b.writeInt16BE(3, 0);
  at = b.writeInt32BE(key.length, at);
  at += key.copy(b, at);
  at = b.writeInt32BE(4, at);
  at = b.writeInt32BE(seq, at);
  b.writeInt32BE(length, at);
  return b;
}

interface CopyProgress {
  size: number;
  chunks: number;
}

/**
 * The binary COPY stream of `source` as `document_chunks` rows of CHUNK_BYTES
 * (the last may be shorter). The input's own buffers are passed through (no
 * copy, no concatenation); only the small row headers are new. Past
 * `maxBytes` it reads the source to its end, yields nothing more, and throws
 * DocumentTooBigError (which fails the COPY).
 */
async function* copyRows(key: string, source: AsyncIterable<Buffer | Uint8Array | string>, maxBytes: number | undefined, progress: CopyProgress): AsyncGenerator<Buffer> {
  const keyBytes = Buffer.from(key);
  let parts: Buffer[] = [];
  let held = 0;
  let tooBig = false;
  function* row(): Generator<Buffer> {
    yield rowHeader(keyBytes, progress.chunks++, held);
    yield* parts;
    parts = [];
    held = 0;
  }
  yield COPY_HEADER;
  for await (const raw of source) {
    let chunk = typeof raw === "string" ? Buffer.from(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    progress.size += chunk.length;
    if (tooBig || (maxBytes !== undefined && progress.size > maxBytes)) {
      // Read the rest so the sender can be answered, but store nothing more.
      tooBig = true;
      parts = [];
      continue;
    }
    while (held + chunk.length >= CHUNK_BYTES) {
      const take = CHUNK_BYTES - held;
      parts.push(chunk.subarray(0, take));
      held += take;
      yield* row();
      chunk = chunk.subarray(take);
    }
    if (chunk.length > 0) {
      parts.push(chunk);
      held += chunk.length;
    }
  }
  if (tooBig) throw new DocumentTooBigError(maxBytes ?? 0);
  if (held > 0) yield* row();
  yield COPY_TRAILER;
}

export class PgDocumentStore {
  readonly #pool: Pool;
  readonly #log: Logger;

  constructor(pool: Pool, logger: Logger) {
    this.#pool = pool;
    this.#log = logger;
  }

  /**
   * Store `source` under `key` (replacing a document of that key), streamed
   * chunk by chunk in one transaction; resolves after the commit (or, with
   * `client`, after the last chunk was written in the caller's transaction).
   */
  async put(key: string, source: AsyncIterable<Buffer | Uint8Array | string>, opts: PutOptions = {}): Promise<StoredDocument> {
    checkKey(key);
    if (opts.client !== undefined) return this.#write(opts.client, key, source, opts.maxBytes);
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      try {
        const out = await this.#write(client, key, source, opts.maxBytes);
        await client.query("COMMIT");
        return out;
      } catch (err) {
        await client.query("ROLLBACK").catch((e: unknown) => {
          broken = e instanceof Error ? e : new Error(String(e));
        });
        throw err;
      }
    } finally {
      client.release(broken);
    }
  }

  async #write(client: PoolClient, key: string, source: AsyncIterable<Buffer | Uint8Array | string>, maxBytes: number | undefined): Promise<StoredDocument> {
    await client.query("DELETE FROM document_chunks WHERE key = $1", [key]);
    await client.query("DELETE FROM document_heads WHERE key = $1", [key]);
    // COPY streams the bytes to the server as they come: no per-chunk statement copying each chunk again.
    const progress: CopyProgress = { size: 0, chunks: 0 };
    await pipeline(Readable.from(copyRows(key, source, maxBytes, progress)), client.query(copyFrom("COPY document_chunks (key, seq, bytes) FROM STDIN (FORMAT binary)")));
    await client.query(`INSERT INTO document_heads (key, size, chunks, created_at) VALUES ($1, $2, $3, ${NOW_MS})`, [key, progress.size, progress.chunks]);
    return { key, size: progress.size };
  }

  /** Size of a complete document, or undefined. */
  async stat(key: string): Promise<StoredDocument | undefined> {
    const r = await this.#pool.query<{ size: number }>("SELECT size FROM document_heads WHERE key = $1", [key]);
    const row = r.rows[0];
    return row === undefined ? undefined : { key, size: row.size };
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined;
  }

  /**
   * The document as a stream, fetched a few chunks at a time as the reader
   * asks. Rejects (DocumentNotFoundError) when there is no such document.
   */
  async open(key: string): Promise<Readable> {
    const r = await this.#pool.query<{ chunks: number }>("SELECT chunks FROM document_heads WHERE key = $1", [key]);
    const head = r.rows[0];
    if (head === undefined) throw new DocumentNotFoundError(key);
    const pool = this.#pool;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let seq = 0; seq < head!.chunks; seq += READ_BATCH) {
        const batch = await pool.query<{ bytes: Buffer }>("SELECT bytes FROM document_chunks WHERE key = $1 AND seq >= $2 AND seq < $3 ORDER BY seq", [
          key,
          seq,
          seq + READ_BATCH,
        ]);
        const want = Math.min(READ_BATCH, head!.chunks - seq);
        if (batch.rows.length !== want) throw new DocumentNotFoundError(key);
        for (const row of batch.rows) yield row.bytes;
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: CHUNK_BYTES });
  }

  /** The whole document, for small ones (headers, JSON); refuses past `maxBytes`. */
  async read(key: string, maxBytes: number): Promise<Buffer> {
    const st = await this.stat(key);
    if (st === undefined) throw new DocumentNotFoundError(key);
    if (st.size > maxBytes) throw new DocumentTooBigError(maxBytes);
    const parts: Buffer[] = [];
    for await (const c of await this.open(key)) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  /** Keys of the complete documents under `prefix` ("work/<id>/"), in order. */
  async list(prefix: string): Promise<string[]> {
    const r = await this.#pool.query<{ key: string }>("SELECT key FROM document_heads WHERE starts_with(key, $1) ORDER BY key", [prefix]);
    return r.rows.map((row) => row.key);
  }

  /** Remove a document; a missing one is fine. */
  async delete(key: string): Promise<void> {
    await this.#deleteWhere("key = $1", key);
  }

  /** Remove every document under `prefix` (a job's working files). */
  async deletePrefix(prefix: string): Promise<number> {
    if (prefix.length === 0) throw new Error("refusing to delete every document");
    return this.#deleteWhere("starts_with(key, $1)", prefix);
  }

  async #deleteWhere(where: string, arg: string): Promise<number> {
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const heads = await client.query(`DELETE FROM document_heads WHERE ${where}`, [arg]);
      await client.query(`DELETE FROM document_chunks WHERE ${where}`, [arg]);
      await client.query("COMMIT");
      const n = heads.rowCount ?? 0;
      if (n > 0) this.#log.debug({ event: "documents.deleted", count: n }, "documents removed");
      return n;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}
