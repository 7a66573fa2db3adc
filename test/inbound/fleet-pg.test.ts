/**
 * Webhook notifications with two instances on one PostgreSQL database (issue
 * 11): both start at once with no configured verification token, so each
 * would generate its own; they must agree on one (stored in the database),
 * one subscription exists at RingCentral (the leader's), and a delivery that
 * reaches the follower (the load balancer's choice) is verified there and
 * wakes the leader, which syncs: the fax is mailed once.
 */
import { afterEach, expect, it } from "vitest";
import type { Config } from "../../src/config/schema.js";
import { HttpServer } from "../../src/http/server.js";
import { InboundService } from "../../src/inbound/service.js";
import { WEBHOOK_PATH } from "../../src/inbound/webhook.js";
import { inboundLeadership } from "../../src/store/open.js";
import { sharedWebSecret } from "../../src/web/auth.js";
import type { Leadership } from "../../src/store/leadership.js";
import { describePg, usePgDatabase } from "../helpers/pg.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { Harness, sha256 } from "./harness.js";

interface Instance {
  readonly stores: TestStores;
  readonly http: HttpServer;
  readonly leadership: Leadership;
  readonly service: InboundService;
}

describePg("webhook notifications with two instances on PostgreSQL", () => {
  const db = usePgDatabase();
  let h: Harness | undefined;
  const instances: Instance[] = [];
  const servers: HttpServer[] = [];

  afterEach(async () => {
    for (const i of instances.splice(0)) {
      await i.service.stop();
      await i.leadership.stop();
      await i.stores.close();
    }
    for (const s of servers.splice(0)) await s.close();
    await h?.close();
    h = undefined;
  });

  async function httpServer(x: Harness): Promise<HttpServer> {
    const s = new HttpServer({ host: "127.0.0.1", port: 0, logger: x.logger, metrics: x.metrics });
    await s.listen();
    servers.push(s);
    return s;
  }

  async function instance(x: Harness, config: Config, http: HttpServer, name: string): Promise<Instance> {
    const stores = await openTestStores(x.dir.path, { databaseUrl: db.url, role: "daemon", owner: name, logger: x.logger.child({ instance: name }) });
    const leadership = inboundLeadership(stores, { leaseMs: 3000 });
    const service = new InboundService({
      config,
      client: x.client,
      store: stores.inbound,
      mail: x.mail,
      http,
      metrics: x.metrics,
      logger: x.logger.child({ instance: name }),
      leadership,
      tuning: { syncMinGapMs: 0, leaseMs: 5_000, subscriptionCheckMs: 60_000 },
    });
    const i = { stores, http, leadership, service };
    instances.push(i);
    return i;
  }

  it("agrees on one generated token and one subscription; a delivery to the follower wakes the leader", async () => {
    const x = (h = await new Harness().start());
    const httpA = await httpServer(x);
    const httpB = await httpServer(x);
    // The load balancer in front of both sends RingCentral's deliveries to B.
    const webhookUrl = `http://127.0.0.1:${httpB.address.port}${WEBHOOK_PATH}`;
    const config: Config = { ...x.config, inbound: { ...x.config.inbound, notifications: "webhook", webhookUrl, verificationToken: "", syncIntervalSeconds: 3600 } };
    const a = await instance(x, config, httpA, "instance-a");
    const b = await instance(x, config, httpB, "instance-b");

    // A is elected before B joins; both then start inbound at the same moment.
    await a.leadership.start();
    expect(a.leadership.isLeader()).toBe(true);
    await b.leadership.start();
    expect(b.leadership.isLeader()).toBe(false);
    await Promise.all([a.service.start(), b.service.start()]);

    const token = await a.stores.inbound.getValue("webhook.verificationToken");
    expect(token).toBeDefined();
    expect(x.events("webhook.token_generated")).toHaveLength(1);
    const subs = await x.control("GET", "/emulator/subscriptions") as { id: string; transportType: string }[];
    expect(subs.filter((s) => s.transportType === "WebHook")).toHaveLength(1);

    // A forged delivery to either instance is refused; the real one (from the emulator, to B) is accepted there.
    for (const s of [httpA, httpB]) {
      const res = await fetch(`http://127.0.0.1:${s.address.port}${WEBHOOK_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", "verification-token": "forged" },
        body: JSON.stringify({ event: "/restapi/v1.0/account/~/extension/~/message-store" }),
      });
      expect(res.status).toBe(403);
    }

    const before = x.events("inbound.sync").length;
    const fax = await x.inject();
    const mail = await waitFor(() => x.mailsFor(fax.id)[0], { timeoutMs: 20_000, what: "the received fax mailed" });
    expect(sha256(mail.parsed.attachments[0]?.content ?? Buffer.alloc(0))).toBe(sha256(fax.pdf));
    // The follower received the notification and did not sync itself; the leader synced on the wake-up.
    const received = x.events("webhook.received");
    expect(received.length).toBeGreaterThanOrEqual(1);
    const syncs = x.events("inbound.sync").slice(before);
    expect(syncs.length).toBeGreaterThanOrEqual(1);
    expect(syncs.every((l) => l["instance"] === "instance-a")).toBe(true);
    expect(x.events("webhook.refused").filter((l) => l["reason"] === "bad_token")).toHaveLength(2);
    expect(x.mailsFor(fax.id)).toHaveLength(1);
  });
});

describePg("the web key with several instances on PostgreSQL", () => {
  const db = usePgDatabase();
  it("instances starting together agree on one generated key; a configured web.secret wins", async () => {
    const dirs = [tempDir(), tempDir()];
    const stores = await Promise.all(dirs.map((d) => openTestStores(d.path, { databaseUrl: db.url })));
    try {
      const none = { web: { secret: "" } } as Pick<Config, "web">;
      const [a, b] = await Promise.all(stores.map((s) => sharedWebSecret(none, s.inbound, Date.now())));
      expect(a?.length).toBe(32);
      expect(a?.equals(b ?? Buffer.alloc(0))).toBe(true);
      const set = { web: { secret: "configured" } } as Pick<Config, "web">;
      expect((await sharedWebSecret(set, (stores[0] as TestStores).inbound, Date.now())).equals(a ?? Buffer.alloc(0))).toBe(false);
    } finally {
      for (const s of stores) await s.close();
      for (const d of dirs) d.cleanup();
    }
  });
});
