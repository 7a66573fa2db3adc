import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { splitJwts, type Config } from "./config/schema.js";
import { resolveConfig } from "./config/resolve.js";
import { errorMessage } from "./errors.js";
import { HttpServer } from "./http/server.js";
import type { Logger } from "./log.js";
import { isLocalDomain } from "./mail/probe.js";
import { createMailSender, SANDBOX_SUBJECT_TAG, tagSubjects, type MailSender } from "./mail/transport.js";
import { Metrics } from "./metrics.js";
import { AuditLog } from "./ops/audit.js";
import { AdminAlerts, type AlertSink } from "./ops/alerts.js";
import { Janitor } from "./ops/janitor.js";
import { wireReadiness } from "./ops/readiness.js";
import { InboundService } from "./inbound/service.js";
import { retryJob } from "./outbound/operator.js";
import { OutboundWorker } from "./outbound/worker.js";
import { createSmtpPolicy } from "./policy/index.js";
import { receivedFaxMailedTo } from "./policy/forwarding.js";
import { openRcPool } from "./rc/open-pool.js";
import type { NumberCheck } from "./fax/number.js";
import { createSmtpServer, type FaxSmtpServer } from "./smtp/server.js";
import { Spool } from "./spool/spool.js";
import { inboundLeadership, openStores } from "./store/open.js";
import { runDoctor } from "./cli/doctor.js";
import { sharedWebSecret, webSecret } from "./web/auth.js";
import { createWebApp } from "./web/index.js";
import { linkBuilder } from "./web/links.js";
import { DOCTOR_TIMEOUT_MS, SHUTDOWN_DEADLINE_MS, SMTP_SHUTDOWN_MS } from "./tunables.js";

/** How long a graceful shutdown may take before the process exits anyway. */

/** Credentials the built-in emulator accepts in sandbox mode (it accepts any). */
const SANDBOX_CREDENTIALS = { clientId: "sandbox-client", clientSecret: "sandbox-secret", jwt: "sandbox-jwt" } as const;

export interface DaemonOptions {
  logger: Logger;
  /** Handle SIGTERM/SIGINT (the CLI does; tests that embed the daemon don't). */
  signals?: boolean;
  /** A metrics registry (tests pass their own). */
  metrics?: Metrics;
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
 * → mail transport → SMTP intake → outbound worker → inbound service → HTTP.
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

  const steps: { name: string; close: () => Promise<void> | void }[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of steps.reverse()) {
      try {
        await step.close();
      } catch (err) {
        log.error({ event: "shutdown.step_failed", step: step.name, err }, `closing ${step.name} failed`);
      }
    }
    steps.length = 0;
  };

  try {
    const sandbox = resolved.sandbox;
    let rc = { serverUrl: config.ringcentral.serverUrl, clientId: config.ringcentral.clientId, clientSecret: config.ringcentral.clientSecret, jwt: config.ringcentral.jwt };
    let emulatorUrl: string | undefined;
    const mediaOrigins = [...config.ringcentral.mediaOrigins];
    if (sandbox) {
      const { startEmulator } = await import("./emulator/index.js");
      const emulator = await startEmulator({ port: config.emulator.port, logger: log });
      steps.push({ name: "emulator", close: () => emulator.close() });
      emulatorUrl = emulator.url;
      mediaOrigins.push(emulator.mediaUrl);
      rc = { serverUrl: emulator.url, ...SANDBOX_CREDENTIALS };
    }

    // The daemon owns its store: leases still set belong to a process that died, and are released at open.
    const stores = await openStores(config, log, { role: "daemon" });
    steps.push({ name: "database", close: () => stores.close() });
    const outboundStore = stores.outbound;
    const inboundStore = stores.inbound;
    const spool = new Spool({ documents: stores.documents, logger: log });
    await spool.recover(outboundStore);

    let lastRcCall: { at: number; status: number } | undefined;
    const transport: MailSender = createMailSender(config.mail.url, join(dataDir, "mailbox"), log.child({ component: "mail" }));
    // A sandbox sends no real fax: mail it sends to real people says so in every subject.
    const mail = sandbox && config.mail.url !== "" ? tagSubjects(transport, SANDBOX_SUBJECT_TAG) : transport;
    steps.push({ name: "mail", close: () => mail.close() });
    const adminAlerts = new AdminAlerts({
      adminTo: config.mail.adminTo,
      from: config.mail.from,
      mail,
      logger: log.child({ component: "alerts" }),
      metrics,
      hostname: config.smtp.hostname,
    });
    steps.push({ name: "alerts", close: () => adminAlerts.close() });
    const alerts: AlertSink = adminAlerts.sink;
    // One session per JWT (RC_JWT may list several: the extension pool); one JWT is a pool of one.
    const { pool: client } = openRcPool({
      serverUrl: rc.serverUrl,
      clientId: rc.clientId,
      clientSecret: rc.clientSecret,
      jwts: splitJwts(rc.jwt),
      logger: log,
      // The token pair outlives restarts (the emulator of sandbox mode does not).
      ...(sandbox ? {} : { tokenDir: dataDir }),
      rateLimits: config.ringcentral.rateLimits,
      requestTimeoutMs: config.ringcentral.requestTimeoutMs,
      onAuthResult: (result, member) => {
        if (result.ok) return;
        metrics.rcAuthFailures.inc({ status: String(result.status), extension: member.extension });
        alerts({
          kind: "rc_auth_refused",
          summary: "RingCentral refused faxbridge's credentials",
          details: { status: result.status, error: result.errorCode, server: config.ringcentral.serverUrl, ...(member.index > 0 && { poolMember: member.index + 1 }) },
        });
      },
      faxLayout: config.ringcentral.faxLayout,
      mediaOrigins,
      onCall: (call, member) => {
        lastRcCall = { at: Date.now(), status: call.status };
        metrics.recordRcCall(call, member.extension);
        metrics.rcRemaining.set({ group: call.group, extension: member.extension }, member.client.rateLimitState()[call.group].remaining);
      },
    });
    steps.push({ name: "ringcentral", close: () => client.close() });
    steps.push({ name: "ringcentral-holds", close: () => client.releaseHeldWaits() });


    const audit = await AuditLog.open(join(dataDir, "audit.jsonl"), log);
    steps.push({ name: "audit", close: () => audit.close() });

    const http = new HttpServer({ host: config.http.host, port: config.http.port, logger: log.child({ component: "http" }), metrics });
    let smtpListening = false;
    wireReadiness({
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
      lastRcCall: () => lastRcCall,
    });

    const worker = new OutboundWorker({ config, store: outboundStore, quota: stores.quota, spool, client, mail, metrics, logger: log, audit, alerts });
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
      onAccepted: () => worker.wake(),
    });
    // Several instances on PostgreSQL share one key (links and sessions signed by one verify on all); one instance keeps it in dataDir.
    const webKey = stores.backend === "postgres" ? await sharedWebSecret(config, inboundStore, Date.now()) : webSecret(config, join(dataDir, "web.key"));
    const link = linkBuilder(config.web.publicUrl, webKey, config.inbound.linkTtlHours);
    // Several instances on PostgreSQL: one leads inbound sync, the subscription and the WebSocket.
    const leadership = stores.backend === "postgres" ? inboundLeadership(stores) : undefined;
    // Queue depth and age describe the shared database: the leader alone exports them.
    if (leadership !== undefined) metrics.sources.queueReporter = () => leadership.isLeader();
    const inbound = new InboundService({
      config,
      client,
      store: inboundStore,
      mail,
      http,
      metrics,
      logger: log,
      audit,
      alerts,
      ...(link !== undefined && { link }),
      ...(leadership !== undefined && { leadership }),
    });
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
      intake: { config, spool, store: outboundStore, policy, numberCheck, logger: log.child({ component: "web" }), onAccepted: () => worker.wake() },
      inboundDir: join(dataDir, "inbound"),
      uploadDir: join(dataDir, "uploads"),
      thumbDir: join(dataDir, "thumbs"),
      key: webKey,
      retry: async (id) => {
        const r = await retryJob({ outbound: outboundStore, documents: stores.documents }, id);
        worker.wake();
        return r;
      },
      wakeOutbound: () => worker.wake(),
      wakeInbound: () => inbound.wakeDelivery(),
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

    const janitor = new Janitor({
      outbound: outboundStore,
      inbound: inboundStore,
      quota: stores.quota,
      spool,
      inboundDir: join(dataDir, "inbound"),
      retention: config.retention,
      linkDelivery: config.inbound.delivery === "link",
      logger: log,
    });

    const smtpAddress = await smtp.listen();
    smtpListening = true;
    steps.push({ name: "smtp", close: () => smtp.close(SMTP_SHUTDOWN_MS) });
    const httpAddress = await http.listen();
    steps.push({ name: "http", close: () => http.close() });
    await worker.start();
    steps.push({ name: "outbound", close: () => worker.stop() });
    // Notifications subscribe in the background: startup never waits for RingCentral's Auth group.
    if (leadership !== undefined) {
      await leadership.start();
      steps.push({ name: "leadership", close: () => leadership.stop() });
    }
    await inbound.start({ waitForNotifications: false });
    steps.push({ name: "inbound", close: () => inbound.stop() });
    janitor.start();
    steps.push({ name: "janitor", close: () => janitor.stop() });
    // Close order (reversed): stop taking work first, then the workers, then the stores.
    reorderForShutdown(steps, ["janitor", "ringcentral-holds", "inbound", "leadership", "smtp", "outbound", "http", "web", "alerts", "mail", "ringcentral", "audit", "database", "emulator"]);

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

    let resolveFinished: (code: number) => void = () => undefined;
    const finished = new Promise<number>((r) => (resolveFinished = r));
    let closing: Promise<void> | undefined;
    const close = (reason = "requested"): Promise<void> => {
      closing ??= (async () => {
        log.info({ event: "daemon.stopping", reason }, "shutting down");
        const timer = setTimeout(() => {
          log.error({ event: "daemon.shutdown_timeout", deadlineMs: SHUTDOWN_DEADLINE_MS }, "shutdown deadline passed; exiting");
          resolveFinished(1);
        }, SHUTDOWN_DEADLINE_MS);
        timer.unref();
        await cleanup();
        clearTimeout(timer);
        log.info({ event: "daemon.stopped" }, "stopped");
        log.flush();
        resolveFinished(0);
      })();
      return closing;
    };

    if (opts.signals === true) installSignalHandlers(close, log);

    return { smtp: smtpAddress, http: httpAddress, emulatorUrl, sandbox, close, finished };
  } catch (err) {
    log.fatal({ event: "daemon.start_failed", err: errorMessage(err) }, `cannot start: ${errorMessage(err)}`);
    await cleanup();
    throw err;
  }
}

function reorderForShutdown(steps: { name: string; close: () => Promise<void> | void }[], order: readonly string[]): void {
  // `cleanup` closes in reverse array order, so put the first-to-close last.
  steps.sort((a, b) => order.indexOf(b.name) - order.indexOf(a.name));
}

function installSignalHandlers(close: (reason: string) => Promise<void>, log: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      log.warn({ event: "daemon.forced_exit", signal }, "second signal: exiting now");
      log.flush();
      process.exit(130);
    }
    signalled = true;
    void close(signal);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}
