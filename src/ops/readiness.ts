/**
 * What /readyz and /metrics learn about this instance: readiness means it can
 * accept and durably queue mail (database, spool, disk space, SMTP listener);
 * RingCentral and the mail server are dependencies whose states are reported
 * but do not take the instance out of a load balancer (mail is queued while
 * they are down, and that is the point of queueing).
 */
import { constants, statfsSync } from "node:fs";
import { access } from "node:fs/promises";
import type { HttpServer } from "../http/server.js";
import type { MailSender } from "../mail/transport.js";
import type { Metrics } from "../metrics.js";
import type { FaxApi, SessionApi } from "../rc/api.js";
import type { Stores } from "../store/ports.js";
import { DependencyMonitor } from "./dependencies.js";
import { RC_RECENT_MS } from "../tunables.js";

/** A successful RingCentral call this recent proves it is up without another call. */

export interface ReadinessDeps {
  http: HttpServer;
  metrics: Metrics;
  /** The store: its health probe and the queue-age query. */
  store: Pick<Stores, "ping" | "outbound">;
  dataDir: string;
  spoolDir: string;
  /** Smallest free space that still takes a largest message. */
  minFreeBytes: number;
  smtpListening: () => boolean;
  client: Pick<SessionApi, "ensureAuthenticated"> & Pick<FaxApi, "listCoverPages">;
  mail: MailSender;
  /** epoch ms and status of the last RingCentral call (status 0: no answer). */
  lastRcCall: () => { at: number; status: number } | undefined;
}

export function freeBytes(dir: string): number {
  const fs = statfsSync(dir);
  return Number(fs.bavail) * Number(fs.bsize);
}

export function wireReadiness(d: ReadinessDeps): DependencyMonitor {
  const { http, metrics, store } = d;
  http.readinessCheck("store", () => store.ping());
  http.readinessCheck("spool", () => access(d.spoolDir, constants.W_OK));
  http.readinessCheck("disk", async () => {
    const free = freeBytes(d.dataDir);
    if (free < d.minFreeBytes) throw new Error(`${free} bytes free, below the ${d.minFreeBytes} a largest message needs`);
  });
  http.readinessCheck("smtp", async () => {
    if (!d.smtpListening()) throw new Error("SMTP listener is not accepting");
  });

  const deps = new DependencyMonitor({ metrics });
  deps.add(
    "ringcentral",
    async () => {
      const last = d.lastRcCall();
      if (last !== undefined && Date.now() - last.at < RC_RECENT_MS && last.status >= 200 && last.status < 300) return;
      await d.client.ensureAuthenticated();
      await d.client.listCoverPages();
    },
    { cacheMs: RC_RECENT_MS },
  );
  deps.add("mail", () => d.mail.verify());
  http.dependencies(() => deps.states());

  metrics.sources.ready = async () => (await http.readiness()).ok;
  metrics.sources.dependencies = () => deps.states();
  metrics.sources.dataFreeBytes = () => {
    try {
      return freeBytes(d.dataDir);
    } catch {
      return undefined;
    }
  };
  metrics.sources.oldestJobSeconds = async () => {
    const t = await store.outbound.oldestUnfinishedAt();
    return t === undefined ? 0 : Math.max(0, (Date.now() - t) / 1000);
  };
  return deps;
}
