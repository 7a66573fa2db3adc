import type { Readable } from "node:stream";
import type { Logger } from "../log.js";
import { DocumentError, mailKey, workPrefix, type DocumentStore, type OutboundStore } from "../store/ports.js";
import { isId } from "../util/ids.js";
import { NamedError } from "../errors.js";

/**
 * The spool: accepted raw messages and a job's extracted documents, kept in
 * the document store (src/store/ports.ts; the SQLite backend keeps them as
 * files under `<dataDir>/spool/`):
 *
 *     msg/<id>.eml    the raw message, durable before its job row is written
 *     work/<id>/      the job's extracted documents
 *
 * A message is durable when `receive()` resolves; only then may the job row
 * be inserted, and only after that commit may the client get its 250. The
 * job row is what makes a spooled message count: one without a row was
 * never acknowledged, and recover() deletes it.
 */

export type SpoolErrorKind = "too_big" | "no_space" | "aborted" | "io";

export class SpoolError extends NamedError {
  readonly kind: SpoolErrorKind;
  constructor(kind: SpoolErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
  }
}

/** A readable the SMTP server hands us; smtp-server sets `sizeExceeded` when the advertised SIZE is passed. */
export type MessageStream = Readable & { sizeExceeded?: boolean };

export interface SpoolOptions {
  readonly documents: DocumentStore;
  readonly logger: Logger;
}

/** A spooled message; its key is mailKey(id) (src/store/ports.ts). */
export interface SpooledMessage {
  /** A local file with the message, for header checks at SMTP time; valid until `release()`. */
  readonly path: string;
  readonly size: number;
  /**
   * Give the local file back (a database backend's temporary copy is
   * removed; the stored message stays). Call it on every path once the
   * checks are done; idempotent, never rejects.
   */
  release(): Promise<void>;
}

/** A spooled message's local file, given back once (idempotent). */
class LocalMessage implements SpooledMessage {
  readonly path: string;
  readonly size: number;
  readonly #done: () => Promise<void>;
  #released: Promise<void> | undefined;

  constructor(path: string, size: number, done: () => Promise<void>) {
    this.path = path;
    this.size = size;
    this.#done = done;
  }

  release(): Promise<void> {
    this.#released ??= this.#done();
    return this.#released;
  }
}

export interface RecoveryReport {
  /** Partial writes of a process that is gone that were deleted. */
  readonly tmpDeleted: number;
  /** Spooled messages without a job row (never acknowledged) that were deleted. */
  readonly orphansDeleted: string[];
  /** Jobs whose spooled message was missing; they were marked failed. */
  readonly missing: string[];
}

/** States in which a job still needs its raw message to make progress. */
const NEEDS_SPOOL = ["received", "parsed"] as const;

function checkId(id: string): void {
  if (!isId(id)) throw new SpoolError("io", `invalid spool id ${JSON.stringify(id)}`);
}

export class Spool {
  readonly documents: DocumentStore;
  readonly #log: Logger;

  constructor(opts: SpoolOptions) {
    this.documents = opts.documents;
    this.#log = opts.logger.child({ component: "spool" });
  }

  /**
   * Stream a message into the spool (durable when this resolves). Always
   * reads the input to its end, even on failure, so the SMTP session can
   * answer. Rejects with a SpoolError.
   */
  async receive(id: string, input: MessageStream, maxBytes: number): Promise<SpooledMessage> {
    checkId(id);
    try {
      const { key, size } = await this.documents.put(mailKey(id), input, { maxBytes });
      let local;
      try {
        local = await this.documents.localFile(key);
      } catch (err) {
        // Stored but unreadable: no job row will name it, so it goes now.
        await this.documents.remove(key).catch((e: unknown) => this.#log.error({ event: "spool.remove_failed", queueId: id, err: e }, "could not remove a spooled message"));
        throw err;
      }
      return new LocalMessage(local.path, size, () =>
        local.done().catch((err: unknown) => this.#log.warn({ event: "documents.release_failed", queueId: id, err }, "could not remove a temporary copy of a spooled message")),
      );
    } catch (err) {
      if (!(err instanceof DocumentError)) throw new SpoolError("io", `spool write failed: ${String(err)}`, { cause: err });
      const kind: SpoolErrorKind = err.kind === "too_big" || err.kind === "no_space" || err.kind === "aborted" ? err.kind : "io";
      throw new SpoolError(kind, err.message, { cause: err });
    }
  }

  /** The spooled raw message as a stream. */
  openMessage(id: string): Promise<Readable> {
    checkId(id);
    return this.documents.open(mailKey(id));
  }

  /** Run `fn` with a local file holding a document (the raw message: `job.mailKey`), for code that reads files. */
  async withLocalFile<T>(key: string, fn: (path: string) => Promise<T>): Promise<T> {
    const local = await this.documents.localFile(key);
    try {
      return await fn(local.path);
    } finally {
      await local.done();
    }
  }

  /** Create (if needed) and return the local directory for the job's extracted documents. */
  async createWorkDir(id: string): Promise<string> {
    checkId(id);
    return this.documents.workDir(id);
  }

  /** The job's document directory, emptied first (a parse starts afresh). */
  async freshWorkDir(id: string): Promise<string> {
    checkId(id);
    await this.documents.remove(workPrefix(id));
    return this.documents.workDir(id);
  }

  /** Remove a job's raw message and extracted documents. Missing ones are fine. */
  async remove(id: string): Promise<void> {
    checkId(id);
    await this.documents.remove(mailKey(id));
    await this.documents.remove(workPrefix(id));
    this.#log.debug({ event: "spool.removed", queueId: id }, "spool files removed");
  }

  /** Ids of every job that has something in the spool (raw message or documents), for the janitor. */
  async jobIds(): Promise<string[]> {
    const ids = new Set<string>();
    for (const f of await this.documents.list("msg")) if (f.endsWith(".eml")) ids.add(f.slice(0, -4));
    for (const d of await this.documents.list("work")) ids.add(d);
    return [...ids].filter(isId).sort();
  }

  /**
   * Run once at start, before the SMTP server listens: delete partial
   * writes, delete spooled
   * messages that have no job row (they were never acknowledged), and mark
   * jobs that still need their message but lost it as failed.
   */
  async recover(store: OutboundStore): Promise<RecoveryReport> {
    const tmpDeleted = await this.documents.sweepPartial();
    const orphansDeleted: string[] = [];
    for (const name of await this.documents.list("msg")) {
      const id = name.endsWith(".eml") ? name.slice(0, -4) : "";
      if (!isId(id)) {
        this.#log.warn({ event: "spool.unknown_file", file: name }, "unexpected file in the spool, left alone");
        continue;
      }
      if ((await store.get(id)) === undefined) {
        await this.documents.remove(mailKey(id));
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
          if ((await this.documents.stat(job.mailKey)) !== undefined) continue;
          missing.push(job.id);
          this.#log.error({ event: "spool.missing", queueId: job.id, key: job.mailKey }, "accepted message is missing from the spool");
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
}
