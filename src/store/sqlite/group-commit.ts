import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Db } from "./db.js";

/**
 * Group commit for one INSERT statement: every row requested while no commit
 * is running (at least everything in the same event-loop turn) goes into ONE
 * SQLite transaction; with synchronous=FULL that is one fsync for the batch.
 * Each caller's promise settles only after its batch committed.
 *
 * For a database file the commits run on a worker thread with its own
 * connection, so the fsync never blocks the event loop; rows that arrive
 * while a batch is committing form the next batch. For ":memory:" (no second
 * connection can see it) the batch commits inline on the caller's connection.
 */

export type SqlValue = string | number | null;

interface Pending {
  readonly row: SqlValue[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export interface CommitStats {
  /** Transactions committed. */
  batches: number;
  /** Rows inserted. */
  rows: number;
  /** Largest batch so far. */
  largest: number;
}

/** The worker's side, plain CommonJS run with `eval` so it works the same from sources (vitest) and from dist. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");
const stmt = db.prepare(workerData.sql);
const insertAll = db.transaction((rows) => { for (const r of rows) stmt.run(...r); });
parentPort.on("message", (msg) => {
  if (msg.close) { db.close(); parentPort.close(); return; }
  try {
    insertAll(msg.rows);
    parentPort.postMessage({ seq: msg.seq, errors: null });
  } catch (batchErr) {
    // One bad row must not fail the others: each in its own transaction.
    const errors = msg.rows.map((r) => {
      try { stmt.run(...r); return null; } catch (e) { return String(e && e.message || e); }
    });
    parentPort.postMessage({ seq: msg.seq, errors });
  }
});
`;

interface WorkerReply {
  seq: number;
  errors: (string | null)[] | null;
}

export class GroupCommitter {
  readonly stats: CommitStats = { batches: 0, rows: 0, largest: 0 };
  readonly #db: Db;
  readonly #sql: string;
  readonly #worker: Worker | undefined;
  #queue: Pending[] = [];
  #inFlight: Pending[] | undefined;
  #scheduled = false;
  #seq = 0;
  #closed = false;
  #workerError: unknown;
  #idleWaiters: (() => void)[] = [];

  constructor(db: Db, sql: string, opts: { inline?: boolean } = {}) {
    this.#db = db;
    this.#sql = sql;
    if (opts.inline === true || db.memory) return;
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file: db.name, sql } });
    worker.unref();
    worker.on("message", (msg: WorkerReply) => this.#settle(msg));
    worker.on("error", (err) => this.#fail(err));
    worker.on("exit", (code) => {
      if (!this.#closed) this.#fail(new Error(`group commit worker exited with code ${code}`));
    });
    this.#worker = worker;
  }

  /** Insert one row; resolves after the transaction holding it committed. */
  insert(row: SqlValue[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the store is closed"));
    if (this.#workerError !== undefined) return Promise.reject(this.#workerError);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ row, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight !== undefined) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#inFlight !== undefined || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#count(batch.length);
    if (this.#worker === undefined) {
      this.#commitInline(batch);
      return;
    }
    this.#inFlight = batch;
    this.#worker.ref();
    this.#worker.postMessage({ seq: ++this.#seq, rows: batch.map((p) => p.row) });
  }

  #count(n: number): void {
    this.stats.batches++;
    this.stats.rows += n;
    if (n > this.stats.largest) this.stats.largest = n;
  }

  #commitInline(batch: Pending[]): void {
    const stmt = this.#db.prepare<SqlValue[]>(this.#sql);
    try {
      this.#db.transaction(() => {
        for (const p of batch) stmt.run(...p.row);
      })();
    } catch {
      // The batch rolled back; retry each row alone so one bad row fails only its own caller.
      for (const p of batch) {
        try {
          stmt.run(...p.row);
          p.resolve();
        } catch (err) {
          p.reject(err);
        }
      }
      this.#notifyIdle();
      return;
    }
    for (const p of batch) p.resolve();
    this.#notifyIdle();
  }

  #settle(msg: WorkerReply): void {
    const batch = this.#inFlight;
    this.#inFlight = undefined;
    if (batch === undefined || msg.seq !== this.#seq) {
      this.#fail(new Error(`group commit worker answered batch ${msg.seq}, expected ${this.#seq}`));
      return;
    }
    batch.forEach((p, i) => {
      const error = msg.errors?.[i];
      if (error === null || error === undefined) p.resolve();
      else p.reject(new Error(error));
    });
    if (this.#queue.length > 0) this.#flush();
    else {
      this.#worker?.unref();
      this.#notifyIdle();
    }
  }

  #fail(err: unknown): void {
    this.#workerError ??= err;
    const waiting = [...(this.#inFlight ?? []), ...this.#queue];
    this.#inFlight = undefined;
    this.#queue = [];
    for (const p of waiting) p.reject(err);
    this.#notifyIdle();
  }

  /** Commit what is queued, then stop the worker. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (!this.#idle()) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    this.#closed = true;
    const worker = this.#worker;
    if (worker !== undefined && this.#workerError === undefined) {
      const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
      // Keep the process alive until the worker has closed its connection.
      worker.ref();
      worker.postMessage({ close: true });
      await exited;
    }
  }

  #idle(): boolean {
    return this.#inFlight === undefined && this.#queue.length === 0;
  }

  #notifyIdle(): void {
    if (!this.#idle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
