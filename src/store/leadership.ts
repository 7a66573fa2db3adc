/**
 * Leadership: which instance runs the work only one may run at a time
 * (inbound message-sync, the subscription, the WebSocket), and a way for any
 * instance to wake it (a webhook that reached a follower).
 *
 * One process on SQLite is always the leader (AlwaysLeader). On PostgreSQL
 * (./pg/leadership.ts) instances elect one with a lease row timed by the
 * database clock; when the leader dies, another takes over once its lease
 * runs out; wake-ups travel by LISTEN/NOTIFY. Every instance still delivers
 * mail and sends faxes: only the singletons follow the leader.
 */

export type LeadershipListener = (leader: boolean) => void;
export type WakeListener = (topic: string, payload: string) => void;

export interface Leadership {
  /** This instance's id in the election (logs, metrics). */
  readonly owner: string;
  /** True while this instance leads. */
  isLeader(): boolean;
  /** Told on every change (true: became leader; false: lost or resigned). Returns an unsubscribe function. */
  onChange(listener: LeadershipListener): () => void;
  /** Wake whoever listens to `topic` on every instance (the leader acts on it). */
  wake(topic: string, payload?: string): Promise<void>;
  /** Listen to wake-ups sent by any instance (this one included). Returns an unsubscribe function. */
  onWake(listener: WakeListener): () => void;
  /** Join the election (resolves after the first attempt). */
  start(): Promise<void>;
  /** Leave it: resign (another instance takes over at once) and stop listening. Idempotent. */
  stop(): Promise<void>;
}

/** The one process of a SQLite deployment: always the leader; wake-ups stay in the process. */
export class AlwaysLeader implements Leadership {
  readonly owner: string;
  readonly #changes = new Set<LeadershipListener>();
  readonly #wakes = new Set<WakeListener>();
  #leading = false;

  constructor(owner = `pid-${process.pid}`) {
    this.owner = owner;
  }

  isLeader(): boolean {
    return this.#leading;
  }

  onChange(listener: LeadershipListener): () => void {
    this.#changes.add(listener);
    return () => this.#changes.delete(listener);
  }

  async wake(topic: string, payload = ""): Promise<void> {
    for (const l of [...this.#wakes]) l(topic, payload);
  }

  onWake(listener: WakeListener): () => void {
    this.#wakes.add(listener);
    return () => this.#wakes.delete(listener);
  }

  async start(): Promise<void> {
    if (this.#leading) return;
    this.#leading = true;
    for (const l of [...this.#changes]) l(true);
  }

  async stop(): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    for (const l of [...this.#changes]) l(false);
  }
}
