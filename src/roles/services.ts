/**
 * What every daemon role builds the same way: outgoing mail, admin alerts,
 * the audit log and the RingCentral extension pool. The intake needs them for
 * the console, the API and readiness; the pipeline to send and deliver.
 */
import { join } from "node:path";
import { splitJwts, type Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import { createMailSender, SANDBOX_SUBJECT_TAG, tagSubjects, type MailSender } from "../mail/transport.js";
import type { Metrics } from "../metrics.js";
import { AuditLog } from "../ops/audit.js";
import { AdminAlerts, type AlertSink } from "../ops/alerts.js";
import { openRcPool } from "../rc/open-pool.js";
import type { RcPool } from "../rc/pool.js";
import type { CloseStep } from "./pipeline.js";

/** Where RingCentral is and with which credentials (the built-in emulator's in sandbox mode). */
export interface RcTarget {
  readonly serverUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly jwt: string;
  /** Origins attachment content may be fetched from. */
  readonly mediaOrigins: readonly string[];
}

/** Credentials the built-in emulator accepts in sandbox mode (it accepts any). */
const SANDBOX_CREDENTIALS = { clientId: "sandbox-client", clientSecret: "sandbox-secret", jwt: "sandbox-jwt" } as const;

/**
 * The RingCentral this process talks to: the configured one, or in sandbox
 * mode a built-in emulator started here (closed by the "emulator" step).
 */
export async function rcTarget(config: Readonly<Config>, sandbox: boolean, log: Logger, steps: CloseStep[]): Promise<{ rc: RcTarget; emulatorUrl: string | undefined }> {
  const configured = { serverUrl: config.ringcentral.serverUrl, clientId: config.ringcentral.clientId, clientSecret: config.ringcentral.clientSecret, jwt: config.ringcentral.jwt };
  if (!sandbox) return { rc: { ...configured, mediaOrigins: [...config.ringcentral.mediaOrigins] }, emulatorUrl: undefined };
  const { startEmulator } = await import("../emulator/index.js");
  const emulator = await startEmulator({ port: config.emulator.port, logger: log });
  steps.push({ name: "emulator", close: () => emulator.close() });
  return {
    rc: { serverUrl: emulator.url, ...SANDBOX_CREDENTIALS, mediaOrigins: [...config.ringcentral.mediaOrigins, emulator.mediaUrl] },
    emulatorUrl: emulator.url,
  };
}

export interface Services {
  readonly mail: MailSender;
  readonly alerts: AlertSink;
  readonly audit: AuditLog;
  readonly client: RcPool;
  /** epoch ms and status of the last RingCentral call (status 0: no answer). */
  lastRcCall(): { at: number; status: number } | undefined;
}

export interface ServicesOptions {
  readonly config: Readonly<Config>;
  readonly rc: RcTarget;
  readonly sandbox: boolean;
  readonly dataDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Close steps are pushed here as each part opens ("mail", "alerts", "ringcentral", "ringcentral-holds", "audit"). */
  readonly steps: CloseStep[];
}

export async function openServices(o: ServicesOptions): Promise<Services> {
  const { config, rc, sandbox, dataDir, metrics, steps } = o;
  const log = o.logger;
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
    mediaOrigins: [...rc.mediaOrigins],
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
  return { mail, alerts, audit, client, lastRcCall: () => lastRcCall };
}
