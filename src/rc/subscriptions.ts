/** RingCentral subscriptions (webhook delivery). */
import type { Rest } from "./endpoints.js";
import { jsonBody } from "./http-util.js";
import { subscriptionInfoSchema, type SubscriptionInfo } from "./types.js";

export interface CreateSubscriptionRequest {
  eventFilters: string[];
  expiresIn: number;
  deliveryMode: { transportType: "WebHook"; address: string; verificationToken?: string };
}

export class RcSubscriptions {
  private readonly rest: Rest;

  constructor(rest: Rest) {
    this.rest = rest;
  }

  async createSubscription(req: CreateSubscriptionRequest): Promise<SubscriptionInfo> {
    return this.rest.json("createSubscription", subscriptionInfoSchema, { body: () => jsonBody(req) });
  }

  async getSubscription(id: string): Promise<SubscriptionInfo> {
    return this.rest.json("readSubscription", subscriptionInfoSchema, { params: { id } });
  }

  /** POST …/renew: extends the subscription by its expiresIn. Safe to repeat, so retried. */
  async renewSubscription(id: string): Promise<SubscriptionInfo> {
    return this.rest.json("renewSubscription", subscriptionInfoSchema, { params: { id } });
  }

  async deleteSubscription(id: string): Promise<void> {
    const res = await this.rest.call("deleteSubscription", { params: { id } });
    await res.body.dump();
  }
}
