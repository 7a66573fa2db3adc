/**
 * The store ports: what the worker, inbound, policy, CLI, doctor, web and ops
 * need from persistence, and nothing of how a backend keeps it. A backend
 * (SQLite in ./sqlite/, PostgreSQL beside it) implements these and is chosen
 * by ./open.ts; the contract test suite (test/store/contract/) runs against
 * every backend.
 *
 * Rules every backend keeps:
 * - Every state change is one transaction that compares-and-sets the state
 *   (StateConflictError when the row moved meanwhile).
 * - Leases are timed by the store's clock (the database's, for a shared
 *   database), and held by the store's `owner`. A store that claimed a row
 *   and lost the lease to another owner since (it expired and was claimed
 *   again) cannot move the row any more: LeaseLostError (outbound) /
 *   InboundStateError (inbound). Operators' changes of rows they did not
 *   claim are compare-and-set only, as before.
 * - Rows hold no absolute paths: documents are keys into the DocumentStore.
 * - Nothing a second instance needs lives in one process's memory.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import type {
  ClaimOptions,
  DuplicateQuery,
  JobPatch,
  JobState,
  ListOptions,
  NewJob,
  OutboundJob,
  RescheduleOptions,
  TransitionOptions,
} from "./outbound.js";
import type { ClaimInboundOptions, InboundFax, InboundRouteResult, InboundState, ListInboundOptions, NewInboundFax, SyncCursor } from "./inbound.js";
import { NamedError } from "../errors.js";

export * from "./outbound.js";
export * from "./inbound.js";

// ------------------------------------------------------------------ outbound

/**
 * The outbound (email → fax) job store. See ./outbound.ts for the state
 * machine. Every method is async so a networked backend fits the same shape.
 */
export interface OutboundStore {
  /** Who this store's claims belong to (unique per store instance; in logs and `leaseOwner`). */
  readonly owner: string;
  /** Durably record an accepted message; resolves only after the commit. */
  insertReceived(job: NewJob): Promise<OutboundJob>;
  /** Claim due, unleased jobs in the given states with an expiring lease (store's clock), oldest due first. */
  claimDue(states: readonly JobState[], opts: ClaimOptions): Promise<OutboundJob[]>;
  /**
   * Extend this store's lease on a job to `leaseMs` from now (store's clock),
   * e.g. every few seconds while a long upload runs. False when the lease is
   * no longer ours (expired and taken, or the job moved on): stop working on it.
   */
  renewLease(id: string, leaseMs: number): Promise<boolean>;
  /**
   * Move a job from `from` (compare-and-set) to `to`, applying `patch`.
   * Throws StateConflictError (LeaseLostError when this store's lease was
   * taken over), InvalidTransitionError, or DuplicateJobError (opts.unlessDuplicate).
   */
  transition(id: string, from: JobState, to: JobState, patch?: JobPatch, opts?: TransitionOptions): Promise<OutboundJob>;
  /** attempts+1, next attempt time, last error; releases the lease. Throws StateConflictError / LeaseLostError. */
  reschedule(id: string, opts: RescheduleOptions): Promise<OutboundJob>;
  /** A live job (not failed/cancelled) with the same Message-ID, sender identity and recipient set. */
  findDuplicate(query: DuplicateQuery): Promise<OutboundJob | undefined>;
  /** The job of this sender identity that sent RingCentral message `rcMessageId` (a forward may resend only such a fax). */
  findSentBy(rcMessageId: string, identity: string): Promise<OutboundJob | undefined>;
  /** The (oldest) job that recorded RingCentral message `rcMessageId`, optionally only in `states`; an index lookup. */
  findByRcMessageId(rcMessageId: string, states?: readonly JobState[]): Promise<OutboundJob | undefined>;
  get(id: string): Promise<OutboundJob | undefined>;
  list(opts?: ListOptions): Promise<OutboundJob[]>;
  /**
   * Every job received after `since` (epoch ms), oldest first, paged inside:
   * what the hourly quotas are rebuilt from at start.
   */
  receivedSince(since: number): AsyncIterable<OutboundJob>;
  countByState(): Promise<Record<JobState, number>>;
  /** receivedAt of the oldest job not yet final (received … submitted), for the queue-age gauge. */
  oldestUnfinishedAt(): Promise<number | undefined>;
  /**
   * Jobs left in `submitting` whose attempt started before `startedBefore` and
   * whose lease (if any) has expired: a crash interrupted them, they need reconciling.
   */
  findInterruptedSubmissions(startedBefore: number): Promise<OutboundJob[]>;
  /** Retention: delete up to `limit` notified/cancelled jobs last changed before `before`; resolves with their ids. */
  purgeFinished(before: number, limit: number): Promise<string[]>;
  /** Finish pending inserts and release resources (before the database closes). */
  close(): Promise<void>;
}

// ------------------------------------------------------------------ inbound

/** Small named values that must survive restarts and be shared by instances (subscription, verification token). */
export interface KeyValueStore {
  getValue(key: string): Promise<string | undefined>;
  setValue(key: string, value: string, now: number): Promise<void>;
  /**
   * Store `value` unless the key already has one; resolves with the value the
   * key holds afterwards (ours, or the one another instance stored first).
   * Instances starting together agree on one value (a generated secret, say).
   */
  setValueIfAbsent(key: string, value: string, now: number): Promise<string>;
  deleteValue(key: string): Promise<void>;
}

/** The inbound (fax → email) store; see ./inbound.ts for the exactly-once rules. */
export interface InboundStore extends KeyValueStore {
  /** Who this store's claims belong to. */
  readonly owner: string;
  getCursor(extension: string): Promise<SyncCursor | undefined>;
  /**
   * In one transaction: store the cursor and insert the faxes not seen before
   * (by extension + RingCentral id). Resolves with the rows actually inserted.
   */
  recordSync(extension: string, cursor: SyncCursor, faxes: readonly NewInboundFax[], now: number): Promise<InboundFax[]>;
  /** Forget the cursor (the next sync is a full one). */
  clearCursor(extension: string): Promise<void>;
  /** Claim due, unleased `discovered` rows with a lease (store's clock), oldest due first. */
  claimDue(opts: ClaimInboundOptions): Promise<InboundFax[]>;
  /** Extend this store's lease on a row; false when it is no longer ours. */
  renewLease(id: string, leaseMs: number): Promise<boolean>;
  /** The earliest next_attempt_at (or lease expiry) among `discovered` rows, for the delivery timer. */
  nextWakeAt(): Promise<number | undefined>;
  /** Throws InboundStateError when the row moved or this store's lease on it was taken over. */
  markDelivered(id: string, route: InboundRouteResult, now: number): Promise<InboundFax>;
  /** attempts+1, next attempt time, last error; releases the lease. */
  defer(id: string, nextAttemptAt: number, error: string, now: number): Promise<InboundFax>;
  /** attempts+1, state dead, last error; releases the lease. */
  markDead(id: string, error: string, now: number): Promise<InboundFax>;
  /** Release a lease without counting an attempt (shutdown). */
  release(id: string, now: number): Promise<void>;
  get(id: string): Promise<InboundFax | undefined>;
  findByRcId(extension: string, rcMessageId: string): Promise<InboundFax | undefined>;
  /** The delivered faxes with this RingCentral message id, on any extension (forwarding rights). */
  findDeliveredByRcId(rcMessageId: string): Promise<InboundFax[]>;
  listInbound(opts?: ListInboundOptions): Promise<InboundFax[]>;
  countByState(): Promise<Record<InboundState, number>>;
  /** Put a delivered or dead fax back into the queue (operator command). Undefined when unknown. */
  redeliver(id: string, now: number): Promise<InboundFax | undefined>;
  /** Retention: delete up to `limit` delivered/dead faxes last changed before `before`; resolves with their ids. */
  purgeFinished(before: number, limit: number): Promise<string[]>;
}

// ------------------------------------------------------------------ quotas

/** One limit a take must fit under: the usage of `key` within the window, plus the take, at most `limit`. */
export interface QuotaLimit {
  readonly key: string;
  readonly limit: number;
}

/** What a take decided: recorded under `id`, or refused by the first limit that did not fit (nothing recorded). */
export type QuotaTake =
  | { readonly ok: true; readonly id: string }
  | { readonly ok: false; readonly key: string; readonly limit: number; readonly freeAt: number };

/** One usage entry of a seed (a job accepted before the ledger existed). */
export interface QuotaEntry {
  readonly keys: readonly string[];
  readonly at: number;
  readonly n: number;
}

/**
 * The hourly quota ledger, shared by every instance (and the CLI) on the same
 * database: usage entries per key, timed in epoch ms by the caller's clock.
 * A take is one atomic operation across instances (SQLite: one immediate
 * transaction; PostgreSQL: one transaction holding a lock per key), so N
 * instances accepting mail at once cannot together exceed a limit.
 */
export interface QuotaStore {
  /**
   * If `n` more fit under every limit (usage after `at - windowMs`), record
   * `n` for every limit's key at `at` and resolve `{ ok, id }`; otherwise
   * record nothing and say which limit refused and when enough frees up.
   * Limits of 0 or less are not checked (their keys are still recorded).
   */
  take(limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): Promise<QuotaTake>;
  /** The same check without recording anything (an early answer; the take at the end decides). */
  check(limits: readonly QuotaLimit[], n: number, at: number, windowMs: number): Promise<QuotaTake>;
  /** Give back what a take recorded (the mail was not recorded after all); unknown ids are fine. */
  release(id: string): Promise<void>;
  /**
   * Once per `scope` for the life of the database: record `entries` (usage
   * learnt from jobs accepted before the ledger existed) and resolve true;
   * false, recording nothing, when the scope was seeded before (by any instance).
   */
  seed(scope: string, entries: readonly QuotaEntry[]): Promise<boolean>;
  /** Retention: delete entries older than `before`; resolves with how many. */
  purge(before: number): Promise<number>;
}

// ------------------------------------------------------------------ web

export type IdempotencyClaim =
  | { readonly kind: "new" }
  | { readonly kind: "replay"; readonly status: number; readonly response: string }
  /** Claimed but not answered: by a request still running, or by a process that stopped mid-request. */
  | { readonly kind: "in_progress"; readonly jobId: string }
  | { readonly kind: "mismatch" };

/** How long an Idempotency-Key is remembered (src/tunables.ts). */
export { IDEMPOTENCY_TTL_MS } from "../tunables.js";

/** The form a session's `credential` is kept in (SHA-256 hex), to compare with sessionUser's. */
export function credentialDigest(credential: string): string {
  return createHash("sha256").update(credential).digest("hex");
}

/**
 * What the web console and the API keep: sign-in sessions, idempotency
 * records of API submissions, spent one-time links. Secrets are stored only
 * as SHA-256 hashes (the backend hashes; callers pass the plain values).
 */
export interface WebStore {
  /** A new session; resolves with the cookie value (never stored as such). */
  createSession(username: string, credential: string, ttlMs: number): Promise<string>;
  sessionUser(id: string): Promise<{ username: string; credential: string } | undefined>;
  endSession(id: string): Promise<void>;
  /** Claim an Idempotency-Key for a body, atomically (two concurrent requests cannot both see "new"). */
  claimIdempotency(token: string, key: string, bodyHash: string, jobId: string): Promise<IdempotencyClaim>;
  /** Take over a key left unanswered by a stopped process whose job was never recorded. */
  reclaimIdempotency(token: string, key: string, jobId: string): Promise<void>;
  /** Record the answer to a claimed key (response undefined frees the key). */
  settleIdempotency(token: string, key: string, status: number, response: string | undefined): Promise<void>;
  /** Spend a one-time link; false when it was spent before. */
  spendLink(link: string): Promise<boolean>;
}

// ------------------------------------------------------------------ documents

export type DocumentErrorKind = "too_big" | "no_space" | "aborted" | "io" | "missing" | "invalid_key";

export class DocumentError extends NamedError {
  readonly kind: DocumentErrorKind;
  constructor(kind: DocumentErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
  }
}

/**
 * Document keys: relative, slash-separated names, e.g. `msg/<jobId>.eml`
 * (the raw mail) and `work/<jobId>/<file>` (a job's extracted documents; file
 * names keep the sender's letters). Never an absolute path: no leading "/",
 * no "." or ".." part, no empty part, no backslash or control character.
 */
export function isDocumentKey(key: string): boolean {
  if (key.length === 0 || key.length > 1024) return false;
  return key.split("/").every((part) => part !== "" && part !== "." && part !== ".." && !/[\\\p{Cc}]/u.test(part));
}

/** The raw mail of a job. */
export function mailKey(jobId: string): string {
  return `msg/${jobId}.eml`;
}

/** The folder of a job's extracted documents (a key prefix). */
export function workPrefix(jobId: string): string {
  return `work/${jobId}`;
}

/** The key of a document `name` extracted for a job (a file written into its workDir under that name). */
export function workKey(jobId: string, name: string): string {
  return `${workPrefix(jobId)}/${name}`;
}

export interface PutOptions {
  /** Refuse (DocumentError "too_big") beyond this many bytes; the input is still read to its end. */
  readonly maxBytes?: number;
}

/**
 * Where mail and documents live: every instance must read every job's
 * documents. Streamed both ways (never a whole document in memory). A `put`
 * resolves once the bytes are durable; the job row naming the key is written
 * after it, and a key with no row is garbage (the spool's recovery and the
 * janitor remove it).
 */
export interface DocumentStore {
  /** Stream `body` in under `key` (replacing nothing: a key is written once). Rejects with DocumentError. */
  put(key: string, body: Readable, opts?: PutOptions): Promise<{ readonly key: string; readonly size: number }>;
  /** The bytes of `key`; DocumentError "missing" when there is none. */
  open(key: string): Promise<Readable>;
  /** Size in bytes, or undefined when missing. */
  stat(key: string): Promise<{ readonly size: number } | undefined>;
  /**
   * A local file holding `key`'s bytes, for libraries that need a path (PDF
   * page counts, preflight, multipart upload). The file backend returns the
   * document itself; a database backend streams a temporary copy, which
   * `done()` removes. Never write to it.
   */
  localFile(key: string): Promise<{ readonly path: string; done(): Promise<void> }>;
  /**
   * A local directory to extract a job's documents into (created if needed).
   * The file backend's is the folder of `workPrefix(jobId)` itself, so a file
   * `<name>` written there is the key `work/<jobId>/<name>` at once; a
   * database backend returns a scratch directory and stores what it holds
   * under those keys before the job row names them.
   */
  workDir(jobId: string): Promise<string>;
  /**
   * Make the files extracted into `workDir(jobId)` durable under their keys
   * (`workKey(jobId, name)`), before a job row names them. The file backend's folder already is the store (it
   * fsyncs the files); a database backend streams each in and releases the
   * scratch directory. Rejects with DocumentError.
   */
  storeWorkDir(jobId: string): Promise<void>;
  /** Remove `key`, or every key under `key/` when it is a prefix. Missing is fine. */
  remove(keyOrPrefix: string): Promise<void>;
  /**
   * Delete partial writes left by a process that is gone (the file backend's
   * tmp/); resolves with how many. Only at start, by the daemon that owns the
   * documents; a transactional backend has none and resolves 0.
   */
  sweepPartial(): Promise<number>;
  /** The names directly under a prefix ("msg" → ["<id>.eml", …]; "work" → ["<id>", …]), sorted; [] when none. */
  list(prefix: string): Promise<string[]>;
}

// ------------------------------------------------------------------ the bundle

export interface StoreHealth {
  /** Resolves when the backend answers a trivial query; rejects with the reason. */
  ping(): Promise<void>;
  /** A human description for logs and doctor ("sqlite /data/faxbridge.db", "postgres db@host"), without secrets. */
  readonly description: string;
}

/** Released leases, per store. */
export interface ReleasedLeases {
  readonly outbound: number;
  readonly inbound: number;
}

/** Everything a process needs from persistence, opened by openStores (./open.ts). */
export interface Stores extends StoreHealth {
  readonly backend: "sqlite" | "postgres";
  readonly outbound: OutboundStore;
  readonly inbound: InboundStore;
  readonly web: WebStore;
  readonly documents: DocumentStore;
  /** The hourly quota ledger (fax, client, page quotas, notice rate limits). */
  readonly quota: QuotaStore;
  /** Leases of processes that are gone, released at open (daemon role); zeros otherwise. */
  readonly releasedLeases: ReleasedLeases;
  /** Close everything (pending inserts first); idempotent. */
  close(): Promise<void>;
}
