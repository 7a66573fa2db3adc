/**
 * OutboundStore (src/store/ports.ts) on SQLite. The state machine and the
 * job model are in ../outbound.ts; this is how SQLite keeps them.
 *
 * Fencing: claimDue records this store's owner with the lease, timed by the
 * store's clock. A store remembers which jobs it holds; moving one of them
 * after another owner took it over (the lease expired and it was claimed
 * again) is refused with LeaseLostError. Changes of jobs this store did not
 * claim (operator commands) are compare-and-set on the state, as before.
 */
import { newOwnerId } from "../owner.js";
import type { Logger } from "../../log.js";
import { senderIdentity } from "../../policy/identity.js";
import {
  DuplicateJobError,
  InvalidTransitionError,
  JOB_STATES,
  LeaseLostError,
  StateConflictError,
  TRANSITIONS,
  recipientKey,
  type ClaimOptions,
  type DuplicateQuery,
  type JobPatch,
  type JobState,
  type ListOptions,
  type NewJob,
  type OutboundJob,
  type OutboundStore,
  type RescheduleOptions,
  type TransitionOptions,
} from "../ports.js";
import { logDeferred, logTransition, outboundFromRow, patchAssignments, rescheduleTarget, type OutboundRow } from "../rows/outbound.js";
import type { Db, Migration } from "./db.js";
import { GroupCommitter, type CommitStats, type SqlValue } from "./group-commit.js";

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
    // Store ports (issue 10): rows name the raw mail by its document key, not by an absolute path
    // (the spool only ever wrote <dataDir>/spool/msg/<id>.eml, which is the key msg/<id>.eml);
    // leases record their owner; quotas are rebuilt by received_at.
    `ALTER TABLE outbound_jobs ADD COLUMN mail_key TEXT;
     UPDATE outbound_jobs SET mail_key = 'msg/' || id || '.eml';
     ALTER TABLE outbound_jobs DROP COLUMN spool_path;
     ALTER TABLE outbound_jobs ADD COLUMN lease_owner TEXT;
     CREATE INDEX outbound_jobs_received_at ON outbound_jobs (received_at);`,
    // Document keys (issue 10/11): the job data named each extracted document by its absolute path,
    // always <dataDir>/spool/work/<id>/<file>; it becomes the key work/<id>/<file> (the file stays where it is).
    `UPDATE outbound_jobs SET fax_request = json_set(fax_request, '$.documents', json((
       SELECT json_group_array(CASE
         WHEN json_type(d.value, '$.path') = 'text' AND json_type(d.value, '$.key') IS NULL
         THEN json_set(json_remove(d.value, '$.path'), '$.key',
                'work/' || outbound_jobs.id || '/' || substr(json_extract(d.value, '$.path'), length(rtrim(json_extract(d.value, '$.path'), replace(json_extract(d.value, '$.path'), '/', ''))) + 1))
         ELSE json(d.value) END)
       FROM json_each(fax_request, '$.documents') AS d)))
     WHERE json_valid(fax_request) AND json_type(fax_request, '$.documents') = 'array' AND json_array_length(fax_request, '$.documents') > 0;`,
  ],
};

export interface SqliteOutboundStoreOptions {
  readonly logger: Logger;
  /** The store's clock (leases, updated_at), for tests. */
  readonly now?: () => number;
  /** Who this store's leases belong to; default a fresh random id. */
  readonly owner?: string;
  /**
   * Where group commits run: "worker" (default for a database file) commits on
   * a worker thread so the fsync never blocks the event loop; "inline" commits
   * on this connection (always so for ":memory:").
   */
  readonly groupCommit?: "worker" | "inline";
}

const INSERT_SQL = `INSERT INTO outbound_jobs (id, state, mail_from, rcpt_to, rcpt_key, mail_key, size, received_at, client_ip, client_user, identity, report_to, attempts, next_attempt_at, updated_at)
  VALUES (?, 'received', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`;

const DUPLICATE_SQL = `SELECT * FROM outbound_jobs
  WHERE message_id = ? AND rcpt_key = ? AND received_at >= ? AND state NOT IN ('failed','cancelled') AND id <> ?
  ORDER BY received_at`;

/**
 * OutboundStore on the SQLite database from openDatabase() (which must have
 * been opened with `outboundMigration`). Inserts use group commit (see
 * ./group-commit.ts): all inserts requested in the same event-loop turn, and
 * those arriving while a commit runs, go into one transaction, so one fsync
 * covers the batch; each caller's promise settles after that commit.
 */
export class SqliteOutboundStore implements OutboundStore {
  readonly owner: string;
  readonly #db: Db;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #committer: GroupCommitter;
  readonly #get;
  /** Jobs whose lease this store took and has not given back: moving them is fenced by owner. */
  readonly #held = new Set<string>();

  constructor(db: Db, opts: SqliteOutboundStoreOptions) {
    this.#db = db;
    this.#log = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.owner = opts.owner ?? newOwnerId();
    this.#committer = new GroupCommitter(db, INSERT_SQL, { inline: opts.groupCommit === "inline" });
    this.#get = db.prepare<[string], OutboundRow>("SELECT * FROM outbound_jobs WHERE id = ?");
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
      job.mailKey,
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
      mailKey: job.mailKey,
      size: job.size,
      receivedAt,
      client: job.client,
      identity,
      reportTo,
      attempts: 0,
      nextAttemptAt: receivedAt,
      leaseUntil: null,
      leaseOwner: null,
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
    const clock = this.#now();
    const due = opts.now ?? clock;
    const placeholders = states.map(() => "?").join(",");
    const select = this.#db.prepare<SqlValue[], OutboundRow>(
      `SELECT * FROM outbound_jobs
       WHERE state IN (${placeholders}) AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
       ORDER BY next_attempt_at, id LIMIT ?`,
    );
    const lease = this.#db.prepare<SqlValue[]>("UPDATE outbound_jobs SET lease_until = ?, lease_owner = ? WHERE id = ?");
    const leaseUntil = clock + opts.leaseMs;
    const jobs = this.#db.transaction(() => {
      const rows = select.all(...states, due, due, opts.limit);
      for (const r of rows) lease.run(leaseUntil, this.owner, r.id);
      return rows.map((r) => outboundFromRow({ ...r, lease_until: leaseUntil, lease_owner: this.owner }));
    }).immediate();
    for (const j of jobs) this.#held.add(j.id);
    return jobs;
  }

  async renewLease(id: string, leaseMs: number): Promise<boolean> {
    const changes = this.#db
      .prepare<[number, string, string]>("UPDATE outbound_jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND lease_until IS NOT NULL")
      .run(this.#now() + leaseMs, id, this.owner).changes;
    // A lease lost to another owner stays fenced: this store's later transitions of the row are refused.
    return changes === 1;
  }

  async transition(id: string, from: JobState, to: JobState, patch: JobPatch = {}, opts: TransitionOptions = {}): Promise<OutboundJob> {
    if (!TRANSITIONS[from].includes(to)) throw new InvalidTransitionError(from, to);
    const now = this.#now();
    const sets = ["state = ?", "updated_at = ?"];
    const values: SqlValue[] = [to, now];
    const leaseUntil = patch.leaseMs !== undefined ? now + patch.leaseMs : patch.leaseUntil;
    const keep = leaseUntil !== undefined && leaseUntil !== null;
    if (keep) {
      sets.push("lease_until = ?", "lease_owner = ?");
      values.push(leaseUntil, this.owner);
    } else sets.push("lease_until = NULL", "lease_owner = NULL");
    for (const { column, value } of patchAssignments(patch)) {
      sets.push(`${column} = ?`);
      values.push(value);
    }
    const dup = opts.unlessDuplicate;
    const job = this.#casUpdate(id, from, sets.join(", "), values, keep, dup === undefined ? undefined : () => this.#duplicateOf(dup));
    logTransition(this.#log, job, from, to);
    return job;
  }

  async reschedule(id: string, opts: RescheduleOptions): Promise<OutboundJob> {
    const to = rescheduleTarget(opts);
    const job = this.#casUpdate(
      id,
      opts.from,
      "state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, lease_until = NULL, lease_owner = NULL, updated_at = ?",
      [to, opts.nextAttemptAt, opts.error, this.#now()],
      false,
    );
    logDeferred(this.#log, job, opts);
    return job;
  }

  /**
   * Compare-and-set in one IMMEDIATE transaction: the state must be `from`;
   * for a job this store holds, the lease must still be ours (fencing); an
   * optional check (the duplicate query) runs inside the same transaction.
   */
  #casUpdate(id: string, from: JobState, sets: string, values: SqlValue[], keepLease: boolean, check?: () => OutboundJob | undefined): OutboundJob {
    const fenced = this.#held.has(id);
    const update = this.#db.prepare<SqlValue[]>(`UPDATE outbound_jobs SET ${sets} WHERE id = ? AND state = ?${fenced ? " AND lease_owner IS ?" : ""}`);
    const job = this.#db.transaction(() => {
      const duplicate = check?.();
      if (duplicate !== undefined) throw new DuplicateJobError(id, duplicate);
      const info = fenced ? update.run(...values, id, from, this.owner) : update.run(...values, id, from);
      const row = this.#get.get(id);
      if (info.changes !== 1 || row === undefined) {
        if (fenced && row !== undefined && row.state === from) throw new LeaseLostError(id, from, this.owner, row.lease_until === null ? null : row.lease_owner);
        throw new StateConflictError(id, from, row?.state);
      }
      return outboundFromRow(row);
    }).immediate();
    if (keepLease) this.#held.add(id);
    else this.#held.delete(id);
    return job;
  }

  #duplicateOf(q: DuplicateQuery): OutboundJob | undefined {
    return this.#db
      .prepare<SqlValue[], OutboundRow>(DUPLICATE_SQL)
      .all(q.messageId, recipientKey(q.recipients), q.since, q.excludeId ?? "")
      .map(outboundFromRow)
      .find((j) => j.identity === q.identity);
  }

  async findDuplicate(q: DuplicateQuery): Promise<OutboundJob | undefined> {
    return this.#duplicateOf(q);
  }

  async findSentBy(rcMessageId: string, identity: string): Promise<OutboundJob | undefined> {
    const rows = this.#db
      .prepare<[string], OutboundRow>("SELECT * FROM outbound_jobs WHERE rc_message_id = ? AND state IN ('submitted','final','notified') ORDER BY id")
      .all(rcMessageId);
    return rows.map(outboundFromRow).find((j) => j.identity === identity);
  }

  async findByRcMessageId(rcMessageId: string, states?: readonly JobState[]): Promise<OutboundJob | undefined> {
    if (states !== undefined && states.length === 0) return undefined;
    const where = states === undefined ? "" : ` AND state IN (${states.map(() => "?").join(",")})`;
    const row = this.#db
      .prepare<SqlValue[], OutboundRow>(`SELECT * FROM outbound_jobs WHERE rc_message_id = ?${where} ORDER BY id LIMIT 1`)
      .get(rcMessageId, ...(states ?? []));
    return row === undefined ? undefined : outboundFromRow(row);
  }

  async get(id: string): Promise<OutboundJob | undefined> {
    const row = this.#get.get(id);
    return row === undefined ? undefined : outboundFromRow(row);
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
      .prepare<SqlValue[], OutboundRow>(`SELECT * FROM outbound_jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id${opts.newestFirst === true ? " DESC" : ""} LIMIT ?`)
      .all(...values);
    return rows.map(outboundFromRow);
  }

  async *receivedSince(since: number): AsyncIterable<OutboundJob> {
    const page = this.#db.prepare<[number, number, string, number], OutboundRow>(
      "SELECT * FROM outbound_jobs WHERE (received_at > ? OR (received_at = ? AND id > ?)) ORDER BY received_at, id LIMIT ?",
    );
    let at = since;
    let after = "\uffff";
    // The first page: strictly after `since` (no id is above "\uffff").
    for (;;) {
      const rows = page.all(at, at, after, 1000);
      for (const r of rows) yield outboundFromRow(r);
      const last = rows.at(-1);
      if (last === undefined || rows.length < 1000) return;
      at = last.received_at;
      after = last.id;
    }
  }

  async countByState(): Promise<Record<JobState, number>> {
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    const rows = this.#db.prepare<[], { state: JobState; n: number }>("SELECT state, COUNT(*) AS n FROM outbound_jobs GROUP BY state").all();
    for (const r of rows) counts[r.state] = r.n;
    return counts;
  }

  async oldestUnfinishedAt(): Promise<number | undefined> {
    const r = this.#db
      .prepare<[], { t: number | null }>("SELECT MIN(received_at) AS t FROM outbound_jobs WHERE state IN ('received','parsed','submitting','submitted')")
      .get();
    return r?.t ?? undefined;
  }

  async findInterruptedSubmissions(startedBefore: number): Promise<OutboundJob[]> {
    const rows = this.#db
      .prepare<[number, number], OutboundRow>(
        `SELECT * FROM outbound_jobs
         WHERE state = 'submitting' AND (submit_started_at IS NULL OR submit_started_at < ?) AND (lease_until IS NULL OR lease_until <= ?)
         ORDER BY submit_started_at, id`,
      )
      .all(startedBefore, this.#now());
    return rows.map(outboundFromRow);
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
