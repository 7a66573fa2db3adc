/**
 * OutboundStore (src/store/ports.ts) on PostgreSQL, shared by every instance.
 * The state machine and the job model are in ../outbound.ts; the SQLite
 * backend (../sqlite/outbound.ts) keeps the same rules.
 *
 * - Claims: `FOR UPDATE SKIP LOCKED`, so instances claiming at once take
 *   different jobs without waiting for each other.
 * - Leases: timed by the database clock (`now()`), recorded with this store's
 *   owner. A job this store claimed can only be moved while the lease is
 *   still its own (LeaseLostError otherwise); renewLease extends it.
 * - Duplicates: transition(…, { unlessDuplicate }) takes a transaction-scoped
 *   advisory lock on the mail's (Message-ID, sender, recipients) before it
 *   checks, so two instances parsing two copies of one mail cannot both pass.
 */
import type { Logger } from "../../log.js";
import { senderIdentity } from "../../policy/identity.js";
import { newOwnerId } from "../owner.js";
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
import { deleteFinished, inTransaction, NOW_MS, type Pool, type PoolClient, type SqlParam } from "./connect.js";

/** Collects positional parameters: `p.add(v)` returns "$n". */
class Params {
  readonly values: SqlParam[] = [];
  add(v: SqlParam): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

export interface PgStoreOptions {
  readonly logger: Logger;
  /** Who this store's leases belong to; default a fresh random id. */
  readonly owner?: string;
  /** A clock to use instead of the database's (tests only: leases are timed by the database otherwise). */
  readonly now?: () => number;
}

/** The clock as SQL: the database's, or a test clock's reading as a literal. */
export function clockSql(now: (() => number) | undefined): string {
  return now === undefined ? NOW_MS : `${Math.trunc(now())}::bigint`;
}

const DUPLICATE_SQL = `SELECT * FROM outbound_jobs
  WHERE message_id = $1 AND rcpt_key = $2 AND received_at >= $3 AND state NOT IN ('failed','cancelled') AND id <> $4 AND identity = $5
  ORDER BY received_at LIMIT 1`;

export class PgOutboundStore implements OutboundStore {
  readonly owner: string;
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #now: (() => number) | undefined;
  /** Jobs whose lease this store took and has not given back: moving them is fenced by owner. */
  readonly #held = new Set<string>();

  constructor(pool: Pool, opts: PgStoreOptions) {
    this.#pool = pool;
    this.#log = opts.logger;
    this.#now = opts.now;
    this.owner = opts.owner ?? newOwnerId();
  }

  get #clock(): string {
    return clockSql(this.#now);
  }

  async insertReceived(job: NewJob): Promise<OutboundJob> {
    const identity = job.identity ?? senderIdentity({ user: job.client.user, mailFrom: job.mailFrom }).key;
    const p = new Params();
    const receivedAt = job.receivedAt === undefined ? this.#clock : `${p.add(job.receivedAt)}::bigint`;
    const r = await this.#pool.query<OutboundRow>(
      `INSERT INTO outbound_jobs (id, state, mail_from, rcpt_to, rcpt_key, mail_key, size, received_at, client_ip, client_user, identity, report_to, attempts, next_attempt_at, updated_at)
       VALUES (${p.add(job.id)}, 'received', ${p.add(job.mailFrom)}, ${p.add(JSON.stringify(job.rcptTo))}, ${p.add(recipientKey(job.rcptTo.map((x) => x.e164)))},
         ${p.add(job.mailKey)}, ${p.add(job.size)}, ${receivedAt}, ${p.add(job.client.ip)}, ${p.add(job.client.user ?? null)}, ${p.add(identity)},
         ${p.add(job.reportTo ?? job.mailFrom)}, 0, ${receivedAt}, ${this.#clock})
       RETURNING *`,
      p.values,
    );
    const full = outboundFromRow(r.rows[0] as OutboundRow);
    this.#log.info(
      { event: "job.received", queueId: full.id, from: full.mailFrom, to: full.rcptTo.map((x) => x.e164), size: full.size, client: full.client.ip },
      "job received",
    );
    return full;
  }

  async close(): Promise<void> {
    // Every insert resolved after its own commit; the pool is closed by whoever opened it.
  }

  async claimDue(states: readonly JobState[], opts: ClaimOptions): Promise<OutboundJob[]> {
    if (states.length === 0 || opts.limit <= 0) return [];
    const p = new Params();
    const clock = this.#clock;
    const due = opts.now === undefined ? clock : `${p.add(opts.now)}::bigint`;
    const r = await this.#pool.query<OutboundRow>(
      `WITH due AS (
         SELECT id FROM outbound_jobs
         WHERE state = ANY(${p.add(states)}::text[]) AND next_attempt_at <= ${due} AND (lease_until IS NULL OR lease_until <= ${clock})
         ORDER BY next_attempt_at, id LIMIT ${p.add(opts.limit)}
         FOR UPDATE SKIP LOCKED
       )
       UPDATE outbound_jobs j SET lease_until = ${clock} + ${p.add(opts.leaseMs)}, lease_owner = ${p.add(this.owner)}
       FROM due WHERE j.id = due.id
       RETURNING j.*`,
      p.values,
    );
    const jobs = r.rows.map(outboundFromRow).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const j of jobs) this.#held.add(j.id);
    return jobs;
  }

  async renewLease(id: string, leaseMs: number): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE outbound_jobs SET lease_until = ${this.#clock} + $1 WHERE id = $2 AND lease_owner = $3 AND lease_until IS NOT NULL`,
      [leaseMs, id, this.owner],
    );
    const ok = r.rowCount === 1;
    // A lease lost to another owner stays fenced: this store's later transitions of the row are refused.
    return ok;
  }

  async transition(id: string, from: JobState, to: JobState, patch: JobPatch = {}, opts: TransitionOptions = {}): Promise<OutboundJob> {
    if (!TRANSITIONS[from].includes(to)) throw new InvalidTransitionError(from, to);
    const p = new Params();
    const clock = this.#clock;
    const sets = [`state = ${p.add(to)}`, `updated_at = ${clock}`];
    let keep = false;
    if (patch.leaseMs !== undefined) {
      sets.push(`lease_until = ${clock} + ${p.add(patch.leaseMs)}`, `lease_owner = ${p.add(this.owner)}`);
      keep = true;
    } else if (patch.leaseUntil !== undefined && patch.leaseUntil !== null) {
      sets.push(`lease_until = ${p.add(patch.leaseUntil)}`, `lease_owner = ${p.add(this.owner)}`);
      keep = true;
    } else sets.push("lease_until = NULL", "lease_owner = NULL");
    for (const { column, value } of patchAssignments(patch)) sets.push(`${column} = ${p.add(value)}`);
    const job = await this.#casUpdate(id, from, sets.join(", "), p, keep, opts.unlessDuplicate);
    logTransition(this.#log, job, from, to);
    return job;
  }

  async reschedule(id: string, opts: RescheduleOptions): Promise<OutboundJob> {
    const to = rescheduleTarget(opts);
    const p = new Params();
    const sets = `state = ${p.add(to)}, attempts = attempts + 1, next_attempt_at = ${p.add(opts.nextAttemptAt)}, last_error = ${p.add(opts.error)},
      lease_until = NULL, lease_owner = NULL, updated_at = ${this.#clock}`;
    const job = await this.#casUpdate(id, opts.from, sets, p, false, undefined);
    logDeferred(this.#log, job, opts);
    return job;
  }

  /**
   * Compare-and-set in one transaction: the state must be `from`; for a job
   * this store holds, the lease must still be ours (fencing); the duplicate
   * check, when asked for, runs first under an advisory lock on the mail.
   */
  async #casUpdate(id: string, from: JobState, sets: string, p: Params, keepLease: boolean, dup: DuplicateQuery | undefined): Promise<OutboundJob> {
    const fenced = this.#held.has(id);
    const where = `id = ${p.add(id)} AND state = ${p.add(from)}${fenced ? ` AND lease_owner = ${p.add(this.owner)}` : ""}`;
    const job = await inTransaction(this.#pool, async (c) => {
      if (dup !== undefined) {
        const duplicate = await this.#duplicateOf(c, dup, true);
        if (duplicate !== undefined) throw new DuplicateJobError(id, duplicate);
      }
      const r = await c.query<OutboundRow>(`UPDATE outbound_jobs SET ${sets} WHERE ${where} RETURNING *`, p.values);
      const row = r.rows[0];
      if (row !== undefined) return outboundFromRow(row);
      const now = await c.query<OutboundRow>("SELECT * FROM outbound_jobs WHERE id = $1", [id]);
      const found = now.rows[0];
      if (fenced && found !== undefined && found.state === from) throw new LeaseLostError(id, from, this.owner, found.lease_until === null ? null : found.lease_owner);
      throw new StateConflictError(id, from, found?.state);
    });
    if (keepLease) this.#held.add(id);
    else this.#held.delete(id);
    return job;
  }

  async #duplicateOf(c: Pool | PoolClient, q: DuplicateQuery, lock: boolean): Promise<OutboundJob | undefined> {
    const key = recipientKey(q.recipients);
    // Serialise checks of the same mail across instances until this transaction ends.
    if (lock) await c.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`dup\n${q.messageId}\n${q.identity}\n${key}`]);
    const r = await c.query<OutboundRow>(DUPLICATE_SQL, [q.messageId, key, q.since, q.excludeId ?? "", q.identity]);
    const row = r.rows[0];
    return row === undefined ? undefined : outboundFromRow(row);
  }

  async findDuplicate(q: DuplicateQuery): Promise<OutboundJob | undefined> {
    return this.#duplicateOf(this.#pool, q, false);
  }

  async findSentBy(rcMessageId: string, identity: string): Promise<OutboundJob | undefined> {
    const r = await this.#pool.query<OutboundRow>(
      "SELECT * FROM outbound_jobs WHERE rc_message_id = $1 AND state IN ('submitted','final','notified') AND identity = $2 ORDER BY id LIMIT 1",
      [rcMessageId, identity],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : outboundFromRow(row);
  }

  async findByRcMessageId(rcMessageId: string, states?: readonly JobState[]): Promise<OutboundJob | undefined> {
    if (states !== undefined && states.length === 0) return undefined;
    const r = await this.#pool.query<OutboundRow>(
      `SELECT * FROM outbound_jobs WHERE rc_message_id = $1${states === undefined ? "" : " AND state = ANY($2::text[])"} ORDER BY id LIMIT 1`,
      states === undefined ? [rcMessageId] : [rcMessageId, states],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : outboundFromRow(row);
  }

  async get(id: string): Promise<OutboundJob | undefined> {
    const r = await this.#pool.query<OutboundRow>("SELECT * FROM outbound_jobs WHERE id = $1", [id]);
    const row = r.rows[0];
    return row === undefined ? undefined : outboundFromRow(row);
  }

  async list(opts: ListOptions = {}): Promise<OutboundJob[]> {
    const p = new Params();
    const where: string[] = [];
    if (opts.state !== undefined) {
      const states: readonly JobState[] = typeof opts.state === "string" ? [opts.state] : opts.state;
      if (states.length === 0) return [];
      where.push(`state = ANY(${p.add(states)}::text[])`);
    }
    if (opts.after !== undefined) where.push(`id > ${p.add(opts.after)}`);
    if (opts.before !== undefined) where.push(`id < ${p.add(opts.before)}`);
    const r = await this.#pool.query<OutboundRow>(
      `SELECT * FROM outbound_jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id${opts.newestFirst === true ? " DESC" : ""} LIMIT ${p.add(opts.limit ?? 100)}`,
      p.values,
    );
    return r.rows.map(outboundFromRow);
  }

  async *receivedSince(since: number): AsyncIterable<OutboundJob> {
    let r = await this.#pool.query<OutboundRow>("SELECT * FROM outbound_jobs WHERE received_at > $1 ORDER BY received_at, id LIMIT 1000", [since]);
    for (;;) {
      for (const row of r.rows) yield outboundFromRow(row);
      const last = r.rows.at(-1);
      if (last === undefined || r.rows.length < 1000) return;
      r = await this.#pool.query<OutboundRow>("SELECT * FROM outbound_jobs WHERE (received_at, id) > ($1, $2) ORDER BY received_at, id LIMIT 1000", [last.received_at, last.id]);
    }
  }

  async countByState(): Promise<Record<JobState, number>> {
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    const r = await this.#pool.query<{ state: JobState; n: number }>("SELECT state, COUNT(*)::int AS n FROM outbound_jobs GROUP BY state");
    for (const row of r.rows) counts[row.state] = row.n;
    return counts;
  }

  async oldestUnfinishedAt(): Promise<number | undefined> {
    const r = await this.#pool.query<{ t: number | null }>("SELECT MIN(received_at) AS t FROM outbound_jobs WHERE state IN ('received','parsed','submitting','submitted')");
    return r.rows[0]?.t ?? undefined;
  }

  async findInterruptedSubmissions(startedBefore: number): Promise<OutboundJob[]> {
    const r = await this.#pool.query<OutboundRow>(
      `SELECT * FROM outbound_jobs
       WHERE state = 'submitting' AND (submit_started_at IS NULL OR submit_started_at < $1) AND (lease_until IS NULL OR lease_until <= ${this.#clock})
       ORDER BY submit_started_at, id`,
      [startedBefore],
    );
    return r.rows.map(outboundFromRow);
  }

  async purgeFinished(before: number, limit: number): Promise<string[]> {
    const ids = await deleteFinished(this.#pool, "outbound_jobs", ["notified", "cancelled"], before, limit);
    if (ids.length > 0) this.#log.info({ event: "job.purged", count: ids.length }, "finished jobs past retention deleted");
    return ids;
  }
}
