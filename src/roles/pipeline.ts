/**
 * The fax pipeline of one daemon: the outbound worker (parse → submit → poll →
 * report → cleanup), inbound fax delivery (sync, subscription / WebSocket,
 * delivery), the leader election on PostgreSQL and the janitor. It runs
 * either in the daemon's own process (tests that embed the daemon), or in a
 * process of its own: `faxbridge run --role worker`, or the child that
 * `--role all` starts (./supervisor.ts), so the SMTP intake never shares its
 * event loop with parsing, RingCentral calls or the claim loops.
 */
import { join } from "node:path";
import type { Config } from "../config/schema.js";
import type { HttpServer } from "../http/server.js";
import type { Logger } from "../log.js";
import type { MailSender } from "../mail/transport.js";
import type { Metrics } from "../metrics.js";
import type { AuditLog } from "../ops/audit.js";
import type { AlertSink } from "../ops/alerts.js";
import { Janitor } from "../ops/janitor.js";
import { InboundService } from "../inbound/service.js";
import { OutboundWorker } from "../outbound/worker.js";
import type { RcPool } from "../rc/pool.js";
import type { Spool } from "../spool/spool.js";
import { inboundLeadership } from "../store/open.js";
import type { Stores } from "../store/ports.js";
import { sharedWebSecret, webSecret } from "../web/auth.js";
import { linkBuilder } from "../web/links.js";

/** The wake-up topic an intake sends the pipelines on PostgreSQL when it accepted a job (NOTIFY). */
export const OUTBOUND_WAKE_TOPIC = "outbound.accepted";

export interface PipelineDeps {
  readonly config: Readonly<Config>;
  readonly stores: Stores;
  readonly spool: Spool;
  readonly client: RcPool;
  readonly mail: MailSender;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly audit: AuditLog;
  readonly alerts: AlertSink;
  /** Where the RingCentral webhook route is registered (webhook mode). */
  readonly http: HttpServer;
  readonly dataDir: string;
}

/** A named close step; the daemon orders them with its own (see reorderForShutdown in app.ts). */
export interface CloseStep {
  readonly name: string;
  close(): Promise<void> | void;
}

export interface Pipeline {
  /** A job was accepted or released: claim now. */
  wake(): void;
  /** A received fax was released for delivery again: deliver now. */
  wakeInbound(): void;
  /** Its close steps, started ones only: "janitor", "inbound", "leadership", "outbound". */
  readonly steps: readonly CloseStep[];
}

export async function startPipeline(d: PipelineDeps): Promise<Pipeline> {
  const { config, stores, metrics, audit, alerts, mail, client } = d;
  const log = d.logger;
  const steps: CloseStep[] = [];
  const worker = new OutboundWorker({ config, store: stores.outbound, quota: stores.quota, spool: d.spool, client, mail, metrics, logger: log, audit, alerts });
  // Several instances on PostgreSQL share one key (links signed by one verify on all); one instance keeps it in dataDir.
  const webKey = stores.backend === "postgres" ? await sharedWebSecret(config, stores.inbound, Date.now()) : webSecret(config, join(d.dataDir, "web.key"));
  const link = linkBuilder(config.web.publicUrl, webKey, config.inbound.linkTtlHours);
  // Several instances on PostgreSQL: one leads inbound sync, the subscription and the WebSocket.
  const leadership = stores.backend === "postgres" ? inboundLeadership(stores) : undefined;
  // Queue depth and age describe the shared database: the leader alone exports them.
  if (leadership !== undefined) metrics.sources.queueReporter = () => leadership.isLeader();
  const inbound = new InboundService({
    config,
    client,
    store: stores.inbound,
    mail,
    http: d.http,
    metrics,
    logger: log,
    audit,
    alerts,
    ...(link !== undefined && { link }),
    ...(leadership !== undefined && { leadership }),
  });
  const janitor = new Janitor({
    outbound: stores.outbound,
    inbound: stores.inbound,
    quota: stores.quota,
    spool: d.spool,
    inboundDir: join(d.dataDir, "inbound"),
    retention: config.retention,
    linkDelivery: config.inbound.delivery === "link",
    logger: log,
  });
  try {
    await worker.start();
    steps.push({ name: "outbound", close: () => worker.stop() });
    if (leadership !== undefined) {
      // An intake in another process (or on another machine) announced a job.
      leadership.onWake((topic) => {
        if (topic === OUTBOUND_WAKE_TOPIC) worker.wake();
      });
      await leadership.start();
      steps.push({ name: "leadership", close: () => leadership.stop() });
    }
    // Notifications subscribe in the background: startup never waits for RingCentral's Auth group.
    await inbound.start({ waitForNotifications: false });
    steps.push({ name: "inbound", close: () => inbound.stop() });
    janitor.start();
    steps.push({ name: "janitor", close: () => janitor.stop() });
  } catch (err) {
    for (const step of steps.reverse()) await Promise.resolve(step.close()).catch(() => undefined);
    throw err;
  }
  return { wake: () => worker.wake(), wakeInbound: () => inbound.wakeDelivery(), steps };
}
