/**
 * Leadership (../leadership.ts) among instances sharing one PostgreSQL
 * database.
 *
 * The leader holds the row `leader_leases(role)` with a lease timed by the
 * database clock and renews it every third of the lease. Any instance takes
 * the row when its lease has run out (the leader died or lost the database),
 * so a dead leader is replaced within one lease period plus one renewal
 * interval. A leader that cannot renew in time steps down on its own clock
 * before its lease can have expired at the database, so two leaders never
 * act at once. Each takeover increments `term`.
 *
 * Wake-ups use LISTEN/NOTIFY on one dedicated connection, reconnected after
 * a failure; a resignation is announced the same way so a follower takes
 * over at once instead of waiting out the lease.
 */
import pg from "pg";
import type { Logger } from "../../log.js";
import { errorMessage } from "../../errors.js";
import type { Leadership, LeadershipListener, WakeListener } from "../leadership.js";
import { NOW_MS, type Pool } from "./connect.js";

const CHANNEL = "faxbridge_wake";
const RESIGNED = "leader.resigned";

export interface PgLeadershipOptions {
  readonly pool: Pool;
  /** The URL the LISTEN connection opens (the pool's). */
  readonly url: string;
  readonly logger: Logger;
  readonly owner: string;
  /** What is being led (one row per role); default "inbound". */
  readonly role?: string;
  /** Lease length (default 15 s); renewed every third of it. */
  readonly leaseMs?: number;
}

export class PgLeadership implements Leadership {
  readonly owner: string;
  readonly #pool: Pool;
  readonly #url: string;
  readonly #log: Logger;
  readonly #role: string;
  readonly #leaseMs: number;
  readonly #changes = new Set<LeadershipListener>();
  readonly #wakes = new Set<WakeListener>();
  #leading = false;
  /** Local monotonic time (ms) by which our lease may have expired at the database: step down before it. */
  #deadline = 0;
  #term = 0;
  #timer: NodeJS.Timeout | undefined;
  #stepDown: NodeJS.Timeout | undefined;
  #listener: pg.Client | undefined;
  #stopped = true;
  #attempt: Promise<void> = Promise.resolve();

  constructor(opts: PgLeadershipOptions) {
    this.#pool = opts.pool;
    this.#url = opts.url;
    this.#log = opts.logger.child({ component: "leadership" });
    this.owner = opts.owner;
    this.#role = opts.role ?? "inbound";
    this.#leaseMs = opts.leaseMs ?? 15_000;
  }

  isLeader(): boolean {
    return this.#leading && performance.now() < this.#deadline;
  }

  /** The election term this instance leads in (0 when it does not lead). */
  get term(): number {
    return this.#leading ? this.#term : 0;
  }

  onChange(listener: LeadershipListener): () => void {
    this.#changes.add(listener);
    return () => this.#changes.delete(listener);
  }

  onWake(listener: WakeListener): () => void {
    this.#wakes.add(listener);
    return () => this.#wakes.delete(listener);
  }

  async wake(topic: string, payload = ""): Promise<void> {
    await this.#pool.query("SELECT pg_notify($1, $2)", [CHANNEL, JSON.stringify({ topic, payload })]);
  }

  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    await this.#listen();
    await this.#tryLead();
    this.#schedule();
  }

  /** Resign (when leading) and leave. */
  async stop(): Promise<void> {
    await this.#halt(true);
  }

  /** Leave without resigning, as a process that died would: the lease runs out at the database. For tests. */
  async abandon(): Promise<void> {
    await this.#halt(false);
  }

  async #halt(resign: boolean): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#attempt;
    const wasLeading = this.#leading;
    if (wasLeading) this.#setLeading(false, "stopped");
    if (resign && wasLeading) {
      try {
        await this.#pool.query("DELETE FROM leader_leases WHERE role = $1 AND owner = $2", [this.#role, this.owner]);
        await this.wake(RESIGNED, this.#role);
      } catch (err) {
        this.#log.warn({ event: "leader.resign_failed", err: errorMessage(err) }, "could not resign; the lease will run out instead");
      }
    }
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  #schedule(): void {
    this.#timer = setInterval(
      () => {
        this.#attempt = this.#tryLead();
      },
      Math.max(50, Math.floor(this.#leaseMs / 3)),
    );
    this.#timer.unref();
  }

  /** Take or renew the lease; a failure to reach the database leaves leadership to the step-down timer. */
  async #tryLead(): Promise<void> {
    if (this.#stopped) return;
    const started = performance.now();
    try {
      const r = await this.#pool.query<{ term: number }>(
        `INSERT INTO leader_leases (role, owner, lease_until, term, updated_at) VALUES ($1, $2, ${NOW_MS} + $3, 1, ${NOW_MS})
         ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, updated_at = excluded.updated_at,
           term = CASE WHEN leader_leases.owner = excluded.owner THEN leader_leases.term ELSE leader_leases.term + 1 END
         WHERE leader_leases.owner = excluded.owner OR leader_leases.lease_until <= ${NOW_MS}
         RETURNING term`,
        [this.#role, this.owner, this.#leaseMs],
      );
      if (this.#stopped) return;
      const row = r.rows[0];
      if (row === undefined) {
        if (this.#leading) this.#setLeading(false, "taken over");
        return;
      }
      // Our lease runs from when the statement ran at the latest; count from before we sent it.
      this.#deadline = started + this.#leaseMs;
      this.#term = row.term;
      this.#armStepDown();
      if (!this.#leading) this.#setLeading(true, "elected");
    } catch (err) {
      this.#log.warn({ event: "leader.renew_failed", err: errorMessage(err), leading: this.#leading }, "could not reach the database to renew the leader lease");
    }
  }

  /** Step down when the lease may have run out without a renewal (the database unreachable). */
  #armStepDown(): void {
    clearTimeout(this.#stepDown);
    this.#stepDown = setTimeout(
      () => {
        if (!this.#leading) return;
        // Timers may fire a little early: check again rather than miss the deadline.
        if (performance.now() < this.#deadline) this.#armStepDown();
        else this.#setLeading(false, "lease expired");
      },
      Math.max(1, Math.ceil(this.#deadline - performance.now())),
    );
    this.#stepDown.unref();
  }

  #setLeading(leading: boolean, why: string): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    if (!leading) clearTimeout(this.#stepDown);
    this.#log.info({ event: leading ? "leader.elected" : "leader.stepped_down", role: this.#role, owner: this.owner, term: this.#term, reason: why }, leading ? "this instance now leads" : "this instance no longer leads");
    for (const l of [...this.#changes]) {
      try {
        l(leading);
      } catch (err) {
        this.#log.error({ event: "leader.listener_failed", err }, "a leadership listener threw");
      }
    }
  }

  async #listen(): Promise<void> {
    if (this.#stopped) return;
    const client = new pg.Client({ connectionString: this.#url, application_name: "faxbridge-listen" });
    client.on("notification", (msg) => this.#onNotification(msg.payload));
    client.on("error", (err) => {
      this.#log.warn({ event: "leader.listen_lost", err: errorMessage(err) }, "the LISTEN connection failed; reconnecting");
      if (this.#listener === client) this.#listener = undefined;
      client.end().catch(() => undefined);
      const again = setTimeout(() => void this.#listen().catch(() => undefined), 1000);
      again.unref();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.#listener = client;
    } catch (err) {
      await client.end().catch(() => undefined);
      this.#log.warn({ event: "leader.listen_failed", err: errorMessage(err) }, "could not LISTEN for wake-ups; retrying");
      const again = setTimeout(() => void this.#listen().catch(() => undefined), 1000);
      again.unref();
    }
  }

  #onNotification(raw: string | undefined): void {
    let msg: { topic?: unknown; payload?: unknown };
    try {
      msg = JSON.parse(raw ?? "") as typeof msg;
    } catch {
      return;
    }
    if (typeof msg.topic !== "string") return;
    const payload = typeof msg.payload === "string" ? msg.payload : "";
    if (msg.topic === RESIGNED) {
      if (payload === this.#role && !this.#leading) this.#attempt = this.#tryLead();
      return;
    }
    for (const l of [...this.#wakes]) l(msg.topic, payload);
  }
}
