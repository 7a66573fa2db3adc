import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DNSResolver } from "mailauth";
import { configSchema, type Config } from "../../src/config/schema.js";
import { silentLogger, type Logger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import { receivedFaxMailedTo } from "../../src/policy/forwarding.js";
import { createSmtpPolicy } from "../../src/policy/index.js";
import { createSmtpServer, type FaxSmtpServer } from "../../src/smtp/server.js";
import { Spool } from "../../src/spool/spool.js";
import { openDatabase, type Db } from "../../src/store/db.js";
import { SqliteInboundStore, inboundMigration } from "../../src/store/inbound.js";
import { SqliteOutboundStore, outboundMigration } from "../../src/store/outbound.js";

/**
 * SMTP intake on loopback as the daemon wires it (createSmtpServer with
 * createSmtpPolicy over a SQLite store and a spool in a temp directory), for
 * the tests that drive the real listener byte for byte.
 */
export interface IntakeOptions {
  smtp?: Record<string, unknown>;
  fax?: Record<string, unknown>;
  /** Policy settings (AUTH failures are not delayed unless `abuse.authFailureDelayMs` says so); false = no policy at all. */
  policy?: Record<string, unknown> | false;
  /** Reuse the data directory of an earlier intake (a restart). */
  dir?: string;
  /** Prefix of the temp directory. */
  prefix?: string;
  logger?: Logger;
  metrics?: Metrics;
  /** The policy's clock. */
  now?: () => number;
  /** DNS for sender verification. */
  resolver?: DNSResolver;
  /** Open the inbound store too, for the policy's forwarding rights. */
  inbound?: boolean;
  groupCommit?: "inline";
  onAccepted?: (id: string) => void;
}

export interface Intake {
  readonly dir: string;
  readonly config: Config;
  readonly db: Db;
  readonly store: SqliteOutboundStore;
  readonly inbound: SqliteInboundStore | undefined;
  readonly spool: Spool;
  readonly server: FaxSmtpServer;
  readonly port: number;
  readonly metrics: Metrics;
  /** Close the listener, the spool and the stores (the directory stays). */
  close(): Promise<void>;
}

export async function startIntake(opts: IntakeOptions = {}): Promise<Intake> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), opts.prefix ?? "faxbridge-smtp-")));
  const logger = opts.logger ?? silentLogger();
  const db = openDatabase(join(dir, "faxbridge.db"), opts.inbound === true ? [outboundMigration, inboundMigration] : [outboundMigration]);
  const store = new SqliteOutboundStore(db, { logger, ...(opts.groupCommit !== undefined && { groupCommit: opts.groupCommit }) });
  const inbound = opts.inbound === true ? new SqliteInboundStore({ db, logger }) : undefined;
  const spool = await Spool.open({ dataDir: dir, logger });
  const closeStores = async (): Promise<void> => {
    await spool.close();
    await store.close();
    db.close();
  };
  const p = opts.policy;
  const config = configSchema.parse({
    dataDir: dir,
    smtp: { port: 0, hostname: "fax.test", ...opts.smtp },
    fax: { domains: ["fax.local"], defaultCountry: "US", ...opts.fax },
    ...(p !== false && { policy: { ...p, abuse: { authFailureDelayMs: 0, ...(p?.abuse as object | undefined) } } }),
  });
  const metrics = opts.metrics ?? new Metrics({ defaultMetrics: false });
  const policy =
    p === false
      ? undefined
      : await createSmtpPolicy({
          config,
          logger,
          metrics,
          store,
          ...(opts.resolver !== undefined && { resolver: opts.resolver }),
          ...(opts.now !== undefined && { now: opts.now }),
          ...(inbound !== undefined && { receivedBy: receivedFaxMailedTo(inbound) }),
        }).catch(async (err: unknown) => {
          // A refused configuration: close what was opened, so the directory can be removed.
          await closeStores();
          throw err;
        });
  const server = createSmtpServer({
    config,
    spool,
    store,
    logger,
    numberCheck: "possible",
    metrics,
    ...(policy !== undefined && { policy }),
    ...(opts.onAccepted !== undefined && { onAccepted: opts.onAccepted }),
  });
  const { port } = await server.listen();
  return {
    dir,
    config,
    db,
    store,
    inbound,
    spool,
    server,
    port,
    metrics,
    close: async () => {
      await server.close(100);
      await closeStores();
    },
  };
}

/** How many mails the listener refused for `reason` (faxbridge_mails_refused_total). */
export async function refusalCount(metrics: Metrics, reason: string): Promise<number> {
  const v = (await metrics.mailsRefused.get()).values.find((x) => x.labels.reason === reason);
  return v?.value ?? 0;
}
