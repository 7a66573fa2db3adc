import { createReadStream, type ReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "../log.js";
import type { OutboundStore } from "../store/outbound.js";
import { errorMessage } from "../errors.js";
import { isId } from "../util/ids.js";

/**
 * The durable spool for raw accepted messages, under `<dataDir>/spool/`:
 *
 *     tmp/<id>        being received (deleted at start: never acknowledged)
 *     msg/<id>.eml    received in full, fsynced, renamed, directory fsynced
 *     work/<id>/      per-job working directory (extracted documents)
 *
 * A message is durable when `receive()` resolves; only then may the job row
 * be inserted, and only after that commit may the client get its 250.
 */

export type SpoolErrorKind = "too_big" | "no_space" | "aborted" | "io";

export class SpoolError extends Error {
  readonly kind: SpoolErrorKind;
  constructor(kind: SpoolErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SpoolError";
    this.kind = kind;
  }
}

/** A readable the SMTP server hands us; smtp-server sets `sizeExceeded` when the advertised SIZE is passed. */
export type MessageStream = Readable & { sizeExceeded?: boolean };

export interface SpoolOptions {
  /** The daemon's data directory; the spool lives in `<dataDir>/spool/`. */
  readonly dataDir: string;
  readonly logger: Logger;
}

export interface SpooledMessage {
  readonly path: string;
  readonly size: number;
}

export interface RecoveryReport {
  /** Partial files in tmp/ that were deleted. */
  readonly tmpDeleted: number;
  /** Spooled files without a job row (never acknowledged) that were deleted. */
  readonly orphansDeleted: string[];
  /** Jobs whose spool file was missing; they were marked failed. */
  readonly missing: string[];
}

/** Below this many buffered bytes a message is written in one go after DATA ends. */
const WRITE_CHUNK_BYTES = 256 * 1024;
/** States in which a job still needs its raw message to make progress. */
const NEEDS_SPOOL = ["received", "parsed"] as const;

function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

async function writeAll(fh: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    const total = pending.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(pending);
    if (bytesWritten >= total) return;
    // A short write: continue from where it stopped.
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    pending = rest;
  }
}

/**
 * Coalesces directory fsyncs: a caller waits for a sync that *starts* after
 * its request, and every caller waiting at that moment shares one fsync.
 */
class DirSyncer {
  readonly #fh: FileHandle;
  #inFlight = false;
  #waiting: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | undefined;

  constructor(fh: FileHandle) {
    this.#fh = fh;
  }

  sync(): Promise<void> {
    const joined = this.#waiting;
    if (joined !== undefined) return joined.promise;
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#waiting = { promise, resolve, reject };
    if (!this.#inFlight) this.#start();
    return promise;
  }

  #start(): void {
    const batch = this.#waiting;
    if (batch === undefined) return;
    this.#waiting = undefined;
    this.#inFlight = true;
    this.#fh.sync().then(
      () => {
        this.#inFlight = false;
        batch.resolve();
        this.#start();
      },
      (err: unknown) => {
        this.#inFlight = false;
        batch.reject(err);
        this.#start();
      },
    );
  }

  close(): Promise<void> {
    return this.#fh.close();
  }
}

export class Spool {
  readonly root: string;
  readonly tmpDir: string;
  readonly msgDir: string;
  readonly workDir: string;
  readonly #log: Logger;
  readonly #dirSync: DirSyncer;

  private constructor(root: string, log: Logger, dirSync: DirSyncer) {
    this.root = root;
    this.tmpDir = join(root, "tmp");
    this.msgDir = join(root, "msg");
    this.workDir = join(root, "work");
    this.#log = log;
    this.#dirSync = dirSync;
  }

  /** Create the spool directories (mode 0700) and open the message directory for fsyncs. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const root = join(opts.dataDir, "spool");
    for (const d of [root, join(root, "tmp"), join(root, "msg"), join(root, "work")]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
    }
    const dirFh = await open(join(root, "msg"), "r");
    return new Spool(root, opts.logger.child({ component: "spool" }), new DirSyncer(dirFh));
  }

  async close(): Promise<void> {
    await this.#dirSync.close();
  }

  messagePath(id: string): string {
    return join(this.msgDir, `${id}.eml`);
  }

  /**
   * Stream a message into the spool: `tmp/<id>` (wx, 0600), byte counter,
   * fsync, close, rename to `msg/<id>.eml`, fsync the directory. Always reads
   * the input to its end, even on failure, so the SMTP session can answer.
   * Rejects with a SpoolError.
   */
  async receive(id: string, input: MessageStream, maxBytes: number): Promise<SpooledMessage> {
    if (!isId(id)) throw new SpoolError("io", `invalid spool id ${JSON.stringify(id)}`);
    const tmp = join(this.tmpDir, id);
    const final = this.messagePath(id);
    let failure: unknown;
    let size = 0;
    let chunks: Buffer[] = [];
    let buffered = 0;
    let writing: Promise<void> = Promise.resolve();

    const opened = open(tmp, "wx", 0o600).then(
      (fh) => fh,
      (err: unknown) => {
        failure ??= err;
        return undefined;
      },
    );

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
        if (size > maxBytes || input.sizeExceeded === true) {
          failure = new SpoolError("too_big", `message exceeds fixed maximum message size ${maxBytes}`);
          chunks = [];
          buffered = 0;
          return;
        }
        chunks.push(chunk);
        buffered += chunk.length;
        if (buffered >= WRITE_CHUNK_BYTES) {
          const out = chunks;
          chunks = [];
          buffered = 0;
          input.pause();
          writing = writing
            .then(async () => {
              const fh = await opened;
              if (fh !== undefined && failure === undefined) await writeAll(fh, out);
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
        failure ??= new SpoolError("aborted", "the client went away during DATA", { cause: err });
        done();
      });
      input.once("close", () => {
        if (!input.readableEnded) failure ??= new SpoolError("aborted", "the client went away during DATA");
        done();
      });
    });

    await writing;
    const fh = await opened;
    try {
      if (failure !== undefined) throw failure;
      if (fh === undefined) throw new SpoolError("io", "spool file was not opened");
      await writeAll(fh, chunks);
      chunks = [];
      await fh.sync();
      await fh.close();
      await rename(tmp, final);
      await this.#dirSync.sync();
      return { path: final, size };
    } catch (err) {
      if (fh !== undefined) {
        await fh.close().catch((e: unknown) => {
          // Already closed after a successful close() and a later failure: nothing to do.
          if ((e as NodeJS.ErrnoException).code !== "EBADF") this.#log.warn({ event: "spool.close_failed", queueId: id, err: e }, "closing a spool file failed");
        });
      }
      await this.#unlinkQuietly(tmp, id);
      await this.#unlinkQuietly(final, id);
      throw this.#classify(err);
    }
  }

  #classify(err: unknown): SpoolError {
    if (err instanceof SpoolError) return err;
    if (isNoSpace(err)) return new SpoolError("no_space", "insufficient system storage", { cause: err });
    return new SpoolError("io", `spool write failed: ${errorMessage(err)}`, { cause: err });
  }

  async #unlinkQuietly(path: string, id: string): Promise<void> {
    try {
      await unlink(path);
    } catch (err) {
      if (!isMissing(err)) this.#log.error({ event: "spool.unlink_failed", queueId: id, path, err }, "could not remove a spool file");
    }
  }

  /** The spooled raw message as a stream. */
  openMessage(id: string): ReadStream {
    return createReadStream(this.messagePath(id));
  }

  /** Create (if needed) and return `work/<id>/` for the job's extracted documents. */
  async createWorkDir(id: string): Promise<string> {
    if (!isId(id)) throw new SpoolError("io", `invalid spool id ${JSON.stringify(id)}`);
    const dir = join(this.workDir, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** Remove a job's raw message and working directory. Missing files are fine. */
  async remove(id: string): Promise<void> {
    if (!isId(id)) throw new SpoolError("io", `invalid spool id ${JSON.stringify(id)}`);
    await this.#unlinkQuietly(this.messagePath(id), id);
    await rm(join(this.workDir, id), { recursive: true, force: true });
    this.#log.debug({ event: "spool.removed", queueId: id }, "spool files removed");
  }

  /**
   * Run once at start, before the SMTP server listens: delete `tmp/*`,
   * delete spooled files that have no job row (they were never acknowledged),
   * and mark jobs that still need their message but lost it as failed.
   */
  async recover(store: OutboundStore): Promise<RecoveryReport> {
    let tmpDeleted = 0;
    for (const name of await readdir(this.tmpDir)) {
      await rm(join(this.tmpDir, name), { recursive: true, force: true });
      tmpDeleted++;
    }

    const orphansDeleted: string[] = [];
    for (const name of await readdir(this.msgDir)) {
      const id = name.endsWith(".eml") ? name.slice(0, -4) : "";
      if (!isId(id)) {
        this.#log.warn({ event: "spool.unknown_file", file: name }, "unexpected file in the spool, left alone");
        continue;
      }
      if ((await store.get(id)) === undefined) {
        await this.#unlinkQuietly(join(this.msgDir, name), id);
        orphansDeleted.push(id);
        this.#log.warn({ event: "spool.orphan_deleted", queueId: id }, "spooled message without a job row deleted (it was never acknowledged)");
      }
    }

    const missing: string[] = [];
    for (const state of NEEDS_SPOOL) {
      let after: string | undefined;
      for (;;) {
        const page = await store.list({ state, limit: 500, ...(after !== undefined && { after }) });
        for (const job of page) {
          if (await this.#exists(job.spoolPath)) continue;
          missing.push(job.id);
          this.#log.error({ event: "spool.missing", queueId: job.id, path: job.spoolPath }, "accepted message is missing from the spool");
          await store.transition(job.id, state, "failed", {
            errorCode: "spool_missing",
            errorText: "The message was accepted, but its stored copy was lost before it could be faxed. Please send it again.",
          });
        }
        const last = page.at(-1);
        if (last === undefined || page.length < 500) break;
        after = last.id;
      }
    }

    this.#log.info({ event: "spool.recovered", tmpDeleted, orphans: orphansDeleted.length, missing: missing.length }, "spool recovered");
    return { tmpDeleted, orphansDeleted, missing };
  }

  async #exists(path: string): Promise<boolean> {
    try {
      await stat(path);
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }
}
