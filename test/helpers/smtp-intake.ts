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
import type { InboundStore, OutboundStore } from "../../src/store/ports.js";
import { openTestStores, type TestSpool, type TestStores } from "./stores.js";

/**
 * SMTP intake on loopback as the daemon wires it (createSmtpServer with
 * createSmtpPolicy over the stores openStores gives and a spool, in a temp directory), for
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
  /** A postgres:// URL: the PostgreSQL backend (another instance on the same database) instead of SQLite in the directory. */
  databaseUrl?: string;
}

export interface Intake {
  readonly dir: string;
  readonly config: Config;
  readonly stores: TestStores;
  readonly store: OutboundStore;
  readonly inbound: InboundStore | undefined;
  readonly spool: TestSpool;
  readonly server: FaxSmtpServer;
  readonly port: number;
  readonly metrics: Metrics;
  /** Close the listener, the spool and the stores (the directory stays). */
  close(): Promise<void>;
}

export async function startIntake(opts: IntakeOptions = {}): Promise<Intake> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), opts.prefix ?? "faxbridge-smtp-")));
  const logger = opts.logger ?? silentLogger();
  const stores = await openTestStores(dir, { logger, groupCommit: opts.groupCommit ?? "worker", ...(opts.databaseUrl !== undefined && { databaseUrl: opts.databaseUrl }) });
  const { outbound: store, spool } = stores;
  const inbound = opts.inbound === true ? stores.inbound : undefined;
  const closeStores = (): Promise<void> => stores.close();
  const p = opts.policy;
  const config = configSchema.parse({
    dataDir: dir,
    ...(opts.databaseUrl !== undefined && { database: { url: opts.databaseUrl } }),
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
          quota: stores.quota,
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
    stores,
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
