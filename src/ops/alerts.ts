/**
 * Admin alerts (mail.adminTo), like HylaFAX's FaxMaster notices: a mail when a
 * received fax is dead-lettered, a fax job fails for good, RingCentral refuses
 * the credentials, or the notification subscription cannot be kept.
 *
 * One mail per event; when events of a kind come faster than one per window
 * (15 minutes), the rest wait and go out together as one digest when the
 * window ends, so a storm of failures is at most 4 mails an hour per kind.
 * Held events are sent at shutdown. Alerts are a courtesy on top of logs,
 * metrics and the audit log: a failure to mail one is logged, never fatal.
 * No fax contents: numbers, ids, reasons only.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../log.js";
import type { MailSender } from "../mail/transport.js";
import type { Metrics } from "../metrics.js";
import { ALERT_WINDOW_MS } from "../tunables.js";

export type AlertKind = "inbound_dead" | "job_failed" | "rc_auth_refused" | "subscription_lost";

export interface AdminAlert {
  readonly kind: AlertKind;
  /** One line: what happened. */
  readonly summary: string;
  /** Facts (ids, numbers, reasons), shown as "key: value" lines. */
  readonly details?: Readonly<Record<string, string | number | undefined>>;
}

/** Where the places that fail report to; a no-op when nobody is to be told. */
export type AlertSink = (alert: AdminAlert) => void;


const TITLES: Record<AlertKind, string> = {
  inbound_dead: "received fax could not be mailed (dead letter)",
  job_failed: "fax job failed for good",
  rc_auth_refused: "RingCentral refused the credentials",
  subscription_lost: "RingCentral notifications subscription cannot be kept",
};

const ADVICE: Record<AlertKind, string> = {
  inbound_dead: "See `faxbridge inbound list --state dead`; after fixing the cause: `faxbridge inbound redeliver ID`.",
  job_failed: "See `faxbridge queue show ID`; the sender was sent a failure notice. `faxbridge queue retry ID` sends it again once the cause is fixed.",
  rc_auth_refused: "Check RC_CLIENT_ID, RC_CLIENT_SECRET and RC_JWT (the JWT may be revoked or expired); `faxbridge doctor` says which. Nothing is faxed until this is fixed; mail is queued meanwhile.",
  subscription_lost: "Received faxes are still found by the periodic sync, only later. Check the app's permissions and inbound.webhookUrl with `faxbridge doctor`.",
};

export interface AdminAlertsOptions {
  adminTo: readonly string[];
  from: string;
  mail: MailSender;
  logger: Logger;
  metrics: Metrics;
  /** Name of this gateway in subjects (smtp.hostname). */
  hostname: string;
  windowMs?: number;
  now?: () => number;
}

interface KindState {
  lastSent: number;
  held: (AdminAlert & { at: number })[];
  timer: NodeJS.Timeout | undefined;
}

export class AdminAlerts {
  readonly #o: AdminAlertsOptions;
  readonly #window: number;
  readonly #now: () => number;
  readonly #kinds = new Map<AlertKind, KindState>();
  readonly #sending = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: AdminAlertsOptions) {
    this.#o = opts;
    this.#window = opts.windowMs ?? ALERT_WINDOW_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** The sink to hand to the places that fail. */
  readonly sink: AlertSink = (alert) => this.notify(alert);

  notify(alert: AdminAlert): void {
    this.#o.metrics.adminAlerts.inc({ kind: alert.kind });
    if (this.#o.adminTo.length === 0 || this.#closed) return;
    const now = this.#now();
    let st = this.#kinds.get(alert.kind);
    if (st === undefined) {
      st = { lastSent: Number.NEGATIVE_INFINITY, held: [], timer: undefined };
      this.#kinds.set(alert.kind, st);
    }
    st.held.push({ ...alert, at: now });
    if (st.timer !== undefined) return; // a digest is already due
    const wait = st.lastSent + this.#window - now;
    if (wait <= 0) {
      this.#flush(alert.kind, st);
      return;
    }
    st.timer = setTimeout(() => {
      if (st) {
        st.timer = undefined;
        this.#flush(alert.kind, st);
      }
    }, wait);
    st.timer.unref();
  }

  /** Send what is held, then stop taking alerts. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const [kind, st] of this.#kinds) {
      clearTimeout(st.timer);
      st.timer = undefined;
      if (st.held.length > 0) this.#flush(kind, st);
    }
    await Promise.allSettled([...this.#sending]);
  }

  #flush(kind: AlertKind, st: KindState): void {
    const events = st.held.splice(0);
    if (events.length === 0) return;
    st.lastSent = this.#now();
    const p = this.#send(kind, events).finally(() => this.#sending.delete(p));
    this.#sending.add(p);
  }

  async #send(kind: AlertKind, events: (AdminAlert & { at: number })[]): Promise<void> {
    const title = TITLES[kind];
    const first = events[0];
    const subject =
      events.length === 1 && first !== undefined ? `[faxbridge ${this.#o.hostname}] ${first.summary}` : `[faxbridge ${this.#o.hostname}] ${events.length} events: ${title}`;
    const body = [
      events.length === 1 ? `faxbridge on ${this.#o.hostname}: ${title}.` : `faxbridge on ${this.#o.hostname}: ${events.length} events of this kind (${title}) since the last notice.`,
      "",
      ...events.flatMap((e) => [
        `* ${new Date(e.at).toISOString()}  ${e.summary}`,
        ...Object.entries(e.details ?? {})
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `    ${k}: ${String(v)}`),
      ]),
      "",
      ADVICE[kind],
      "",
      `At most one such mail is sent per ${Math.round(this.#window / 60_000)} minutes; further events of this kind are collected into a digest.`,
    ].join("\n");
    try {
      await this.#o.mail.send({
        messageId: `<alert-${randomUUID()}@${this.#o.hostname}>`,
        from: this.#o.from,
        to: [...this.#o.adminTo],
        subject,
        text: `${body}\n`,
        headers: { "Auto-Submitted": "auto-generated", "X-Faxbridge-Alert": kind },
      });
      this.#o.logger.info({ event: "admin.alert_sent", kind, events: events.length }, "administrator alert mailed");
    } catch (err) {
      this.#o.logger.warn({ event: "admin.alert_failed", kind, events: events.length, err }, "could not mail the administrator alert");
    }
  }
}
