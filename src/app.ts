import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Config } from "./config/schema.js";
import { resolveConfig } from "./config/resolve.js";
import { errorMessage } from "./errors.js";
import { HttpServer } from "./http/server.js";
import type { Logger } from "./log.js";
import { isLocalDomain } from "./mail/probe.js";
import { Metrics } from "./metrics.js";
import { wireReadiness } from "./ops/readiness.js";
import { retryJob } from "./outbound/operator.js";
import { createSmtpPolicy } from "./policy/index.js";
import { receivedFaxMailedTo } from "./policy/forwarding.js";
import type { NumberCheck } from "./fax/number.js";
import { createSmtpServer, type FaxSmtpServer } from "./smtp/server.js";
import { Spool } from "./spool/spool.js";
import { inboundLeadership, openStores } from "./store/open.js";
import { runDoctor } from "./cli/doctor.js";
import { sharedWebSecret, webSecret } from "./web/auth.js";
import { createWebApp } from "./web/index.js";
import { PipelineHandle, wirePipelineProcess } from "./roles/handle.js";
import { Lifecycle } from "./roles/lifecycle.js";
import { OUTBOUND_WAKE_TOPIC, startPipeline } from "./roles/pipeline.js";
import { openServices, rcTarget } from "./roles/services.js";
import { PipelineSupervisor } from "./roles/supervisor.js";
import { DOCTOR_TIMEOUT_MS, SMTP_SHUTDOWN_MS } from "./tunables.js";

export interface DaemonOptions {
  logger: Logger;
  /** Handle SIGTERM/SIGINT (the CLI does; tests that embed the daemon don't). */
  signals?: boolean;
  /** A metrics registry (tests pass their own). */
  metrics?: Metrics;
  /**
   * "all" (default): intake and fax pipeline; "intake": SMTP, API, console and
   * health only, the pipeline runs in `faxbridge run --role worker` elsewhere
   * (src/roles/worker.ts).
   */
  role?: "all" | "intake";
  /**
   * With role "all": run the pipeline in this process ("inline", the default
   * for embedded daemons) or in a child process ("process", what
   * `faxbridge run` does: src/roles/supervisor.ts).
   */
  pipeline?: "inline" | "process";
}

export interface Daemon {
  readonly smtp: { host: string; port: number };
  readonly http: { host: string; port: number };
  /** Set in sandbox mode: the URL of the built-in RingCentral emulator. */
  readonly emulatorUrl: string | undefined;
  readonly sandbox: boolean;
  /** Graceful, idempotent shutdown within the deadline. */
  close(reason?: string): Promise<void>;
  /** Resolves with the process exit code once the daemon has stopped. */
  readonly finished: Promise<number>;
}

/**
 * The composition root: config → logger → store → spool → RingCentral client
 * → mail transport → SMTP intake → HTTP → the fax pipeline (outbound worker,
 * inbound service, janitor: src/roles/pipeline.ts) here, in a child process,
 * or not at all (`--role intake`).
 * Everything is constructed here and handed its dependencies; nothing is a
 * module-level singleton.
 */
export async function startDaemon(config: Readonly<Config>, opts: DaemonOptions): Promise<Daemon> {
  const log = opts.logger;
  // loadConfig runs the same rules; a config built in code must not slip past them (partial credentials into a sandbox, say).
  const resolved = resolveConfig(config);
  const metrics = opts.metrics ?? new Metrics();
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  const pipelineMode: "inline" | "process" | "none" = (opts.role ?? "all") === "intake" ? "none" : (opts.pipeline ?? "inline");
  const life = new Lifecycle(log);
  const steps = life.steps;

  try {
    const sandbox = resolved.sandbox;
    const { rc, emulatorUrl } = await rcTarget(config, sandbox, log, steps);

    // With the pipeline in this process, this process owns the store (leases still set belong to a process that died,
    // and are released at open). With it in a child (--role all) this process takes the data directory and the child
    // releases the leases; an intake alone (--role intake) leaves both to the worker.
    const stores = await openStores(config, log, pipelineMode === "inline" ? { role: "daemon" } : { role: "intake", lock: pipelineMode === "process" });
    steps.push({ name: "database", close: () => stores.close() });
    const outboundStore = stores.outbound;
    const inboundStore = stores.inbound;
    const spool = new Spool({ documents: stores.documents, logger: log });
    // Other instances may be receiving mail into the shared document store right now: their fresh messages are not orphans.
    await spool.recover(outboundStore, { shared: stores.backend === "postgres" });

    const { mail, alerts, audit, client, lastRcCall } = await openServices({ config, rc, sandbox, dataDir, logger: log, metrics, steps });

    const http = new HttpServer({ host: config.http.host, port: config.http.port, logger: log.child({ component: "http" }), metrics });
    let smtpListening = false;
    const dependencies = wireReadiness({
      http,
      metrics,
      store: stores,
      dataDir,
      spoolDir: join(dataDir, "spool"),
      // The same floor below which SMTP answers 452: not ready = new mail would be refused.
      minFreeBytes: config.smtp.minFreeBytes,
      smtpListening: () => smtpListening && !smtp.closing,
      client,
      mail,
      lastRcCall,
    });

    // The fax pipeline: here (inline), in a child process (--role all), or in another process altogether (--role intake).
    const pipeline = new PipelineHandle();
    const numberCheck: NumberCheck = resolved.numberCheck;
    // Who may fax, to where, how much; quotas are counted in the store's ledger, shared by every instance.
    const policy = await createSmtpPolicy({ config, logger: log, metrics, store: outboundStore, quota: stores.quota, receivedBy: receivedFaxMailedTo(inboundStore) });
    const smtp: FaxSmtpServer = createSmtpServer({
      config,
      policy,
      spool,
      store: outboundStore,
      logger: log,
      numberCheck,
      metrics,
      onAccepted: () => pipeline.wake(),
    });
    // Several instances on PostgreSQL share one key (links and sessions signed by one verify on all); one instance keeps it in dataDir.
    const webKey = stores.backend === "postgres" ? await sharedWebSecret(config, inboundStore, Date.now()) : webSecret(config, join(dataDir, "web.key"));
    // The REST API and web console (src/web/) answer every path the HTTP server's own routes do not.
    const web = await createWebApp({
      config,
      logger: log.child({ component: "web" }),
      outbound: outboundStore,
      inbound: inboundStore,
      spool,
      web: stores.web,
      audit,
      client,
      intake: { config, spool, store: outboundStore, policy, numberCheck, logger: log.child({ component: "web" }), onAccepted: () => pipeline.wake() },
      inboundDir: join(dataDir, "inbound"),
      uploadDir: join(dataDir, "uploads"),
      thumbDir: join(dataDir, "thumbs"),
      key: webKey,
      retry: async (id) => {
        const r = await retryJob({ outbound: outboundStore, documents: stores.documents }, id);
        pipeline.wake();
        return r;
      },
      wakeOutbound: () => pipeline.wake(),
      wakeInbound: () => pipeline.wakeInbound(),
      checks: async () => {
        const out: Record<string, string> = {};
        const run = async (name: string, f: () => Promise<unknown>): Promise<void> => {
          try {
            await f();
            out[name] = "ok";
          } catch (err) {
            out[name] = errorMessage(err);
          }
        };
        await Promise.all([run("store", () => stores.ping()), run("ringcentral", () => client.ensureAuthenticated()), run("mail", () => mail.verify())]);
        return out;
      },
      doctor: () => runDoctor(config, { timeoutMs: DOCTOR_TIMEOUT_MS }),
      now: Date.now,
    });
    steps.push({ name: "web", close: () => web.close() });
    http.fallback((req, res) => web.handle(req, res));

    const smtpAddress = await smtp.listen();
    smtpListening = true;
    steps.push({ name: "smtp", close: () => smtp.close(SMTP_SHUTDOWN_MS) });
    const httpAddress = await http.listen();
    steps.push({ name: "http", close: () => http.close() });
    if (pipelineMode === "inline") {
      const inline = await startPipeline({ config, stores, spool, mail, alerts, audit, client, metrics, logger: log, http, dataDir });
      steps.push(...inline.steps);
      pipeline.attach(inline);
    } else if (pipelineMode === "process") {
      const child = new PipelineSupervisor({ config, rc, logger: log, metrics });
      steps.push({ name: "pipeline", close: () => child.stop() });
      // In the background: SMTP answers (and queues) while the pipeline process starts.
      child.start();
      pipeline.attach(child);
      wirePipelineProcess(child, { http, dependencies, metrics, config });
    } else if (stores.backend === "postgres") {
      // --role intake: the pipelines run elsewhere; on PostgreSQL they hear of each job at once.
      const notify = inboundLeadership(stores);
      pipeline.attach({ wake: () => void notify.wake(OUTBOUND_WAKE_TOPIC).catch(() => undefined), wakeInbound: () => undefined });
    }
    life.ordered();

    log.info(
      { event: "daemon.started", smtp: smtpAddress, http: httpAddress, sandbox, dataDir, faxDomains: config.fax.domains, mail: mail.description },
      `faxbridge listening: SMTP ${smtpAddress.host}:${smtpAddress.port}, HTTP ${httpAddress.host}:${httpAddress.port}`,
    );
    if (sandbox) {
      const domain = config.fax.domains[0] ?? "fax.local";
      log.warn(
        { event: "daemon.sandbox", emulator: emulatorUrl },
        `SANDBOX MODE: no RingCentral credentials (RC_CLIENT_ID, RC_JWT), so faxes go to the built-in RingCentral emulator at ${emulatorUrl ?? "?"}. ` +
          `Try: swaks --server ${smtpAddress.host}:${smtpAddress.port} --to 12125550123@${domain} --attach @some.pdf ; ` +
          `inject a received fax: curl --data-binary @some.pdf -H 'content-type: application/pdf' '${emulatorUrl ?? ""}/emulator/inbound-faxes?from=%2B15557654321&to=%2B15551230000'. ` +
          `Mail faxbridge sends lands in ${config.mail.url === "" ? join(dataDir, "mailbox") : mail.description}.`,
      );
    }

    if (config.mail.url !== "") {
      const local = [config.mail.from, config.inbound.defaultTo, ...config.inbound.routes.flatMap((r) => r.mailTo)].filter(isLocalDomain);
      if (local.length > 0) {
        log.warn(
          { event: "daemon.local_addresses", addresses: local },
          `${local.join(", ")}: local-only address(es) with a real mail server (mail.from is also the Return-Path); the server will likely refuse them and received faxes would be dead-lettered. Set FAXBRIDGE_MAIL_FROM, FAXBRIDGE_INBOUND_TO and inbound.routes; faxbridge doctor checks them.`,
        );
      }
    }

    if (opts.signals === true) life.installSignalHandlers();
    const close = (reason?: string): Promise<void> => life.close(reason);
    const finished = life.finished;

    return { smtp: smtpAddress, http: httpAddress, emulatorUrl, sandbox, close, finished };
  } catch (err) {
    log.fatal({ event: "daemon.start_failed", err: errorMessage(err) }, `cannot start: ${errorMessage(err)}`);
    await life.cleanup();
    throw err;
  }
}
