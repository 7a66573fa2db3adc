/**
 * The outbound (email → fax) job store.
 *
 * A job is one accepted SMTP message. Its life is a persisted state machine;
 * every transition is one transaction that compares-and-sets the current
 * state, so two workers can never both move a job, and a transition from the
 * wrong state fails loudly (StateConflictError):
 *
 *     received ──► parsed ──► submitting ──► submitted ──► final ──► notified
 *        │           │  ▲         │              │
 *        │           │  └─────────┘ (attempt failed before RingCentral took it: back to parsed, rescheduled)
 *        ├───────────┴────────────┴──────────────┴──► failed ──► notified
 *        └───────────┴──────────────────────────┴──► cancelled
 *
 * - received:   spooled and fsynced, not yet parsed (the SMTP 250 was sent after this row committed).
 * - parsed:     the fax request (recipients, options, documents) is in `faxRequest`.
 * - submitting: a submission attempt started at `submitStartedAt`. A job found here after a
 *               crash may or may not have reached RingCentral: reconcile, never blindly resubmit
 *               (see findInterruptedSubmissions).
 * - submitted:  RingCentral accepted it; `rcMessageId` is its message id. Status polling patches `status`.
 *               Back to parsed when busy / no-answer recipients are redialled (fax.redial).
 * - final:      every recipient has a final status (Sent/Delivered/SendingFailed/DeliveryFailed).
 * - failed:     permanent failure before/without a fax (`errorCode` + `errorText`); the sender still gets a notice.
 * - notified:   the sender report was sent (`notifiedAt`). Terminal.
 * - cancelled:  withdrawn by an operator. Terminal.
 *
 * A worker claims due jobs (`nextAttemptAt <= now`) with an expiring lease
 * (`leaseUntil`); a transition or a reschedule releases the lease. Every
 * state change is logged with a stable event name `job.<state>`.
 */
import type { Db, Migration } from "./db.js";
import type { Logger } from "../log.js";
import { senderIdentity } from "../policy/identity.js";
import { GroupCommitter, type CommitStats, type SqlValue } from "./group-commit.js";

export const JOB_STATES = ["received", "parsed", "submitting", "submitted", "final", "notified", "failed", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];

/** Which states each state may move to. A state listed as its own successor can be patched in place. */
export const TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  received: ["parsed", "failed", "cancelled"],
  parsed: ["parsed", "submitting", "failed", "cancelled"],
  submitting: ["submitted", "parsed", "failed"],
  // submitted → parsed: a redial of busy / no-answer recipients (src/outbound/redial.ts).
  submitted: ["submitted", "final", "failed", "cancelled", "parsed"],
  final: ["notified"],
  failed: ["notified", "parsed"],
  notified: [],
  cancelled: [],
};

import type { JobRecipient } from "../fax/model.js";
import type { RecipientStatus } from "../fax/status.js";
export type { JobRecipient, RecipientOptions } from "../fax/model.js";

export interface JobClient {
  readonly ip: string;
  /** SMTP AUTH user, when the client authenticated. */
  readonly user?: string;
}

export type { FinalFaxStatus, RecipientStatus } from "../fax/status.js";

/** What a new job needs; the rest is filled in as the job moves. */
export interface NewJob {
  readonly id: string;
  readonly mailFrom: string;
  readonly rcptTo: readonly JobRecipient[];
  readonly spoolPath: string;
  readonly size: number;
  readonly client: JobClient;
  /** The sender identity decided at SMTP time (src/policy/identity.ts); defaults to the one the SMTP user or envelope sender gives. */
  readonly identity?: string;
  /** The one address reports and notices go to; defaults to the envelope sender. */
  readonly reportTo?: string;
  /** Defaults to now. */
  readonly receivedAt?: number;
}

export interface OutboundJob {
  readonly id: string;
  readonly state: JobState;
  /** Envelope sender; "" for the null sender <>. */
  readonly mailFrom: string;
  readonly rcptTo: readonly JobRecipient[];
  readonly messageId: string | null;
  readonly spoolPath: string;
  readonly size: number;
  /** Epoch milliseconds, as are all times here. */
  readonly receivedAt: number;
  readonly client: JobClient;
  /** Who sent it (src/policy/identity.ts): keys quotas, forwarding rights and duplicate suppression. */
  readonly identity: string;
  /** The one address reports and notices go to ("" = none: the null sender). */
  readonly reportTo: string;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly leaseUntil: number | null;
  readonly rcMessageId: string | null;
  /** The RingCentral extension (pool member) that sent the fax; null: the first (or only) one. */
  readonly rcExtensionId: string | null;
  readonly submitStartedAt: number | null;
  /** JSON-serialisable fax request (recipients, options, documents), set when parsed. */
  readonly faxRequest: unknown;
  /** Per-recipient status, set while submitted and when final. */
  readonly status: readonly RecipientStatus[] | null;
  readonly errorCode: string | null;
  readonly errorText: string | null;
  /** The last transient error, kept across reschedules for operators. */
  readonly lastError: string | null;
  readonly notifiedAt: number | null;
  readonly updatedAt: number;
}

/** Fields a transition may set. `null` clears a field. */
export interface JobPatch {
  messageId?: string | null;
  rcMessageId?: string | null;
  rcExtensionId?: string | null;
  submitStartedAt?: number | null;
  faxRequest?: unknown;
  status?: readonly RecipientStatus[] | null;
  errorCode?: string | null;
  errorText?: string | null;
  /** The last transient error; cleared (null) once a later attempt succeeds. */
  lastError?: string | null;
  notifiedAt?: number | null;
  nextAttemptAt?: number;
  /** Keep (or take) a lease through the transition; by default a transition releases it. */
  leaseUntil?: number | null;
  /** Reset the attempt count (an operator's retry starts the retry schedule afresh). */
  attempts?: number;
}

export interface ClaimOptions {
  readonly limit: number;
  readonly leaseMs: number;
  readonly now?: number;
}

export interface RescheduleOptions {
  /** The state the job must be in (compare-and-set). */
  readonly from: JobState;
  /** Move to this state at the same time (e.g. submitting → parsed after a failed attempt). */
  readonly to?: JobState;
  readonly nextAttemptAt: number;
  readonly error: string;
}

export interface DuplicateQuery {
  readonly messageId: string;
  /** Only the same sender's mails are duplicates: whoever learns a Message-ID cannot cancel someone else's fax. */
  readonly identity: string;
  readonly recipients: readonly string[];
  /** Only jobs received at or after this time count. */
  readonly since: number;
  /** The job asking, which is not its own duplicate. */
  readonly excludeId?: string;
}

export interface ListOptions {
  readonly state?: JobState | readonly JobState[];
  readonly limit?: number;
  /** Keyset paging: ids sort by creation time; pass the last id of the previous page. */
  readonly after?: string;
  /** Newest first (the web console); page with `before` = the last id of the previous page. */
  readonly newestFirst?: boolean;
  readonly before?: string;
}

/**
 * The narrow interface workers, the SMTP server and the CLI use. Async so a
 * PostgreSQL implementation can follow with the same shape.
 */
export interface OutboundStore {
  /** Durably record an accepted message; resolves only after the commit. */
  insertReceived(job: NewJob): Promise<OutboundJob>;
  /** Claim due, unleased jobs in the given states with an expiring lease, oldest due first. */
  claimDue(states: readonly JobState[], opts: ClaimOptions): Promise<OutboundJob[]>;
  /** Move a job from `from` (compare-and-set) to `to`, applying `patch`. Throws StateConflictError. */
  transition(id: string, from: JobState, to: JobState, patch?: JobPatch): Promise<OutboundJob>;
  /** attempts+1, next attempt time, last error; releases the lease. Throws StateConflictError. */
  reschedule(id: string, opts: RescheduleOptions): Promise<OutboundJob>;
  /** A live job (not failed/cancelled) with the same Message-ID, sender identity and recipient set. */
  findDuplicate(query: DuplicateQuery): Promise<OutboundJob | undefined>;
  /** The job of this sender identity that sent RingCentral message `rcMessageId` (a forward may resend only such a fax). */
  findSentBy(rcMessageId: string, identity: string): Promise<OutboundJob | undefined>;
  get(id: string): Promise<OutboundJob | undefined>;
  list(opts?: ListOptions): Promise<OutboundJob[]>;
  countByState(): Promise<Record<JobState, number>>;
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

export class StateConflictError extends Error {
  readonly jobId: string;
  readonly expected: JobState;
  /** The state found, or undefined when the job does not exist. */
  readonly actual: JobState | undefined;
  constructor(jobId: string, expected: JobState, actual: JobState | undefined) {
    super(actual === undefined ? `job ${jobId} does not exist` : `job ${jobId} is ${actual}, expected ${expected}`);
    this.name = "StateConflictError";
    this.jobId = jobId;
    this.expected = expected;
    this.actual = actual;
  }
}

export class InvalidTransitionError extends Error {
  constructor(from: JobState, to: JobState) {
    super(`a job cannot move from ${from} to ${to}`);
    this.name = "InvalidTransitionError";
  }
}

export const outboundMigration: Migration = {
  module: "outbound",
  steps: [
    `CREATE TABLE outbound_jobs (
       id TEXT PRIMARY KEY,
       state TEXT NOT NULL CHECK (state IN ('received','parsed','submitting','submitted','final','notified','failed','cancelled')),
       mail_from TEXT NOT NULL,
       rcpt_to TEXT NOT NULL,
       rcpt_key TEXT NOT NULL,
       message_id TEXT,
       spool_path TEXT NOT NULL,
       size INTEGER NOT NULL,
       received_at INTEGER NOT NULL,
       client_ip TEXT NOT NULL,
       client_user TEXT,
       attempts INTEGER NOT NULL DEFAULT 0,
       next_attempt_at INTEGER NOT NULL,
       lease_until INTEGER,
       rc_message_id TEXT,
       submit_started_at INTEGER,
       fax_request TEXT,
       status TEXT,
       error_code TEXT,
       error_text TEXT,
       last_error TEXT,
       notified_at INTEGER,
       updated_at INTEGER NOT NULL
     );
     CREATE INDEX outbound_jobs_due ON outbound_jobs (state, next_attempt_at);
     CREATE INDEX outbound_jobs_message_id ON outbound_jobs (message_id, received_at) WHERE message_id IS NOT NULL;`,
    // Sender identity decided once at SMTP time, and the one address reports go to (issue 8).
    `ALTER TABLE outbound_jobs ADD COLUMN identity TEXT;
     ALTER TABLE outbound_jobs ADD COLUMN report_to TEXT;
     CREATE INDEX outbound_jobs_rc_message_id ON outbound_jobs (rc_message_id) WHERE rc_message_id IS NOT NULL;`,
    // The pool extension that sent the fax (issue 11): polls, cancel and resend go through it.
    `ALTER TABLE outbound_jobs ADD COLUMN rc_extension_id TEXT;`,
  ],
};

interface Row {
  id: string;
  state: JobState;
  mail_from: string;
  rcpt_to: string;
  rcpt_key: string;
  message_id: string | null;
  spool_path: string;
  size: number;
  received_at: number;
  client_ip: string;
  client_user: string | null;
  identity: string | null;
  report_to: string | null;
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
  rc_message_id: string | null;
  rc_extension_id: string | null;
  submit_started_at: number | null;
  fax_request: string | null;
  status: string | null;
  error_code: string | null;
  error_text: string | null;
  last_error: string | null;
  notified_at: number | null;
  updated_at: number;
}

/** The recipient set as one comparable string: sorted, unique E.164 numbers. */
export function recipientKey(e164s: readonly string[]): string {
  return [...new Set(e164s)].sort().join(",");
}

function fromRow(r: Row): OutboundJob {
  return {
    id: r.id,
    state: r.state,
    mailFrom: r.mail_from,
    rcptTo: JSON.parse(r.rcpt_to) as JobRecipient[],
    messageId: r.message_id,
    spoolPath: r.spool_path,
    size: r.size,
    receivedAt: r.received_at,
    client: r.client_user === null ? { ip: r.client_ip } : { ip: r.client_ip, user: r.client_user },
    // Rows from before identities were stored: the identity their SMTP user or envelope sender gives.
    identity: r.identity ?? senderIdentity({ user: r.client_user ?? undefined, mailFrom: r.mail_from }).key,
    reportTo: r.report_to ?? r.mail_from,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    leaseUntil: r.lease_until,
    rcMessageId: r.rc_message_id,
    rcExtensionId: r.rc_extension_id ?? null,
    submitStartedAt: r.submit_started_at,
    faxRequest: r.fax_request === null ? null : (JSON.parse(r.fax_request) as unknown),
    status: r.status === null ? null : (JSON.parse(r.status) as RecipientStatus[]),
    errorCode: r.error_code,
    errorText: r.error_text,
    lastError: r.last_error,
    notifiedAt: r.notified_at,
    updatedAt: r.updated_at,
  };
}

const PATCH_COLUMNS: { readonly [K in keyof JobPatch]-?: { column: string; json: boolean } } = {
  messageId: { column: "message_id", json: false },
  rcMessageId: { column: "rc_message_id", json: false },
  rcExtensionId: { column: "rc_extension_id", json: false },
  submitStartedAt: { column: "submit_started_at", json: false },
  faxRequest: { column: "fax_request", json: true },
  status: { column: "status", json: true },
  errorCode: { column: "error_code", json: false },
  errorText: { column: "error_text", json: false },
  lastError: { column: "last_error", json: false },
  notifiedAt: { column: "notified_at", json: false },
  nextAttemptAt: { column: "next_attempt_at", json: false },
  leaseUntil: { column: "lease_until", json: false },
  attempts: { column: "attempts", json: false },
};

export interface SqliteOutboundStoreOptions {
  readonly logger: Logger;
  /** Clock, for tests. */
  readonly now?: () => number;
  /**
   * Where group commits run: "worker" (default for a database file) commits on
   * a worker thread so the fsync never blocks the event loop; "inline" commits
   * on this connection (always so for ":memory:").
   */
  readonly groupCommit?: "worker" | "inline";
}

const INSERT_SQL = `INSERT INTO outbound_jobs (id, state, mail_from, rcpt_to, rcpt_key, spool_path, size, received_at, client_ip, client_user, identity, report_to, attempts, next_attempt_at, updated_at)
  VALUES (?, 'received', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`;

/**
 * OutboundStore on the SQLite database from openDatabase() (which must have
 * been opened with `outboundMigration`). Inserts use group commit (see
 * ./group-commit.ts): all inserts requested in the same event-loop turn, and
 * those arriving while a commit runs, go into one transaction, so one fsync
 * covers the batch; each caller's promise settles after that commit.
 */
export class SqliteOutboundStore implements OutboundStore {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #committer: GroupCommitter;
  readonly #get;

  constructor(db: Db, opts: SqliteOutboundStoreOptions) {
    this.#db = db;
    this.#log = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#committer = new GroupCommitter(db, INSERT_SQL, { inline: opts.groupCommit === "inline" });
    this.#get = db.prepare<[string], Row>("SELECT * FROM outbound_jobs WHERE id = ?");
  }

  insertReceived(job: NewJob): Promise<OutboundJob> {
    const now = this.#now();
    const receivedAt = job.receivedAt ?? now;
    const rcptJson = JSON.stringify(job.rcptTo);
    const identity = job.identity ?? senderIdentity({ user: job.client.user, mailFrom: job.mailFrom }).key;
    const reportTo = job.reportTo ?? job.mailFrom;
    const params: SqlValue[] = [
      job.id,
      job.mailFrom,
      rcptJson,
      recipientKey(job.rcptTo.map((r) => r.e164)),
      job.spoolPath,
      job.size,
      receivedAt,
      job.client.ip,
      job.client.user ?? null,
      identity,
      reportTo,
      receivedAt,
      now,
    ];
    const full: OutboundJob = {
      id: job.id,
      state: "received",
      mailFrom: job.mailFrom,
      rcptTo: job.rcptTo,
      messageId: null,
      spoolPath: job.spoolPath,
      size: job.size,
      receivedAt,
      client: job.client,
      identity,
      reportTo,
      attempts: 0,
      nextAttemptAt: receivedAt,
      leaseUntil: null,
      rcMessageId: null,
      rcExtensionId: null,
      submitStartedAt: null,
      faxRequest: null,
      status: null,
      errorCode: null,
      errorText: null,
      lastError: null,
      notifiedAt: null,
      updatedAt: now,
    };
    return this.#committer.insert(params).then(() => {
      this.#log.info(
        { event: "job.received", queueId: full.id, from: full.mailFrom, to: full.rcptTo.map((r) => r.e164), size: full.size, client: full.client.ip },
        "job received",
      );
      return full;
    });
  }

  /** Group-commit counters (batches, rows, largest batch), for tests and the benchmark. */
  get commitStats(): Readonly<CommitStats> {
    return this.#committer.stats;
  }

  /** Finish pending inserts and stop the commit worker. Call before closing the database. */
  close(): Promise<void> {
    return this.#committer.close();
  }

  async claimDue(states: readonly JobState[], opts: ClaimOptions): Promise<OutboundJob[]> {
    if (states.length === 0 || opts.limit <= 0) return [];
    const now = opts.now ?? this.#now();
    const placeholders = states.map(() => "?").join(",");
    const select = this.#db.prepare<SqlValue[], Row>(
      `SELECT * FROM outbound_jobs
       WHERE state IN (${placeholders}) AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
       ORDER BY next_attempt_at, id LIMIT ?`,
    );
    const lease = this.#db.prepare<SqlValue[]>("UPDATE outbound_jobs SET lease_until = ? WHERE id = ?");
    const leaseUntil = now + opts.leaseMs;
    return this.#db.transaction(() => {
      const rows = select.all(...states, now, now, opts.limit);
      for (const r of rows) lease.run(leaseUntil, r.id);
      return rows.map((r) => fromRow({ ...r, lease_until: leaseUntil }));
    }).immediate();
  }

  async transition(id: string, from: JobState, to: JobState, patch: JobPatch = {}): Promise<OutboundJob> {
    if (!TRANSITIONS[from].includes(to)) throw new InvalidTransitionError(from, to);
    const sets = ["state = ?", "updated_at = ?"];
    const values: SqlValue[] = [to, this.#now()];
    if (!("leaseUntil" in patch)) sets.push("lease_until = NULL");
    for (const key of Object.keys(patch) as (keyof JobPatch)[]) {
      const spec = PATCH_COLUMNS[key];
      const value = patch[key];
      if (value === undefined) continue;
      sets.push(`${spec.column} = ?`);
      values.push(spec.json ? (value === null ? null : JSON.stringify(value)) : (value as SqlValue));
    }
    const job = this.#casUpdate(id, from, sets.join(", "), values);
    this.#log.info(
      { event: `job.${to}`, queueId: id, from, ...(job.rcMessageId !== null && { rcMessageId: job.rcMessageId }), ...(job.errorCode !== null && to === "failed" && { errorCode: job.errorCode }) },
      `job ${to}`,
    );
    return job;
  }

  async reschedule(id: string, opts: RescheduleOptions): Promise<OutboundJob> {
    const to = opts.to ?? opts.from;
    if (to !== opts.from && !TRANSITIONS[opts.from].includes(to)) throw new InvalidTransitionError(opts.from, to);
    const job = this.#casUpdate(id, opts.from, "state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, lease_until = NULL, updated_at = ?", [
      to,
      opts.nextAttemptAt,
      opts.error,
      this.#now(),
    ]);
    this.#log.info(
      { event: "job.deferred", queueId: id, state: to, attempts: job.attempts, nextAttemptAt: new Date(opts.nextAttemptAt).toISOString(), error: opts.error },
      "job deferred",
    );
    return job;
  }

  #casUpdate(id: string, from: JobState, sets: string, values: SqlValue[]): OutboundJob {
    const update = this.#db.prepare<SqlValue[]>(`UPDATE outbound_jobs SET ${sets} WHERE id = ? AND state = ?`);
    return this.#db.transaction(() => {
      const info = update.run(...values, id, from);
      const row = this.#get.get(id);
      if (info.changes !== 1 || row === undefined) throw new StateConflictError(id, from, row?.state);
      return fromRow(row);
    }).immediate();
  }

  async findDuplicate(q: DuplicateQuery): Promise<OutboundJob | undefined> {
    const row = this.#db
      .prepare<SqlValue[], Row>(
        `SELECT * FROM outbound_jobs
         WHERE message_id = ? AND rcpt_key = ? AND received_at >= ? AND state NOT IN ('failed','cancelled') AND id <> ?
         ORDER BY received_at`,
      )
      .all(q.messageId, recipientKey(q.recipients), q.since, q.excludeId ?? "")
      .map(fromRow)
      .find((j) => j.identity === q.identity);
    return row;
  }

  async findSentBy(rcMessageId: string, identity: string): Promise<OutboundJob | undefined> {
    const rows = this.#db
      .prepare<[string], Row>("SELECT * FROM outbound_jobs WHERE rc_message_id = ? AND state IN ('submitted','final','notified') ORDER BY id")
      .all(rcMessageId);
    return rows.map(fromRow).find((j) => j.identity === identity);
  }

  async get(id: string): Promise<OutboundJob | undefined> {
    const row = this.#get.get(id);
    return row === undefined ? undefined : fromRow(row);
  }

  async list(opts: ListOptions = {}): Promise<OutboundJob[]> {
    const where: string[] = [];
    const values: SqlValue[] = [];
    if (opts.state !== undefined) {
      const states: readonly JobState[] = typeof opts.state === "string" ? [opts.state] : opts.state;
      if (states.length === 0) return [];
      where.push(`state IN (${states.map(() => "?").join(",")})`);
      values.push(...states);
    }
    if (opts.after !== undefined) {
      where.push("id > ?");
      values.push(opts.after);
    }
    if (opts.before !== undefined) {
      where.push("id < ?");
      values.push(opts.before);
    }
    values.push(opts.limit ?? 100);
    const rows = this.#db
      .prepare<SqlValue[], Row>(`SELECT * FROM outbound_jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id${opts.newestFirst === true ? " DESC" : ""} LIMIT ?`)
      .all(...values);
    return rows.map(fromRow);
  }

  async countByState(): Promise<Record<JobState, number>> {
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    const rows = this.#db.prepare<[], { state: JobState; n: number }>("SELECT state, COUNT(*) AS n FROM outbound_jobs GROUP BY state").all();
    for (const r of rows) counts[r.state] = r.n;
    return counts;
  }

  async findInterruptedSubmissions(startedBefore: number): Promise<OutboundJob[]> {
    const rows = this.#db
      .prepare<[number, number], Row>(
        `SELECT * FROM outbound_jobs
         WHERE state = 'submitting' AND (submit_started_at IS NULL OR submit_started_at < ?) AND (lease_until IS NULL OR lease_until <= ?)
         ORDER BY submit_started_at, id`,
      )
      .all(startedBefore, this.#now());
    return rows.map(fromRow);
  }

  async purgeFinished(before: number, limit: number): Promise<string[]> {
    const ids = this.#db.transaction(() => {
      const rows = this.#db
        .prepare<[number, number], { id: string }>(
          "SELECT id FROM outbound_jobs WHERE state IN ('notified', 'cancelled') AND updated_at < ? ORDER BY id LIMIT ?",
        )
        .all(before, limit);
      const del = this.#db.prepare<[string]>("DELETE FROM outbound_jobs WHERE id = ?");
      for (const r of rows) del.run(r.id);
      return rows.map((r) => r.id);
    })();
    if (ids.length > 0) this.#log.info({ event: "job.purged", count: ids.length }, "finished jobs past retention deleted");
    return ids;
  }
}
