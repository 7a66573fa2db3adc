/**
 * Fax → email: ties the sync, the notifications (webhook, WebSocket or none)
 * and the delivery loop together.
 *
 *   notification ─┐
 *   timer ────────┼─► sync (per extension, coalesced) ─► store (cursor + faxes, one tx)
 *   start-up ─────┘                                        │
 *                                                          ▼
 *                          delivery loop: claim ─► download ─► mail (250) ─► delivered
 */
import type { AlertSink } from "../ops/alerts.js";
import { randomBytes } from "node:crypto";
import { notificationMode, type NotificationMode } from "../config/resolve.js";
import type { Config } from "../config/schema.js";
import type { HttpServer } from "../http/server.js";
import type { Logger } from "../log.js";
import type { AuditSink } from "../ops/audit.js";
import type { MailSender } from "../mail/transport.js";
import type { Metrics } from "../metrics.js";
import type { MessageApi, PoolApi, SessionApi, SubscriptionApi, WsTokenApi } from "../rc/api.js";
import type { Leadership } from "../store/leadership.js";
import type { InboundStore } from "../store/ports.js";
import { LEASE_MS } from "../tunables.js";
import { InboundDelivery } from "./deliver.js";
import { faxEventFilter, memberSubscriptionKey, WebhookSubscriptionManager } from "./subscription.js";
import { InboundSync } from "./sync.js";
import { concernsFax, createWebhookHandler, WEBHOOK_PATH, type MessageEvent } from "./webhook.js";
import { WsNotifications } from "./websocket.js";

/** Timing knobs not in the configuration file (tests and the bench use small values). */
export interface InboundTuning {
  /** Overrides inbound.syncIntervalSeconds, ms. */
  syncIntervalMs: number;
  /** Least time between two syncs of one extension; default: half the Light budget shared by the extensions. */
  syncMinGapMs: number;
  /** After MSG-333, the new FSync starts this long before the last syncTime. */
  syncResetMarginMs: number;
  deliveryConcurrency: number;
  leaseMs: number;
  retryJitter: number;
  subscriptionExpiresInSeconds: number;
  subscriptionCheckMs: number;
  wsHeartbeatMs: number;
  wsBackoffMs: readonly number[];
  wsConnectTimeoutMs: number;
}

export interface InboundServiceDeps {
  readonly config: Config;
  /** With an extension pool (RcPool), each member's received faxes are synced through that member. */
  readonly client: MessageApi & SubscriptionApi & WsTokenApi & Pick<SessionApi, "ownerId"> & Partial<PoolApi>;
  readonly store: InboundStore;
  readonly mail: MailSender;
  readonly http: HttpServer;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly tuning?: Partial<InboundTuning>;
  readonly audit?: AuditSink;
  /** Link-only delivery: builds the signed console link mailed instead of the fax (src/web/links.ts). */
  readonly link?: (faxId: string) => { url: string; expiresAt: number };
  /** Told about dead letters and lost subscriptions (mail.adminTo). */
  readonly alerts?: AlertSink;
  /**
   * Several instances on one database: only the leader syncs and keeps the
   * subscription / WebSocket; a notification reaching a follower wakes the
   * leader; every instance delivers. Absent: this process does it all.
   */
  readonly leadership?: Leadership;
}

/** The wake-up topic a follower sends the leader for a notification (payload: the extensions, comma-separated). */
export const SYNC_WAKE_TOPIC = "inbound.sync";

/** Decided with the rest of the configuration (src/config/resolve.ts); exported here as before. */
export { notificationMode, type NotificationMode };

const VERIFICATION_KEY = "webhook.verificationToken";

export class InboundService {
  readonly #deps: InboundServiceDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #tuning: InboundTuning;
  readonly #sync: InboundSync;
  readonly #delivery: InboundDelivery;
  /** Configured extensions, then the other pool members' as they become known. */
  #extensions: readonly string[];
  /** The running notifications (the first member's, then each other pool member's); stopped when leadership ends. */
  #notifiers: { stop(remove: boolean): Promise<void> }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #verificationToken: string | undefined;
  #running = false;
  #leading = false;
  #routeRegistered = false;
  #unsubscribe: (() => void)[] = [];

  constructor(deps: InboundServiceDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ module: "inbound" });
    this.#now = deps.now ?? Date.now;
    const cfg = deps.config;
    this.#extensions = [...new Set(cfg.ringcentral.extensions)];
    const rl = cfg.ringcentral.rateLimits;
    // Syncs may use half the Light budget, shared by the watched extensions.
    const defaultGap = Math.ceil((rl.windowSeconds * 1000 * this.#extensions.length) / Math.max(1, rl.light / 2));
    this.#tuning = {
      syncIntervalMs: cfg.inbound.syncIntervalSeconds * 1000,
      syncMinGapMs: defaultGap,
      syncResetMarginMs: 5 * 60_000,
      deliveryConcurrency: 4,
      leaseMs: LEASE_MS,
      retryJitter: 0.2,
      subscriptionExpiresInSeconds: 7 * 86_400,
      subscriptionCheckMs: 5 * 60_000,
      wsHeartbeatMs: 30_000,
      wsBackoffMs: [1000, 2000, 5000, 10_000, 30_000, 60_000],
      wsConnectTimeoutMs: 15_000,
      ...deps.tuning,
    };
    this.#sync = new InboundSync({
      client: deps.client,
      store: deps.store,
      logger: this.#log,
      lookbackMs: cfg.inbound.lookbackHours * 3_600_000,
      resetMarginMs: this.#tuning.syncResetMarginMs,
      minGapMs: this.#tuning.syncMinGapMs,
      now: this.#now,
      onDiscovered: () => this.#delivery.wake(),
    });
    this.#delivery = new InboundDelivery({
      config: cfg,
      client: deps.client,
      store: deps.store,
      mail: deps.mail,
      metrics: deps.metrics,
      logger: this.#log,
      now: this.#now,
      concurrency: this.#tuning.deliveryConcurrency,
      leaseMs: this.#tuning.leaseMs,
      jitter: this.#tuning.retryJitter,
      ...(deps.audit !== undefined && { audit: deps.audit }),
      ...(deps.link !== undefined && { link: deps.link }),
      ...(deps.alerts !== undefined && { alerts: deps.alerts }),
    });
  }

  /** Look for due deliveries now (after a redeliver from the web console or API). */
  wakeDelivery(): void {
    this.#delivery.wake();
  }

  get mode(): NotificationMode {
    return notificationMode(this.#deps.config);
  }

  /**
   * Start syncing, delivering and listening for notifications. With
   * `waitForNotifications: false` (the daemon) the first subscription attempt
   * runs in the background: it needs a RingCentral token, and startup must
   * never wait for a held Auth rate-limit group.
   */
  async start(opts: { waitForNotifications?: boolean } = {}): Promise<void> {
    if (this.#running) return;
    const mode = this.mode;
    this.#running = true;
    const cfg = this.#deps.config;
    this.#log.info({ event: "inbound.starting", mode, extensions: this.#extensions }, "inbound fax delivery starting");

    if (mode === "webhook") {
      this.#verificationToken = await this.#webhookToken();
      if (!this.#routeRegistered) {
        this.#deps.http.route(
          "POST",
          WEBHOOK_PATH,
          createWebhookHandler({
            expectedToken: () => (this.#running ? this.#verificationToken : undefined),
            maxBodyBytes: cfg.http.maxBodyBytes,
            logger: this.#log,
            onEvent: (ev) => this.#onNotification(ev),
          }),
        );
        this.#routeRegistered = true;
      }
    }

    this.#delivery.start();
    const leadership = this.#deps.leadership;
    if (leadership === undefined) {
      await this.#lead(opts.waitForNotifications ?? true);
    } else {
      this.#unsubscribe.push(
        leadership.onChange((leader) => {
          if (leader) void this.#lead(false);
          else void this.#follow();
        }),
        leadership.onWake((topic, payload) => {
          if (topic !== SYNC_WAKE_TOPIC || !this.#leading) return;
          for (const ext of payload.split(",")) if (this.#extensions.includes(ext)) this.#trigger(ext, "notification");
        }),
      );
      if (leadership.isLeader()) await this.#lead(opts.waitForNotifications ?? true);
      else this.#log.info({ event: "inbound.following", owner: leadership.owner }, "another instance leads inbound sync; this one delivers");
    }
    this.#log.info({ event: "inbound.started", mode }, "inbound fax delivery started");
  }

  /** Become the one that syncs and keeps the notifications (the only one, without a Leadership). */
  async #lead(waitForNotifications: boolean): Promise<void> {
    if (!this.#running || this.#leading) return;
    this.#leading = true;
    this.#sync.resume();
    const mode = this.mode;
    this.#log.info({ event: "inbound.leading", mode }, "this instance syncs inbound faxes");
    this.#timer = setInterval(() => this.#triggerAll("timer"), this.#tuning.syncIntervalMs);
    this.#timer.unref();
    this.#triggerAll("start");
    this.#watchPoolMembers();

    // The first member's session subscribes to the configured extensions; each other pool member subscribes with its own (#watchPoolMembers).
    const notifications = this.#notify(this.#deps.client, this.#extensions.map(faxEventFilter));
    if (waitForNotifications) await notifications;
    else notifications.catch((err: unknown) => this.#log.error({ event: "inbound.notifications_failed", err }, "could not start notifications; the periodic sync still finds every fax"));
  }

  /**
   * Start the notifications one session subscribes (webhook or WebSocket, per
   * the mode) for `filters`; `member`: a pool member's own, kept under its key.
   */
  #notify(client: SubscriptionApi & WsTokenApi, filters: readonly string[], member?: string): Promise<void> {
    const cfg = this.#deps.config;
    const mode = this.mode;
    const alerts = this.#deps.alerts !== undefined ? { alerts: this.#deps.alerts } : {};
    if (mode === "webhook") {
      const m = new WebhookSubscriptionManager({
        client,
        store: this.#deps.store,
        logger: member === undefined ? this.#log : this.#log.child({ poolExtension: member }),
        address: cfg.inbound.webhookUrl,
        verificationToken: this.#verificationToken ?? "",
        eventFilters: filters,
        expiresInSeconds: this.#tuning.subscriptionExpiresInSeconds,
        checkIntervalMs: this.#tuning.subscriptionCheckMs,
        now: this.#now,
        ...(member !== undefined && { key: memberSubscriptionKey(member) }),
        ...alerts,
      });
      this.#notifiers.push({ stop: (remove) => m.stop(remove) });
      return m.start();
    }
    if (mode === "websocket") {
      const ws = new WsNotifications({
        client,
        logger: member === undefined ? this.#log : this.#log.child({ poolExtension: member }),
        eventFilters: filters,
        onNotification: (ev) => this.#onNotification(ev),
        onSubscribed: () => (member === undefined ? this.#triggerAll("ws.subscribed") : this.#trigger(member, "ws.subscribed")),
        heartbeatMs: this.#tuning.wsHeartbeatMs,
        backoffMs: this.#tuning.wsBackoffMs,
        connectTimeoutMs: this.#tuning.wsConnectTimeoutMs,
        ...alerts,
      });
      this.#notifiers.push({ stop: () => ws.stop() });
      return ws.start();
    }
    return Promise.resolve();
  }

  /**
   * Stop syncing and listening (leadership lost or shutting down). `remove`
   * deletes the webhook subscription; a follower keeps it for the next leader.
   */
  async #follow(remove = false): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const steps: [string, () => Promise<void>][] = [
      ...this.#notifiers.splice(0).map((n): [string, () => Promise<void>] => ["notifications", () => n.stop(remove)]),
      ["sync", async () => this.#sync.stop()],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.#log.error({ event: "inbound.stop_failed", step: name, err }, "inbound shutdown step failed");
      }
    }
    if (this.#running) this.#log.info({ event: "inbound.following" }, "another instance leads inbound sync now; this one delivers");
  }

  /**
   * Stops notifications (deleting the webhook subscription, unless another
   * instance may lead next), timers, syncs and deliveries; awaits in-flight work.
   */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#follow(this.#deps.leadership === undefined);
    try {
      await this.#delivery.stop();
    } catch (err) {
      this.#log.error({ event: "inbound.stop_failed", step: "delivery", err }, "inbound shutdown step failed");
    }
    this.#log.info({ event: "inbound.stopped" }, "inbound fax delivery stopped");
  }

  /** Sync one configured extension (or all) now; resolves when a sync started after this call finished. */
  async syncNow(extensionId?: string): Promise<void> {
    const exts = extensionId === undefined ? this.#extensions : [extensionId];
    await Promise.all(exts.map((e) => this.#sync.trigger(e)));
  }

  /** The verification token: the configured one, or one generated once and kept in the store. */
  async #webhookToken(): Promise<string> {
    const configured = this.#deps.config.inbound.verificationToken;
    if (configured !== "") return configured;
    const stored = await this.#deps.store.getValue(VERIFICATION_KEY);
    if (stored !== undefined && stored !== "") return stored;
    // Instances starting together each generate one: the first stored wins, and every instance uses it.
    const mine = randomBytes(24).toString("base64url");
    const token = await this.#deps.store.setValueIfAbsent(VERIFICATION_KEY, mine, this.#now());
    if (token === mine) this.#log.info({ event: "webhook.token_generated" }, "no inbound.verificationToken configured; generated one for the webhook subscription");
    return token;
  }

  /**
   * The other extensions of the pool receive faxes too: watch them, each synced
   * through its own session (their notifications are not subscribed through the
   * first member's, which may not see them: the periodic sync finds their faxes).
   */
  #watchPoolMembers(): void {
    const members = this.#deps.client.otherMemberIds;
    if (members === undefined) return;
    members
      .call(this.#deps.client)
      .then((ids) => {
        const owner = this.#deps.client.ownerId;
        const added = ids.filter((id) => !this.#extensions.includes(id) && !(id === owner && this.#extensions.includes("~")));
        if (!this.#running || !this.#leading) return;
        if (added.length > 0) {
          this.#extensions = [...this.#extensions, ...added];
          this.#log.info({ event: "inbound.pool_extensions", extensions: added }, "watching the received faxes of the pool's other extensions");
          for (const e of added) this.#trigger(e, "start");
        }
        // Each member subscribes to its own received faxes with its own session (another's are not visible to it).
        for (const id of ids) {
          const session = this.#deps.client.memberSession?.(id);
          if (session === undefined) continue;
          this.#notify(session, [faxEventFilter("~")], id).catch((err: unknown) =>
            this.#log.warn({ event: "inbound.notifications_failed", extension: id, err }, "could not start a pool member's notifications; the periodic sync still finds its faxes"),
          );
        }
      })
      .catch((err: unknown) => this.#log.warn({ event: "inbound.pool_extensions_failed", err }, "could not learn the pool's extensions; the next start tries again"));
  }

  #triggerAll(why: string): void {
    if (!this.#running) return;
    for (const e of this.#extensions) this.#trigger(e, why);
  }

  #trigger(extension: string, why: string): void {
    this.#sync.trigger(extension).catch((err: unknown) => {
      // Already logged as inbound.sync_failed by the sync; the next trigger retries.
      this.#log.debug({ event: "inbound.sync_trigger_failed", extension, why, err }, "triggered sync failed");
    });
  }

  #onNotification(ev: MessageEvent): void {
    if (!this.#running || !concernsFax(ev)) return;
    const ext = ev.body?.extensionId;
    const owner = this.#deps.client.ownerId;
    let targets: readonly string[] = this.#extensions;
    if (ext !== undefined) {
      if (this.#extensions.includes(ext)) targets = [ext];
      else if (owner !== undefined && ext === owner && this.#extensions.includes("~")) targets = ["~"];
    }
    const leadership = this.#deps.leadership;
    if (leadership !== undefined && !this.#leading) {
      // A webhook reached a follower: the leader syncs.
      leadership.wake(SYNC_WAKE_TOPIC, targets.join(",")).catch((err: unknown) => this.#log.warn({ event: "inbound.wake_failed", err }, "could not wake the leader; its periodic sync will find the fax"));
      return;
    }
    for (const t of targets) this.#trigger(t, "notification");
  }
}
