import { createReadStream, type ReadStream } from "node:fs";
import { mkdir, readdir, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { OutboundStore } from "../store/outbound.js";
import { errorMessage } from "../errors.js";
import { isId } from "../util/ids.js";
import { SPOOL_FREE_SLOTS, SPOOL_WRITER_THREADS, SPOOL_WRITE_CHUNK_BYTES } from "../tunables.js";

/**
 * The durable spool for raw accepted messages, under `<dataDir>/spool/`:
 *
 *     tmp/<id>        being received (deleted at start: never acknowledged)
 *     msg/<id>.eml    received in full, renamed, then fsynced and directory fsynced
 *     work/<id>/      per-job working directory (extracted documents)
 *
 * A message is durable when `receive()` resolves; only then may the job row
 * be inserted, and only after that commit may the client get its 250. The
 * job row is what makes a spooled file count: a file in msg/ without one was
 * never acknowledged, and recover() deletes it.
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
  /** Writer threads, started as concurrent messages need them (default 4). */
  readonly writerThreads?: number;
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
const WRITE_CHUNK_BYTES = SPOOL_WRITE_CHUNK_BYTES;
const DEFAULT_WRITER_THREADS = SPOOL_WRITER_THREADS;
/** States in which a job still needs its raw message to make progress. */
const NEEDS_SPOOL = ["received", "parsed"] as const;

function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

/**
 * The writer threads' side, plain CommonJS run with `eval` so it works the
 * same from sources (vitest) and from dist. Each job is one message: the
 * first request opens `tmp/<id>` (wx, 0600), every request appends its
 * bytes, the last one fsyncs, closes, renames into `msg/` and fsyncs the
 * directory. A job that fails is cleaned up here (file closed, tmp and final
 * unlinked) before the error is answered.
 *
 * Directory fsyncs are coalesced across writer threads through shared
 * counters: [0] a leader lock, [1] syncs started, [2] syncs completed,
 * [3] the last sync that failed. A rename is durable once a directory fsync
 * that *started* after it (started > the value read after the rename) has
 * completed; whoever finds no sync running becomes the leader and runs one
 * for everybody waiting.
 */
const WRITER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const shared = new Int32Array(workerData.shared);
const dirFd = fs.openSync(workerData.msgDir, "r");
const jobs = new Map();
const errOf = (e) => ({ code: e && typeof e.code === "string" ? e.code : undefined, message: String((e && e.message) || e) });
function unlinkQuiet(path, problems) {
  try { fs.unlinkSync(path); } catch (e) { if (!e || e.code !== "ENOENT") problems.push({ path, message: errOf(e).message }); }
}
function cleanup(job, problems) {
  if (job.fd >= 0) { try { fs.closeSync(job.fd); } catch (e) { problems.push({ path: job.tmp, message: errOf(e).message }); } job.fd = -1; }
  if (job.opened) unlinkQuiet(job.tmp, problems);
  if (job.renamed) unlinkQuiet(job.final, problems);
}
function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}
function syncDir() {
  const need = Atomics.load(shared, 1) + 1;
  while (Atomics.load(shared, 2) < need) {
    if (Atomics.compareExchange(shared, 0, 0, 1) === 0) {
      const gen = Atomics.add(shared, 1, 1) + 1;
      let failed;
      try { fs.fsyncSync(dirFd); } catch (e) { failed = e; Atomics.store(shared, 3, gen); }
      Atomics.store(shared, 2, gen);
      Atomics.store(shared, 0, 0);
      Atomics.notify(shared, 2);
      if (failed) throw failed;
    } else {
      const done = Atomics.load(shared, 2);
      if (done < need) Atomics.wait(shared, 2, done, 100);
    }
  }
  if (Atomics.load(shared, 3) >= need) throw Object.assign(new Error("directory fsync failed"), { code: "EIO" });
}
parentPort.on("message", (m) => {
  if (m.close) { fs.closeSync(dirFd); parentPort.close(); return; }
  let job = jobs.get(m.job);
  if (job === undefined) {
    job = { fd: -1, tmp: m.tmp, final: m.final, opened: false, renamed: false };
    jobs.set(m.job, job);
  }
  if (m.abort) {
    const problems = [];
    cleanup(job, problems);
    jobs.delete(m.job);
    parentPort.postMessage({ job: m.job, problems });
    return;
  }
  try {
    if (!job.opened) { job.fd = fs.openSync(job.tmp, "wx", 0o600); job.opened = true; }
    if (m.buf) writeAll(job.fd, m.buf);
    if (m.slot) writeAll(job.fd, new Uint8Array(m.slot, 0, m.length));
    if (m.last) {
      // Rename first, then fsync: the file's fsync commits the journal that
      // holds the rename, so the directory fsync after it has little left to
      // do. Safe because the job row, committed only after both fsyncs, is
      // what makes a spooled file count: a crash before that leaves a file
      // without a row, which recover() deletes (it was never acknowledged).
      fs.renameSync(job.tmp, job.final);
      job.opened = false;
      job.renamed = true;
      fs.fsyncSync(job.fd);
      fs.closeSync(job.fd);
      job.fd = -1;
      syncDir();
      jobs.delete(m.job);
    }
    parentPort.postMessage({ job: m.job });
  } catch (e) {
    const problems = [];
    cleanup(job, problems);
    jobs.delete(m.job);
    parentPort.postMessage({ job: m.job, error: errOf(e), problems });
  }
});
`;

type WriterRequest =
  | {
      readonly job: number;
      readonly tmp: string;
      readonly final: string;
      /** The bytes to append: either a buffer moved to the thread, or the first `length` bytes of a shared slot. */
      readonly buf: Buffer | undefined;
      readonly slot?: SharedArrayBuffer;
      readonly length?: number;
      readonly last: boolean;
    }
  | { readonly job: number; readonly abort: true };

interface WriterReply {
  readonly job: number;
  readonly error?: { readonly code?: string; readonly message: string };
  /** Files a failed or aborted job could not close or remove. */
  readonly problems?: readonly { readonly path: string; readonly message: string }[];
}

interface WriterThread {
  readonly worker: Worker;
  /** Jobs (messages) this thread holds open. */
  active: number;
  /** Exited or crashed: requests to it fail at once. */
  dead: boolean;
}

/** One message being written by one writer thread; one request in flight at a time. */
class WriteJob {
  readonly #pool: WriterPool;
  readonly #thread: WriterThread;
  readonly #job: number;
  readonly #tmp: string;
  readonly #final: string;
  #sent = false;
  #released = false;

  constructor(pool: WriterPool, thread: WriterThread, job: number, tmp: string, final: string) {
    this.#pool = pool;
    this.#thread = thread;
    this.#job = job;
    this.#tmp = tmp;
    this.#final = final;
  }

  /** Append `chunks`; with `last`, resolve only once the file and its rename are durable. */
  async write(chunks: readonly Buffer[], last: boolean): Promise<WriterReply> {
    this.#sent = true;
    const head = { job: this.#job, tmp: this.#tmp, final: this.#final, last };
    let length = 0;
    for (const c of chunks) length += c.length;
    if (length === 0) return this.#pool.request(this.#thread, { ...head, buf: undefined }, []);
    const slot = this.#pool.takeSlot(length);
    if (slot === undefined) {
      // Larger than a slot: one buffer of its own, moved (not copied) to the thread.
      const buf = Buffer.allocUnsafeSlow(length);
      copyChunks(chunks, buf);
      const transfer = buf.buffer instanceof ArrayBuffer ? [buf.buffer] : [];
      return this.#pool.request(this.#thread, { ...head, buf }, transfer);
    }
    copyChunks(chunks, Buffer.from(slot, 0, length));
    try {
      return await this.#pool.request(this.#thread, { ...head, buf: undefined, slot, length }, []);
    } finally {
      // The thread answered, so it is done reading the slot.
      this.#pool.giveSlot(slot);
    }
  }

  /** Close and remove whatever this job wrote; resolves when it is gone. */
  abort(): Promise<WriterReply | undefined> {
    if (!this.#sent) return Promise.resolve(undefined);
    return this.#pool.request(this.#thread, { job: this.#job, abort: true }, []);
  }

  /** The message is done with (durable, or failed and cleaned up): free its place on the thread. Once. */
  finished(): void {
    if (this.#released) return;
    this.#released = true;
    this.#pool.release(this.#thread);
  }
}

function copyChunks(chunks: readonly Buffer[], into: Buffer): void {
  let at = 0;
  for (const c of chunks) at += c.copy(into, at);
}

/** Shared buffers that carry message bytes to the writer threads without allocating per message. */
const SLOT_BYTES = WRITE_CHUNK_BYTES + 128 * 1024;
const MAX_FREE_SLOTS = SPOOL_FREE_SLOTS;

/**
 * Writer threads doing each message's open/write/fsync/close/rename/dir-fsync
 * with synchronous calls off the event loop: one round trip per message
 * instead of six threadpool requests, and directory fsyncs shared by every
 * rename that precedes them. Threads start lazily, up to `size`, and are
 * unref'd while idle.
 */
class WriterPool {
  readonly #size: number;
  readonly #msgDir: string;
  readonly #shared = new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT);
  readonly #threads: WriterThread[] = [];
  /** Requests in flight, by job: one at a time per job. */
  readonly #pending = new Map<number, { thread: WriterThread; resolve: (r: WriterReply) => void; reject: (e: unknown) => void }>();
  readonly #freeSlots: SharedArrayBuffer[] = [];
  #seq = 0;

  constructor(msgDir: string, size: number) {
    this.#msgDir = msgDir;
    this.#size = size;
  }

  begin(tmp: string, final: string): WriteJob {
    const thread = this.#pick();
    thread.active++;
    if (thread.active === 1) thread.worker.ref();
    return new WriteJob(this, thread, ++this.#seq, tmp, final);
  }

  #pick(): WriterThread {
    let best: WriterThread | undefined;
    for (const t of this.#threads) if (best === undefined || t.active < best.active) best = t;
    if (best !== undefined && (best.active === 0 || this.#threads.length >= this.#size)) return best;
    // Every thread is busy and there is room for one more.
    return this.#spawn();
  }

  #spawn(): WriterThread {
    const worker = new Worker(WRITER_SOURCE, { eval: true, workerData: { shared: this.#shared, msgDir: this.#msgDir } });
    const thread: WriterThread = { worker, active: 0, dead: false };
    worker.unref();
    worker.on("message", (reply: WriterReply) => {
      const p = this.#pending.get(reply.job);
      this.#pending.delete(reply.job);
      p?.resolve(reply);
    });
    const fail = (err: unknown): void => {
      thread.dead = true;
      const i = this.#threads.indexOf(thread);
      if (i >= 0) this.#threads.splice(i, 1);
      // Every job of this thread is lost; their callers answer 451.
      for (const [job, p] of this.#pending) {
        if (p.thread !== thread) continue;
        this.#pending.delete(job);
        p.reject(err);
      }
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`spool writer thread exited with code ${code}`)));
    this.#threads.push(thread);
    return thread;
  }

  request(thread: WriterThread, msg: WriterRequest, transfer: ArrayBuffer[]): Promise<WriterReply> {
    if (thread.dead) return Promise.reject(new Error("spool writer thread is gone"));
    return new Promise<WriterReply>((resolve, reject) => {
      this.#pending.set(msg.job, { thread, resolve, reject });
      thread.worker.postMessage(msg, transfer);
    });
  }

  /** A shared buffer for `length` bytes, or undefined when the bytes do not fit in one. */
  takeSlot(length: number): SharedArrayBuffer | undefined {
    if (length > SLOT_BYTES) return undefined;
    return this.#freeSlots.pop() ?? new SharedArrayBuffer(SLOT_BYTES);
  }

  giveSlot(slot: SharedArrayBuffer): void {
    if (this.#freeSlots.length < MAX_FREE_SLOTS) this.#freeSlots.push(slot);
  }

  release(thread: WriterThread): void {
    thread.active--;
    if (thread.active === 0) thread.worker.unref();
  }

  async close(): Promise<void> {
    const threads = this.#threads.splice(0);
    await Promise.all(
      threads.map(async (t) => {
        const exited = new Promise<void>((resolve) => t.worker.once("exit", () => resolve()));
        t.worker.ref();
        t.worker.postMessage({ close: true });
        await exited;
      }),
    );
  }
}

export class Spool {
  readonly root: string;
  readonly tmpDir: string;
  readonly msgDir: string;
  readonly workDir: string;
  readonly #log: Logger;
  readonly #writers: WriterPool;

  private constructor(root: string, log: Logger, writers: number) {
    this.root = root;
    this.tmpDir = join(root, "tmp");
    this.msgDir = join(root, "msg");
    this.workDir = join(root, "work");
    this.#log = log;
    this.#writers = new WriterPool(this.msgDir, writers);
  }

  /** Create the spool directories (mode 0700). Writer threads start with the first message. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const root = join(opts.dataDir, "spool");
    for (const d of [root, join(root, "tmp"), join(root, "msg"), join(root, "work")]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
    }
    return new Spool(root, opts.logger.child({ component: "spool" }), opts.writerThreads ?? DEFAULT_WRITER_THREADS);
  }

  /** Stop the writer threads. Call after the SMTP server closed (no message in flight). */
  async close(): Promise<void> {
    await this.#writers.close();
  }

  messagePath(id: string): string {
    return join(this.msgDir, `${id}.eml`);
  }

  /**
   * Stream a message into the spool: `tmp/<id>` (wx, 0600), byte counter,
   * fsync, close, rename to `msg/<id>.eml`, fsync the directory, all on a
   * writer thread. Always reads the input to its end, even on failure, so
   * the SMTP session can answer. Rejects with a SpoolError.
   */
  async receive(id: string, input: MessageStream, maxBytes: number): Promise<SpooledMessage> {
    if (!isId(id)) throw new SpoolError("io", `invalid spool id ${JSON.stringify(id)}`);
    const final = this.messagePath(id);
    const job = this.#writers.begin(join(this.tmpDir, id), final);
    let failure: unknown;
    let size = 0;
    let chunks: Buffer[] = [];
    let buffered = 0;
    let writing: Promise<void> = Promise.resolve();
    const check = (r: WriterReply): void => {
      if (r.error !== undefined) failure ??= Object.assign(new Error(r.error.message), { code: r.error.code });
      this.#logProblems(id, r);
    };

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
          // Large message: hand this part to the writer thread, read on once it is written.
          const out = chunks;
          chunks = [];
          buffered = 0;
          input.pause();
          writing = writing
            .then(async () => {
              if (failure === undefined) check(await job.write(out, false));
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
    try {
      if (failure === undefined) check(await job.write(chunks, true));
      chunks = [];
    } catch (err) {
      failure ??= err;
    }
    if (failure === undefined) {
      job.finished();
      return { path: final, size };
    }
    // The writer thread cleaned up after its own errors; after ours (too big, aborted) it removes what it wrote.
    try {
      const r = await job.abort();
      if (r !== undefined) this.#logProblems(id, r);
    } catch (err) {
      this.#log.error({ event: "spool.unlink_failed", queueId: id, err }, "could not remove a partial spool file");
    } finally {
      job.finished();
    }
    throw this.#classify(failure);
  }

  #logProblems(id: string, r: WriterReply): void {
    for (const p of r.problems ?? []) {
      this.#log.error({ event: "spool.unlink_failed", queueId: id, path: p.path, err: p.message }, "could not remove a spool file");
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
