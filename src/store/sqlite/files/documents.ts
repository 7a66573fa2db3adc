/**
 * DocumentStore (src/store/ports.ts) on files: the SQLite backend keeps mail
 * and documents under `<dataDir>/spool/`, a key being a path below it:
 *
 *     tmp/<random>      being written (deleted at open: never acknowledged)
 *     msg/<id>.eml      a raw accepted message (key msg/<id>.eml)
 *     work/<id>/<file>  a job's extracted documents (keys work/<id>/<file>)
 *
 * A `put` streams into tmp/, fsyncs, renames into place and fsyncs the
 * directory before it resolves; raw messages go through writer threads
 * (./writer.ts) that share directory fsyncs, everything else through plain
 * async calls. Rows name keys, never these paths.
 */
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "../../../log.js";
import { errorMessage } from "../../../errors.js";
import { DocumentError, isDocumentKey, workPrefix, type DocumentStore, type PutOptions } from "../../ports.js";
import { WRITE_CHUNK_BYTES, WriterPool, type WriterReply } from "./writer.js";
import { SPOOL_WRITER_THREADS } from "../../../tunables.js";

const DEFAULT_WRITER_THREADS = SPOOL_WRITER_THREADS;

function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

/** What a put writes through: a writer-thread job (raw messages) or plain async calls. */
interface Sink {
  write(chunks: readonly Buffer[], last: boolean): Promise<WriterReply>;
  abort(): Promise<WriterReply | undefined>;
  finished(): void;
}

/** A document written with async calls: tmp file (wx, 0600), fsync, rename, directory fsync. */
class AsyncSink implements Sink {
  readonly #tmp: string;
  readonly #final: string;
  #fd: Awaited<ReturnType<typeof open>> | undefined;
  #renamed = false;

  constructor(tmp: string, final: string) {
    this.#tmp = tmp;
    this.#final = final;
  }

  async write(chunks: readonly Buffer[], last: boolean): Promise<WriterReply> {
    this.#fd ??= await open(this.#tmp, "wx", 0o600);
    for (const c of chunks) await this.#fd.write(c);
    if (last) {
      await this.#fd.sync();
      await this.#fd.close();
      this.#fd = undefined;
      await mkdir(dirname(this.#final), { recursive: true, mode: 0o700 });
      await rename(this.#tmp, this.#final);
      this.#renamed = true;
      const dir = await open(dirname(this.#final), "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
    return { job: 0 };
  }

  async abort(): Promise<WriterReply | undefined> {
    const problems: { path: string; message: string }[] = [];
    if (this.#fd !== undefined) await this.#fd.close().catch(() => undefined);
    this.#fd = undefined;
    for (const p of this.#renamed ? [this.#final] : [this.#tmp]) {
      await unlink(p).catch((err: unknown) => {
        if (!isMissing(err)) problems.push({ path: p, message: errorMessage(err) });
      });
    }
    return { job: 0, problems };
  }

  finished(): void {}
}

export interface FileDocumentStoreOptions {
  /** `<dataDir>/spool`. */
  readonly root: string;
  readonly logger: Logger;
  /** Writer threads for raw messages, started as concurrent messages need them (default 4). */
  readonly writerThreads?: number;
}

export class FileDocumentStore implements DocumentStore {
  readonly root: string;
  readonly #tmpDir: string;
  readonly #log: Logger;
  readonly #writers: WriterPool;

  private constructor(opts: FileDocumentStoreOptions) {
    this.root = opts.root;
    this.#tmpDir = join(opts.root, "tmp");
    this.#log = opts.logger.child({ component: "spool" });
    this.#writers = new WriterPool(join(opts.root, "msg"), opts.writerThreads ?? DEFAULT_WRITER_THREADS);
  }

  /** Create the directories (mode 0700). Writer threads start with the first message. */
  static async open(opts: FileDocumentStoreOptions): Promise<FileDocumentStore> {
    for (const d of ["", "tmp", "msg", "work"]) await mkdir(join(opts.root, d), { recursive: true, mode: 0o700 });
    return new FileDocumentStore(opts);
  }

  /** Delete partial writes left in tmp/; resolves with how many. Only the data directory's owner may (nothing else writes then). */
  async sweepPartial(): Promise<number> {
    let n = 0;
    for (const name of await readdir(this.#tmpDir)) {
      await rm(join(this.#tmpDir, name), { recursive: true, force: true });
      n++;
    }
    return n;
  }

  /** Stop the writer threads (after the last put). */
  async close(): Promise<void> {
    await this.#writers.close();
  }

  /** The file of a key (validated: never outside the root). */
  pathOf(key: string): string {
    if (!isDocumentKey(key)) throw new DocumentError("invalid_key", `invalid document key ${JSON.stringify(key)}`);
    return join(this.root, ...key.split("/"));
  }

  async put(key: string, input: Readable, opts: PutOptions = {}): Promise<{ key: string; size: number }> {
    const final = this.pathOf(key);
    const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    const tmp = join(this.#tmpDir, `${key.replace(/\//g, "_").slice(0, 100)}.${randomBytes(4).toString("hex")}`);
    const sink: Sink = /^msg\/[^/]+$/.test(key) ? this.#writers.begin(tmp, final) : new AsyncSink(tmp, final);
    const sized = input as Readable & { sizeExceeded?: boolean };
    let failure: unknown;
    let size = 0;
    let chunks: Buffer[] = [];
    let buffered = 0;
    let writing: Promise<void> = Promise.resolve();
    const check = (r: WriterReply): void => {
      if (r.error !== undefined) failure ??= Object.assign(new Error(r.error.message), { code: r.error.code });
      this.#logProblems(key, r);
    };

    // Always read the input to its end, even on failure, so an SMTP session can answer.
    await new Promise<void>((resolve) => {
      let settled = false;
      const done = (): void => {
        if (settled) return;
        settled = true;
        input.off("data", onData);
        resolve();
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (failure !== undefined) return;
        if (size > maxBytes || sized.sizeExceeded === true) {
          failure = new DocumentError("too_big", `message exceeds fixed maximum message size ${maxBytes}`);
          chunks = [];
          buffered = 0;
          return;
        }
        chunks.push(chunk);
        buffered += chunk.length;
        if (buffered >= WRITE_CHUNK_BYTES) {
          // Large document: hand this part to the writer, read on once it is written.
          const out = chunks;
          chunks = [];
          buffered = 0;
          input.pause();
          writing = writing
            .then(async () => {
              if (failure === undefined) check(await sink.write(out, false));
            })
            .catch((err: unknown) => {
              failure ??= err;
            })
            .finally(() => input.resume());
        }
      };
      input.on("data", onData);
      input.once("end", done);
      input.once("error", (err: unknown) => {
        failure ??= new DocumentError("aborted", "the client went away during DATA", { cause: err });
        done();
      });
      input.once("close", () => {
        if (!input.readableEnded) failure ??= new DocumentError("aborted", "the client went away during DATA");
        done();
      });
    });

    await writing;
    try {
      if (failure === undefined) check(await sink.write(chunks, true));
      chunks = [];
    } catch (err) {
      failure ??= err;
    }
    if (failure === undefined) {
      sink.finished();
      return { key, size };
    }
    // The writer thread cleaned up after its own errors; after ours (too big, aborted) it removes what it wrote.
    try {
      const r = await sink.abort();
      if (r !== undefined) this.#logProblems(key, r);
    } catch (err) {
      this.#log.error({ event: "spool.unlink_failed", key, err }, "could not remove a partial spool file");
    } finally {
      sink.finished();
    }
    throw classify(failure);
  }

  #logProblems(key: string, r: WriterReply): void {
    for (const p of r.problems ?? []) {
      this.#log.error({ event: "spool.unlink_failed", key, path: p.path, err: p.message }, "could not remove a spool file");
    }
  }

  async open(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    // Open first, so a missing document is an error here and not on the stream later.
    const handle = await open(path, "r").catch((err: unknown) => {
      throw isMissing(err) ? new DocumentError("missing", `document ${key} does not exist`, { cause: err }) : err;
    });
    return createReadStream(path, { fd: handle, autoClose: true });
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const s = await stat(this.pathOf(key));
      return { size: s.size };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async localFile(key: string): Promise<{ path: string; done(): Promise<void> }> {
    return { path: this.pathOf(key), done: async () => undefined };
  }

  async workDir(jobId: string): Promise<string> {
    const dir = this.pathOf(workPrefix(jobId));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** The folder is the store already: fsync its files and the folder, so the row that names them survives a crash with them. */
  async storeWorkDir(jobId: string): Promise<void> {
    const dir = this.pathOf(workPrefix(jobId));
    try {
      for (const name of await readdir(dir)) {
        const f = await open(join(dir, name), "r");
        try {
          await f.sync();
        } finally {
          await f.close();
        }
      }
      const d = await open(dir, "r");
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (err) {
      throw classify(err);
    }
  }

  async remove(keyOrPrefix: string): Promise<void> {
    const path = this.pathOf(keyOrPrefix);
    try {
      await rm(path, { recursive: true, force: true });
    } catch (err) {
      this.#log.error({ event: "spool.unlink_failed", key: keyOrPrefix, err }, "could not remove a spool file");
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    try {
      return (await readdir(this.pathOf(prefix))).sort();
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
  }
}

function classify(err: unknown): DocumentError {
  if (err instanceof DocumentError) return err;
  if (isNoSpace(err)) return new DocumentError("no_space", "insufficient system storage", { cause: err });
  return new DocumentError("io", `spool write failed: ${errorMessage(err)}`, { cause: err });
}
