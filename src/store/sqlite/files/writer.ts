import { Worker } from "node:worker_threads";

/**
 * Writer threads for the file document store: each document's
 * open/write/fsync/close/rename/dir-fsync with synchronous calls off the
 * event loop, one round trip per document instead of six threadpool
 * requests, and directory fsyncs shared by every rename that precedes them.
 * (Moved from src/spool/spool.ts.)
 */

/** Below this many buffered bytes a document is written in one go at its end. */
export const WRITE_CHUNK_BYTES = 256 * 1024;

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

export interface WriterReply {
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
export class WriteJob {
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
const MAX_FREE_SLOTS = 16;

/**
 * Writer threads doing each message's open/write/fsync/close/rename/dir-fsync
 * with synchronous calls off the event loop: one round trip per message
 * instead of six threadpool requests, and directory fsyncs shared by every
 * rename that precedes them. Threads start lazily, up to `size`, and are
 * unref'd while idle.
 */
export class WriterPool {
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

