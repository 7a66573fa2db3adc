/**
 * Keeps one RingCentral WebHook subscription alive for the watched
 * extensions' fax message-store events: create (after the Validation-Token
 * handshake our webhook route answers), store its id and expiry, check it
 * periodically (GET), renew it well before expiry, and re-create it when it is
 * Blacklisted, expired or gone (404). Deleted on clean shutdown.
 *
 * Notifications only make delivery faster; correctness never depends on them
 * (the periodic sync finds every fax), so failures here are logged and retried
 * at the next check, never fatal.
 */
import { errorMessage } from "../errors.js";
import type { AlertSink } from "../ops/alerts.js";
import { z } from "zod";
import type { Logger } from "../log.js";
import type { SubscriptionApi } from "../rc/api.js";
import { RcApiError } from "../rc/errors.js";
import type { InboundStore } from "../store/ports.js";

export type SubscriptionClient = SubscriptionApi;

export const SUBSCRIPTION_KEY = "webhook.subscription";

const storedSchema = z.object({
  id: z.string().min(1),
  /** Epoch ms. */
  expiresAt: z.number(),
  address: z.string(),
  eventFilters: z.array(z.string()),
});
type Stored = z.infer<typeof storedSchema>;

/** The message-store event filter for an extension's received faxes. */
export function faxEventFilter(extension: string): string {
  return `/restapi/v1.0/account/~/extension/${extension}/message-store?type=Fax&direction=Inbound`;
}

export interface SubscriptionManagerDeps {
  readonly client: SubscriptionClient;
  readonly store: InboundStore;
  readonly logger: Logger;
  readonly address: string;
  readonly verificationToken: string;
  readonly eventFilters: readonly string[];
  /** Requested lifetime, seconds. */
  readonly expiresInSeconds: number;
  /** How often the subscription is checked (GET), ms. */
  readonly checkIntervalMs: number;
  readonly now: () => number;
  /** Told when the subscription cannot be kept (mail.adminTo). */
  readonly alerts?: AlertSink;
  /** Where its id and expiry are kept (default SUBSCRIPTION_KEY; a pool member's own: memberSubscriptionKey). */
  readonly key?: string;
}

/** The stored subscription of a pool member other than the first (each member subscribes with its own session). */
export function memberSubscriptionKey(extensionId: string): string {
  return `${SUBSCRIPTION_KEY}.${extensionId}`;
}

export type EnsureOutcome = "created" | "recreated" | "renewed" | "ok" | "failed";

export class WebhookSubscriptionManager {
  readonly #deps: SubscriptionManagerDeps;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<EnsureOutcome> | undefined;
  #stopped = false;

  constructor(deps: SubscriptionManagerDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
  }

  get #key(): string {
    return this.#deps.key ?? SUBSCRIPTION_KEY;
  }

  /** Ensure a live subscription now, then check periodically. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.ensure();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.ensure()
        .catch((err: unknown) => this.#log.error({ event: "subscription.check_failed", err }, "subscription check failed"))
        .finally(() => this.#schedule());
    }, this.#deps.checkIntervalMs);
    this.#timer.unref();
  }

  /** Stop checking; with `remove`, delete the subscription at RingCentral (clean shutdown). */
  async stop(remove = true): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => "failed" as const);
    if (!remove) return;
    const stored = await this.#load();
    if (stored === undefined) return;
    try {
      await this.#deps.client.deleteSubscription(stored.id);
      this.#log.info({ event: "subscription.deleted", subscriptionId: stored.id }, "webhook subscription deleted");
    } catch (err) {
      if (!(err instanceof RcApiError && err.status === 404)) {
        this.#log.warn({ event: "subscription.delete_failed", subscriptionId: stored.id, err }, "could not delete the webhook subscription; it expires on its own");
      }
    }
    await this.#deps.store.deleteValue(this.#key);
  }

  /** One check (single-flight). */
  ensure(): Promise<EnsureOutcome> {
    this.#running ??= this.#ensure().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #load(): Promise<Stored | undefined> {
    const raw = await this.#deps.store.getValue(this.#key);
    if (raw === undefined) return undefined;
    try {
      const parsed = storedSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    } catch {
      // A damaged value is as good as none: a new subscription replaces it.
      return undefined;
    }
  }

  async #ensure(): Promise<EnsureOutcome> {
    const stored = await this.#load();
    try {
      if (stored === undefined) return await this.#create("created", undefined);
      const sameShape = stored.address === this.#deps.address && sameSet(stored.eventFilters, this.#deps.eventFilters);
      if (!sameShape) return await this.#create("recreated", stored, "configuration changed");
      let info;
      try {
        info = await this.#deps.client.getSubscription(stored.id);
      } catch (err) {
        if (err instanceof RcApiError && err.status === 404) return await this.#create("recreated", undefined, err.errorCode === "SUB-507" ? "expired" : "not found");
        throw err;
      }
      if (info.status !== "Active") return await this.#create("recreated", stored, `status ${info.status}`);
      const expiresAt = info.expirationTime !== undefined ? Date.parse(info.expirationTime) : stored.expiresAt;
      const left = expiresAt - this.#deps.now();
      if (left <= 0) return await this.#create("recreated", stored, "expired");
      if (left < (this.#deps.expiresInSeconds * 1000) / 2) {
        const renewed = await this.#deps.client.renewSubscription(stored.id);
        const at = renewed.expirationTime !== undefined ? Date.parse(renewed.expirationTime) : this.#deps.now() + this.#deps.expiresInSeconds * 1000;
        await this.#save({ ...stored, expiresAt: at });
        this.#log.info({ event: "subscription.renewed", subscriptionId: stored.id, expiresAt: new Date(at).toISOString() }, "webhook subscription renewed");
        return "renewed";
      }
      if (expiresAt !== stored.expiresAt) await this.#save({ ...stored, expiresAt });
      this.#log.debug({ event: "subscription.ok", subscriptionId: stored.id }, "webhook subscription active");
      return "ok";
    } catch (err) {
      this.#log.error({ event: "subscription.failed", err }, "could not keep the webhook subscription alive; retrying at the next check (the periodic sync still finds every fax)");
      this.#deps.alerts?.({ kind: "subscription_lost", summary: "the RingCentral webhook subscription could not be kept", details: { reason: errorMessage(err) } });
      return "failed";
    }
  }

  async #create(outcome: "created" | "recreated", old: Stored | undefined, why?: string): Promise<EnsureOutcome> {
    if (old !== undefined) {
      try {
        await this.#deps.client.deleteSubscription(old.id);
      } catch (err) {
        if (!(err instanceof RcApiError && err.status === 404)) {
          this.#log.warn({ event: "subscription.delete_failed", subscriptionId: old.id, err }, "could not delete the old webhook subscription");
        }
      }
    }
    const info = await this.#deps.client.createSubscription({
      eventFilters: [...this.#deps.eventFilters],
      expiresIn: this.#deps.expiresInSeconds,
      deliveryMode: { transportType: "WebHook", address: this.#deps.address, verificationToken: this.#deps.verificationToken },
    });
    const expiresAt = info.expirationTime !== undefined ? Date.parse(info.expirationTime) : this.#deps.now() + this.#deps.expiresInSeconds * 1000;
    await this.#save({ id: info.id, expiresAt, address: this.#deps.address, eventFilters: [...this.#deps.eventFilters] });
    const disabled = info.disabledFilters ?? [];
    if (disabled.length > 0) {
      this.#log.warn({ event: "subscription.filters_disabled", disabled }, "RingCentral disabled some event filters");
    }
    this.#log.info(
      { event: `subscription.${outcome}`, subscriptionId: info.id, previous: old?.id, why, expiresAt: new Date(expiresAt).toISOString() },
      outcome === "created" ? "webhook subscription created" : "webhook subscription re-created",
    );
    return outcome;
  }

  async #save(s: Stored): Promise<void> {
    await this.#deps.store.setValue(this.#key, JSON.stringify(s), this.#deps.now());
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  return sa.size === new Set(b).size && b.every((x) => sa.has(x));
}
