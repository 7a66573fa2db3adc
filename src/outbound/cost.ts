import type { Config } from "../config/schema.js";
import { identityLabel } from "../policy/identity.js";
import { QuotaTracker } from "../policy/quota.js";
import type { OutboundJob, OutboundStore, QuotaStore } from "../store/ports.js";
import type { FaxRefusal } from "./parse.js";
import { countPages } from "./pages.js";

/**
 * What a fax costs, decided after parsing and before anything is sent: its
 * pages (src/outbound/pages.ts) against `fax.maxPages`, and pages ×
 * recipients against the hourly page quotas of the sender identity and of
 * the gateway. Documents whose pages cannot be counted beforehand (and
 * forwards) are charged when RingCentral reports the fax's faxPageCount.
 *
 * The usage lives in the store's quota ledger (scope "pages"), shared by
 * every instance; a ledger that is new is seeded once from the jobs of the
 * last hour (`chargedPages` in their stored fax request).
 */

export interface CostDocument {
  readonly path: string;
  readonly filename: string;
  readonly originalFilename?: string | undefined;
}

export type CostVerdict =
  /** `pages` is the counted total, undefined when some document is charged later; `charged` = pages × recipients taken from the quota. */
  | { readonly ok: true; readonly pages: number | undefined; readonly charged: number; readonly release: () => Promise<void> }
  | { readonly ok: false; readonly refusal: FaxRefusal };

function clock(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 16)} UTC`;
}

export class PageBudget {
  readonly #maxPages: number;
  readonly #quota: QuotaTracker;
  readonly #now: () => number;

  constructor(
    config: { readonly fax: Pick<Config["fax"], "maxPages">; readonly policy?: { readonly quotas: Pick<Config["policy"]["quotas"], "pagesPerSenderPerHour" | "pagesGlobalPerHour"> } },
    quota: QuotaStore,
    now: () => number,
  ) {
    this.#maxPages = config.fax.maxPages;
    this.#now = now;
    const q = config.policy?.quotas;
    this.#quota = new QuotaTracker(quota, "pages", { perSenderPerHour: q?.pagesPerSenderPerHour ?? 0, globalPerHour: q?.pagesGlobalPerHour ?? 0 }, { now });
  }

  /** Seed the ledger from the hour's jobs once, when it is new (an upgrade). */
  load(store: Pick<OutboundStore, "receivedSince">): Promise<number> {
    return this.#quota.load(store, (job) => ({ keys: [job.identity], n: chargedPages(job) }));
  }

  /** Count the documents' pages and take pages × recipients from the quotas, or say why the fax must not be sent. */
  async assess(identity: string, documents: readonly CostDocument[], recipients: number): Promise<CostVerdict> {
    const counted: { name: string; pages: number | undefined }[] = [];
    for (const d of documents) counted.push({ name: d.originalFilename ?? d.filename, pages: await countPages(d) });
    return this.#judge(identity, counted, recipients);
  }

  /** The same for a fax whose pages are already known, e.g. a forward of a fax this gateway sent (`name` says which). */
  assessKnown(identity: string, name: string, pages: number, recipients: number): Promise<CostVerdict> {
    return this.#judge(identity, [{ name, pages }], recipients);
  }

  async #judge(identity: string, documents: readonly { name: string; pages: number | undefined }[], recipients: number): Promise<CostVerdict> {
    let total = 0;
    let unknown = false;
    for (const d of documents) {
      const { name, pages } = d;
      if (pages === undefined) {
        unknown = true;
        continue;
      }
      if (pages > this.#maxPages) {
        return {
          ok: false,
          refusal: {
            rule: "too-many-pages",
            filename: name,
            message: `"${name}" has ${pages} pages; this gateway faxes at most ${this.#maxPages} pages per fax. Split the document and send the parts in separate emails.`,
          },
        };
      }
      total += pages;
    }
    if (total > this.#maxPages) {
      return {
        ok: false,
        refusal: { rule: "too-many-pages", message: `the documents have ${total} pages together; this gateway faxes at most ${this.#maxPages} pages per fax. Send them in separate emails.` },
      };
    }
    const charged = total * Math.max(1, recipients);
    const r = charged > 0 ? await this.#quota.reserve([identity], charged) : { ok: true as const };
    if (!r.ok) {
      const minutes = Math.max(1, Math.ceil((r.freeAt - this.#now()) / 60_000));
      const whose = r.scope === "global" ? "this gateway's" : `${identityLabel(identity)}'s`;
      return {
        ok: false,
        refusal: {
          rule: "page-quota",
          message: `this fax is ${total} page${total === 1 ? "" : "s"} × ${recipients} recipient${recipients === 1 ? "" : "s"} = ${charged} pages, over ${whose} hourly quota of ${r.limit} pages. The quota frees up at ${clock(r.freeAt)} (in ${minutes} minute${minutes === 1 ? "" : "s"}); send the email again then.`,
        },
      };
    }
    const reservation = "reservation" in r ? r.reservation : undefined;
    return { ok: true, pages: unknown ? undefined : total, charged, release: async () => reservation?.release() };
  }

  /** Charge pages × recipients RingCentral reported for what was not counted beforehand (no refusal: the fax is sent already). */
  async chargeReported(identity: string, n: number): Promise<number> {
    if (n > 0) await this.#quota.charge([identity], n);
    return n;
  }
}

/** The pages × recipients a job has been charged (stored in its fax request). */
export function chargedPages(job: OutboundJob): number {
  const data = job.faxRequest as { chargedPages?: unknown } | null;
  const n = data?.chargedPages;
  return typeof n === "number" && Number.isFinite(n) ? n : 0;
}
