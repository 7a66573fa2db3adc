import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../log.js";
import type { Spool } from "../spool/spool.js";
import type { InboundStore, OutboundStore, QuotaStore } from "../store/ports.js";
import { PURGE_BATCH, QUOTA_WINDOW_MS } from "../tunables.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Link-only inbound delivery points people at the stored PDF: keep it at least this long. */
const LINK_MIN_KEEP_MS = 24 * HOUR;

export interface JanitorDeps {
  readonly outbound: OutboundStore;
  readonly inbound: InboundStore;
  /** The quota ledger: entries older than two quota windows are deleted. */
  readonly quota?: QuotaStore;
  readonly spool: Spool;
  /** Where received faxes are downloaded (`<dataDir>/inbound`). */
  readonly inboundDir: string;
  readonly retention: { readonly documentsHours: number; readonly recordsDays: number };
  readonly linkDelivery: boolean;
  readonly logger: Logger;
  readonly now?: () => number;
}

/**
 * Retention: deletes the documents of finished faxes once they are older than
 * `retention.documentsHours`, and finished records older than
 * `retention.recordsDays`. Documents of faxes still in flight are never
 * touched; files whose record is gone (purged) are removed too.
 */
export class Janitor {
  readonly #deps: JanitorDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(deps: JanitorDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: "janitor" });
    this.#now = deps.now ?? Date.now;
  }

  start(intervalMs = HOUR): void {
    const tick = (): void => {
      this.#running = this.runOnce()
        .then(() => undefined)
        .catch((err: unknown) => this.#log.error({ event: "retention.failed", err }, "retention sweep failed"))
        .finally(() => {
          this.#running = undefined;
        });
    };
    tick();
    this.#timer = setInterval(tick, intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async runOnce(): Promise<{ purgedJobs: number; purgedInbound: number; removedDocuments: number }> {
    const now = this.#now();
    const { outbound, inbound, retention } = this.#deps;
    const recordsBefore = now - retention.recordsDays * DAY;
    let purgedJobs = 0;
    let purgedInbound = 0;
    for (let n = PURGE_BATCH; n === PURGE_BATCH; ) {
      n = (await outbound.purgeFinished(recordsBefore, PURGE_BATCH)).length;
      purgedJobs += n;
    }
    for (let n = PURGE_BATCH; n === PURGE_BATCH; ) {
      n = (await inbound.purgeFinished(recordsBefore, PURGE_BATCH)).length;
      purgedInbound += n;
    }
    const removedDocuments = (await this.#sweepOutbound(now)) + (await this.#sweepInbound(now));
    // Twice the window: an instance whose clock runs behind still finds its hour.
    const purgedQuota = (await this.#deps.quota?.purge(now - 2 * QUOTA_WINDOW_MS)) ?? 0;
    if (purgedJobs + purgedInbound + removedDocuments + purgedQuota > 0) {
      this.#log.info({ event: "retention.swept", purgedJobs, purgedInbound, removedDocuments, purgedQuota }, "retention sweep");
    }
    return { purgedJobs, purgedInbound, removedDocuments };
  }

  async #sweepOutbound(now: number): Promise<number> {
    const keepMs = this.#deps.retention.documentsHours * HOUR;
    let removed = 0;
    for (const id of await this.#deps.spool.jobIds()) {
      const job = await this.#deps.outbound.get(id);
      // No row: the job was purged (or never acknowledged, which spool recovery handles at start).
      const finished = job === undefined || job.state === "notified" || job.state === "cancelled";
      if (!finished || (job !== undefined && job.updatedAt > now - keepMs)) continue;
      if (job === undefined && !(await this.#notInFlight(id))) continue;
      await this.#deps.spool.remove(id);
      removed++;
    }
    return removed;
  }

  async #sweepInbound(now: number): Promise<number> {
    const keepMs = Math.max(this.#deps.retention.documentsHours * HOUR, this.#deps.linkDelivery ? LINK_MIN_KEEP_MS : 0);
    let removed = 0;
    for (const id of await listDir(this.#deps.inboundDir)) {
      const fax = await this.#deps.inbound.get(id);
      const finished = fax === undefined || fax.state === "delivered" || fax.state === "dead";
      if (!finished || (fax !== undefined && fax.updatedAt > now - keepMs)) continue;
      await rm(join(this.#deps.inboundDir, id), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }

  /** A spool entry without a row is only swept when it is not a message being received right now. */
  async #notInFlight(id: string): Promise<boolean> {
    // Ids start with the creation time in base 36 (src/util/ids.ts): older than an hour is safely not in flight.
    const created = parseInt(id.slice(0, 9), 36);
    return Number.isFinite(created) && created < this.#now() - HOUR;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}
