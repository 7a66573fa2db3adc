/**
 * Documents (spooled mail, extracted attachments) in PostgreSQL, so every
 * instance reads every job's files without a shared disk. A document is a
 * run of ~256 kB chunks (`document_chunks`) plus a head row
 * (`document_heads`) written last in the same transaction: a reader sees a
 * whole document or none, and a write that dies leaves nothing behind (the
 * transaction rolls back). Bytes stream in and out one chunk at a time: a
 * 50 MB attachment never sits in memory whole.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { link, lstat, mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import type { Logger } from "../../log.js";
import { errorMessage } from "../../errors.js";
import { DocumentError, isDocumentKey, workKey, type DocumentStore, type PutOptions } from "../ports.js";
import { NOW_MS, type Pool, type PoolClient } from "./connect.js";

export const CHUNK_BYTES = 256 * 1024;
/** How long a stored document's staged copy is kept for local reads. */
const CACHE_MS = 3_600_000;
/** Chunks fetched per round trip when reading. */
const READ_BATCH = 2;

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
 * copy, no concatenation); only the small row headers are new.
 */
async function* copyRows(key: string, source: AsyncIterable<Buffer | Uint8Array | string>, progress: CopyProgress): AsyncGenerator<Buffer> {
  const keyBytes = Buffer.from(key);
  let parts: Buffer[] = [];
  let held = 0;
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
  if (held > 0) yield* row();
  yield COPY_TRAILER;
}

export interface PgDocumentStoreOptions {
  readonly logger: Logger;
  /**
   * This instance's local directory (default one under the system's temp
   * directory): staged uploads and temporary copies (tmp/), recently stored
   * documents kept for local reads (cache/), scratch folders a parse extracts into before storeWorkDir (work/).
   */
  readonly localDir?: string;
}

function checkKey(key: string): void {
  if (!isDocumentKey(key)) throw new DocumentError("invalid_key", `invalid document key ${JSON.stringify(key)}`);
}

/** DocumentStore (src/store/ports.ts) in PostgreSQL. */
export class PgDocumentStore implements DocumentStore {
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #tmp: string;
  readonly #cache: string;
  readonly #work: string;

  constructor(pool: Pool, opts: PgDocumentStoreOptions) {
    this.#pool = pool;
    this.#log = opts.logger;
    const local = opts.localDir ?? join(tmpdir(), `faxbridge-pg-${process.getuid?.() ?? "user"}`);
    this.#tmp = join(local, "tmp");
    this.#cache = join(local, "cache");
    this.#work = join(local, "work");
  }

  /**
   * Store `body` under `key`; resolves after the commit. The body is first
   * staged in a private local file, so a slow sender never holds a database
   * connection; then it is copied in, chunk by chunk, in one transaction.
   * Rejects with DocumentError: too_big (nothing stored, the body read to
   * its end), aborted (the body failed), no_space, io.
   */
  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<{ readonly key: string; readonly size: number }> {
    checkKey(key);
    const staged = await this.#stage(body, opts.maxBytes);
    try {
      return await this.#storeFile(key, staged.file);
    } finally {
      await rm(staged.dir, { recursive: true, force: true });
    }
  }

  /** Copy a private local file in under `key` (one transaction), then keep it as the key's local cache copy (the file is moved). */
  async #storeFile(key: string, file: string): Promise<{ readonly key: string; readonly size: number }> {
    try {
      const client = await this.#pool.connect();
      let broken: Error | undefined;
      try {
        await client.query("BEGIN");
        try {
          const out = await this.#write(client, key, createReadStream(file, { highWaterMark: CHUNK_BYTES }));
          await client.query("COMMIT");
          await this.#keep(key, file);
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
    } catch (err) {
      throw new DocumentError("io", `storing document ${key} failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Store the files extracted into workDir(jobId) under `work/<jobId>/<name>`
   * (each streamed in its own transaction), then release the scratch folder:
   * another instance reads them from the database.
   */
  async storeWorkDir(jobId: string): Promise<void> {
    const dir = await this.workDir(jobId);
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (!e.isFile()) continue;
      const key = workKey(jobId, e.name);
      checkKey(key);
      await this.#storeFile(key, join(dir, e.name));
    }
    await rm(dir, { recursive: true, force: true });
  }

  /** The local cache file of `key` (a copy of what was stored, for localFile without a round trip). */
  #cached(key: string): string {
    return join(this.#cache, createHash("sha256").update(key).digest("hex"));
  }

  /** Keep a just-stored document's staged copy for local reads; copies older than CACHE_MS are dropped. */
  async #keep(key: string, file: string): Promise<void> {
    try {
      await mkdir(this.#cache, { recursive: true, mode: 0o700 });
      await rename(file, this.#cached(key));
      const cutoff = Date.now() - CACHE_MS;
      for (const name of await readdir(this.#cache)) {
        const path = join(this.#cache, name);
        const st = await lstat(path).catch(() => undefined);
        if (st !== undefined && st.mtimeMs < cutoff) await rm(path, { force: true });
      }
    } catch (err) {
      this.#log.debug({ event: "documents.cache_failed", err: errorMessage(err) }, "could not keep a local copy of a stored document");
    }
  }

  /** Read `body` to its end into a private file (nothing kept past maxBytes). */
  async #stage(body: Readable, maxBytes: number | undefined): Promise<{ dir: string; file: string; size: number }> {
    let bodyFailed: unknown;
    body.once("error", (err: unknown) => {
      bodyFailed ??= err;
    });
    await mkdir(this.#tmp, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(join(this.#tmp, "put-"));
    const file = join(dir, "body");
    let size = 0;
    let tooBig = false;
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            size += chunk.length;
            if (tooBig || (maxBytes !== undefined && size > maxBytes)) {
              tooBig = true;
              continue;
            }
            yield chunk;
          }
        },
        createWriteStream(file, { mode: 0o600, flags: "wx" }),
      );
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EDQUOT") throw new DocumentError("no_space", "insufficient local storage to stage the document", { cause: err });
      if (bodyFailed !== undefined || !body.readableEnded) {
        throw new DocumentError("aborted", `the document's input broke off: ${errorMessage(bodyFailed ?? err)}`, { cause: bodyFailed ?? err });
      }
      throw new DocumentError("io", `staging a document failed: ${errorMessage(err)}`, { cause: err });
    }
    if (tooBig) {
      await rm(dir, { recursive: true, force: true });
      throw new DocumentError("too_big", `document exceeds ${maxBytes ?? 0} bytes`);
    }
    return { dir, file, size };
  }

  async #write(client: PoolClient, key: string, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<{ key: string; size: number }> {
    await client.query("DELETE FROM document_chunks WHERE key = $1", [key]);
    await client.query("DELETE FROM document_heads WHERE key = $1", [key]);
    // COPY streams the bytes to the server as they come: no per-chunk statement copying each chunk again.
    const progress: CopyProgress = { size: 0, chunks: 0 };
    await pipeline(Readable.from(copyRows(key, source, progress)), client.query(copyFrom("COPY document_chunks (key, seq, bytes) FROM STDIN (FORMAT binary)")));
    await client.query(`INSERT INTO document_heads (key, size, chunks, created_at) VALUES ($1, $2, $3, ${NOW_MS})`, [key, progress.size, progress.chunks]);
    return { key, size: progress.size };
  }

  async stat(key: string): Promise<{ readonly size: number } | undefined> {
    const r = await this.#pool.query<{ size: number }>("SELECT size FROM document_heads WHERE key = $1", [key]);
    const row = r.rows[0];
    return row === undefined ? undefined : { size: row.size };
  }

  /** The document as a stream, fetched a few chunks at a time as the reader asks. */
  async open(key: string): Promise<Readable> {
    checkKey(key);
    const r = await this.#pool.query<{ chunks: number }>("SELECT chunks FROM document_heads WHERE key = $1", [key]);
    const head = r.rows[0];
    if (head === undefined) throw new DocumentError("missing", `document ${key} does not exist`);
    const pool = this.#pool;
    const total = head.chunks;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let seq = 0; seq < total; seq += READ_BATCH) {
        const batch = await pool.query<{ bytes: Buffer }>("SELECT bytes FROM document_chunks WHERE key = $1 AND seq >= $2 AND seq < $3 ORDER BY seq", [
          key,
          seq,
          seq + READ_BATCH,
        ]);
        // Removed while being read (the job was purged): say so rather than end short.
        if (batch.rows.length !== Math.min(READ_BATCH, total - seq)) throw new DocumentError("missing", `document ${key} was removed while being read`);
        for (const row of batch.rows) yield row.bytes;
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: CHUNK_BYTES });
  }

  /**
   * A temporary local copy, for libraries that need a path; `done()` removes
   * it. A document this instance stored recently is linked from its local
   * cache; otherwise it is streamed from the database.
   */
  async localFile(key: string): Promise<{ readonly path: string; done(): Promise<void> }> {
    checkKey(key);
    await mkdir(this.#tmp, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(join(this.#tmp, "doc-"));
    const path = join(dir, key.split("/").at(-1) ?? "document");
    const done = (): Promise<void> => rm(dir, { recursive: true, force: true });
    try {
      const linked = await link(this.#cached(key), path).then(
        () => true,
        () => false,
      );
      if (!linked) await pipeline(await this.open(key), createWriteStream(path, { mode: 0o600, flags: "wx" }));
    } catch (err) {
      await done();
      if (err instanceof DocumentError) throw err;
      throw new DocumentError("io", `copying document ${key} to a local file failed: ${errorMessage(err)}`, { cause: err });
    }
    return { path, done };
  }

  /** Remove `key`, or every key under `key/`. */
  async remove(keyOrPrefix: string): Promise<void> {
    checkKey(keyOrPrefix);
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const where = "key = $1 OR starts_with(key, $1 || '/')";
      const heads = await client.query<{ key: string }>(`DELETE FROM document_heads WHERE ${where} RETURNING key`, [keyOrPrefix]);
      await client.query(`DELETE FROM document_chunks WHERE ${where}`, [keyOrPrefix]);
      await client.query("COMMIT");
      // This instance's cached copies of what was removed (a job's documents under its work prefix too).
      for (const key of new Set([keyOrPrefix, ...heads.rows.map((r) => r.key)])) await rm(this.#cached(key), { force: true });
      if (keyOrPrefix.startsWith("work/")) await rm(join(this.#work, keyOrPrefix.slice(5)), { recursive: true, force: true });
      if ((heads.rowCount ?? 0) > 0) this.#log.debug({ event: "documents.removed", key: keyOrPrefix, count: heads.rowCount }, "documents removed");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** The job ids that have documents: msg/<id>.eml and work/<id>/…. */
  async jobIds(): Promise<string[]> {
    const ids = new Set([...(await this.list("msg")).map((n) => n.replace(/\.eml$/, "")), ...(await this.list("work"))]);
    return [...ids].sort();
  }

  /** The names directly under `prefix` ("msg" → ["<id>.eml", …]; "work" → ["<id>", …]), sorted. */
  async list(prefix: string): Promise<string[]> {
    checkKey(prefix);
    const r = await this.#pool.query<{ name: string }>(
      "SELECT DISTINCT split_part(substr(key, length($1) + 2), '/', 1) AS name FROM document_heads WHERE starts_with(key, $1 || '/') ORDER BY 1",
      [prefix],
    );
    const names = new Set(r.rows.map((row) => row.name).filter((n) => n.length > 0));
    // This instance's extraction folders count as written (the worker reads them here).
    const local = prefix === "work" ? this.#work : prefix.startsWith("work/") && prefix.split("/").length === 2 ? join(this.#work, prefix.slice(5)) : undefined;
    if (local !== undefined) {
      for (const e of await readdir(local, { withFileTypes: true }).catch(() => [])) {
        if (prefix !== "work" || (await readdir(join(local, e.name)).catch(() => [])).length > 0) names.add(e.name);
      }
    }
    return [...names].sort();
  }

  /**
   * The local folder for extracting a job's documents (stable across
   * restarts of this instance); removed with remove("work/<jobId>").
   */
  async workDir(jobId: string): Promise<string> {
    checkKey(`work/${jobId}`);
    const dir = join(this.#work, jobId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /**
   * Documents are written in one transaction each: nothing partial in the
   * database. Staged uploads, copies and extraction folders a process that is
   * gone left in this instance's local directory are removed (nothing there
   * is durable: a job's documents are in the database before its row names them).
   */
  async sweepPartial(): Promise<number> {
    await rm(this.#tmp, { recursive: true, force: true });
    await rm(this.#work, { recursive: true, force: true });
    return 0;
  }
}
