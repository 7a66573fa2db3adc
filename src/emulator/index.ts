import { mkdtemp, rm } from "node:fs/promises";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createLogger, silentLogger, type Logger } from "../log.js";
import { AuthStore } from "./auth.js";
import { DEFAULT_FAX_OUTCOMES, type FaxOutcome } from "./constants.js";
import { ExtensionRegistry } from "./extensions.js";
import { FaxService, type FaxTimings, type SentFaxRecord } from "./fax.js";
import type { RenderFormat } from "./render.js";
import { CallCounter, FaultBook } from "./faults.js";
import { RateLimiter } from "./ratelimit.js";
import { createServer } from "./server.js";
import { MessageStore } from "./store.js";
import { SubscriptionService } from "./subscriptions.js";
import { SyncService } from "./sync.js";
import { WebSocketGateway } from "./websocket.js";

export interface EmulatorOptions {
  host?: string;
  port?: number;
  /** Port of the media host (attachment content, a second origin); default any free port. */
  mediaPort?: number;
  limits?: Partial<Record<"Light" | "Medium" | "Heavy" | "Auth", number>>;
  windowSeconds?: number;
  penaltySeconds?: number;
  strictAuth?: { clientId: string; clientSecret: string; jwt: string };
  /**
   * JWTs that log in as extensions, in order: with `strictAuth`, its JWT is
   * extension 200000001 and these the next ones (and only these log in);
   * without, these are 200000001, 200000002, … and any other JWT becomes the
   * next new extension at its first login. Default none: every distinct JWT
   * gets an extension at its first login, the first one 200000001.
   */
  extensions?: string[];
  accessTokenTtlSeconds?: number;
  refreshTokenTtlSeconds?: number;
  /**
   * How long a sent fax stays Queued (after its sendTime, if any) and how long
   * each page takes to transmit before recipients reach their final status.
   * Default { queuedMs: 1500, pageMs: 0 }; RingCentral takes about a minute a page.
   */
  faxTimings?: Partial<FaxTimings>;
  /** Final per-recipient outcomes by number (see DEFAULT_FAX_OUTCOMES); everyone else ends Sent. */
  faxOutcomes?: Record<string, FaxOutcome>;
  /** The format sent faxes are stored in the message store (the extension's fax file format). Default pdf. */
  faxFormat?: RenderFormat;
  webhookBlacklistAfter?: number;
  /**
   * App permissions granted to every token (its `scope`), e.g. ["ReadMessages"].
   * Operations whose x-app-permission is missing answer 403 CMN-401
   * "[Faxes] permission required". Default: all permissions, nothing checked.
   */
  permissions?: string[];
  logger?: Logger;
}

export interface Emulator {
  readonly url: string;
  readonly port: number;
  /** The media host's origin: attachment URIs point here (trust it with ringcentral.mediaOrigins). */
  readonly mediaUrl: string;
  readonly mediaPort: number;
  close(): Promise<void>;
}

/**
 * Starts a RingCentral API emulator (see src/emulator/README in the report):
 * OAuth, fax send, message store, message-sync, subscriptions (WebHook and
 * WebSocket), rate limits, plus a control API under /emulator.
 *
 * Each distinct JWT logs in as its own extension of the one account (own
 * message store, sync tokens, subscriptions and rate-limit buckets): the
 * first 200000001, then 200000002, … (see ExtensionRegistry).
 *
 * Fax outcomes by destination: +15550000001 → SendingFailed/LineBusy,
 * +15550000002 → SendingFailed/NoAnswer, plus `faxOutcomes`; every other
 * number goes Queued → Sent, as RingCentral reports a fax that went through.
 */
export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const log = (opts.logger ?? silentLogger()).child({ component: "rc-emulator" });
  const filesDir = await mkdtemp(join(tmpdir(), "rc-emulator-"));
  let baseUrl = "";
  const base = (): string => baseUrl;
  // Scripted outcomes (PUT /emulator/fax-outcomes): one outcome, or a sequence taken one per transmission (the last repeats).
  let extraOutcomes: Record<string, FaxOutcome[]> = {};
  const outcomes = (): Record<string, FaxOutcome> => {
    const heads: Record<string, FaxOutcome> = {};
    for (const [n, seq] of Object.entries(extraOutcomes)) if (seq[0] !== undefined) heads[n] = seq[0];
    return { ...DEFAULT_FAX_OUTCOMES, ...(opts.faxOutcomes ?? {}), ...heads };
  };
  const outcomeUsed = (phoneNumber: string): void => {
    const seq = extraOutcomes[phoneNumber];
    if (seq !== undefined && seq.length > 1) seq.shift();
  };

  let mediaUrl = "";
  const subs = new SubscriptionService({ log, blacklistAfter: opts.webhookBlacklistAfter ?? 3 });
  const timings: FaxTimings = { queuedMs: 1500, pageMs: 0, ...opts.faxTimings };
  const sentFaxes: SentFaxRecord[] = [];
  // Each extension: its own message store, fax sender (one shared sent list) and message-sync; its events reach its subscriptions.
  const extensions = new ExtensionRegistry({
    strict: opts.strictAuth !== undefined,
    create: (info) => {
      const store = new MessageStore(Date.now, () => mediaUrl, info);
      const fax = new FaxService({ store, filesDir, timings, renderFormat: opts.faxFormat ?? "pdf", outcomes, outcomeUsed, log, sent: sentFaxes });
      store.on("change", (msg) => fax.onChange(msg));
      store.on("change", (msg, kind) => subs.onMessageChange(msg, kind));
      return { info, store, fax, sync: new SyncService(store) };
    },
  });
  if (opts.strictAuth !== undefined) extensions.register(opts.strictAuth.jwt);
  for (const jwt of opts.extensions ?? []) extensions.register(jwt);
  const auth = new AuthStore({
    strict: opts.strictAuth,
    accessTokenTtlSeconds: opts.accessTokenTtlSeconds ?? 3600,
    refreshTokenTtlSeconds: opts.refreshTokenTtlSeconds ?? 604800,
    permissions: opts.permissions,
    ownerOf: (jwt) => extensions.forJwt(jwt)?.info.extensionId,
  });
  const limiter = new RateLimiter({
    limits: { Light: 50, Medium: 40, Heavy: 10, Auth: 5, ...opts.limits },
    windowSeconds: opts.windowSeconds ?? 60,
    penaltySeconds: opts.penaltySeconds ?? 60,
  });
  const ws = new WebSocketGateway({ auth, subs, log, baseUrl: base });
  const faults = new FaultBook();
  const calls = new CallCounter();

  const server = createServer(
    {
      auth, limiter, ws, extensions, sentFaxes, subs, faults, calls, filesDir, log,
      setOutcomes: (o) => {
        extraOutcomes = Object.fromEntries(Object.entries(o).map(([n, v]) => [n, Array.isArray(v) ? [...v] : [v]]));
      },
      baseUrl: base,
    },
    base,
  );
  const mediaServer = createServer(
    {
      auth, limiter, ws, extensions, sentFaxes, subs, faults, calls, filesDir, log,
      setOutcomes: () => undefined,
      baseUrl: base,
    },
    () => mediaUrl,
    { media: true },
  );
  const host = opts.host ?? "127.0.0.1";
  server.listen(opts.port ?? 0, host);
  await once(server, "listening");
  mediaServer.listen(opts.mediaPort ?? 0, host);
  await once(mediaServer, "listening");
  const port = (server.address() as AddressInfo).port;
  const mediaPort = (mediaServer.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  baseUrl = `http://${urlHost}:${port}`;
  mediaUrl = `http://${urlHost}:${mediaPort}`;
  log.info({ event: "emulator.started", url: baseUrl, mediaUrl }, "RingCentral emulator listening");

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const ext of extensions.all()) ext.fax.close();
      await ws.close();
      server.closeAllConnections();
      mediaServer.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => mediaServer.close(() => resolve()));
      await subs.close();
      await rm(filesDir, { recursive: true, force: true });
      log.info({ event: "emulator.stopped" }, "RingCentral emulator stopped");
    })();
    return closing;
  };
  return { url: baseUrl, port, mediaUrl, mediaPort, close };
}

function intArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

/** `faxbridge emulator --port N [...]`: runs until SIGINT/SIGTERM. */
export async function runEmulatorCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "media-port": { type: "string" },
      "light-limit": { type: "string" },
      "medium-limit": { type: "string" },
      "heavy-limit": { type: "string" },
      "auth-limit": { type: "string" },
      "window-s": { type: "string" },
      "penalty-s": { type: "string" },
      "strict-client-id": { type: "string" },
      "strict-client-secret": { type: "string" },
      "strict-jwt": { type: "string" },
      "extension-jwt": { type: "string", multiple: true },
      "queued-ms": { type: "string" },
      "page-ms": { type: "string" },
      "fax-format": { type: "string" },
      permissions: { type: "string" },
    },
    strict: true,
  });
  // startEmulator adds component=rc-emulator itself (set here too, JSON lines carried it twice).
  const logger = createLogger();
  const opts: EmulatorOptions = { logger };
  if (values.host !== undefined) opts.host = values.host;
  const port = intArg("port", values.port);
  if (port !== undefined) opts.port = port;
  const mediaPort = intArg("media-port", values["media-port"]);
  if (mediaPort !== undefined) opts.mediaPort = mediaPort;
  const limits: NonNullable<EmulatorOptions["limits"]> = {};
  const setLimit = (k: "Light" | "Medium" | "Heavy" | "Auth", name: string, v: string | undefined): void => {
    const n = intArg(name, v);
    if (n !== undefined) limits[k] = n;
  };
  setLimit("Light", "light-limit", values["light-limit"]);
  setLimit("Medium", "medium-limit", values["medium-limit"]);
  setLimit("Heavy", "heavy-limit", values["heavy-limit"]);
  setLimit("Auth", "auth-limit", values["auth-limit"]);
  opts.limits = limits;
  const windowS = intArg("window-s", values["window-s"]);
  if (windowS !== undefined) opts.windowSeconds = windowS;
  const penaltyS = intArg("penalty-s", values["penalty-s"]);
  if (penaltyS !== undefined) opts.penaltySeconds = penaltyS;
  const id = values["strict-client-id"];
  const secret = values["strict-client-secret"];
  const jwt = values["strict-jwt"];
  if (id !== undefined || secret !== undefined || jwt !== undefined) {
    if (id === undefined || secret === undefined || jwt === undefined) {
      throw new Error("--strict-client-id, --strict-client-secret and --strict-jwt go together");
    }
    opts.strictAuth = { clientId: id, clientSecret: secret, jwt };
  }
  const extensionJwts = values["extension-jwt"];
  if (extensionJwts !== undefined) opts.extensions = extensionJwts;
  const queuedMs = intArg("queued-ms", values["queued-ms"]);
  const pageMs = intArg("page-ms", values["page-ms"]);
  opts.faxTimings = { ...(queuedMs !== undefined && { queuedMs }), ...(pageMs !== undefined && { pageMs }) };
  const format = values["fax-format"];
  if (format !== undefined) {
    if (format !== "pdf" && format !== "tiff") throw new Error(`--fax-format must be pdf or tiff, got ${JSON.stringify(format)}`);
    opts.faxFormat = format;
  }

  if (values.permissions !== undefined) {
    // "--permissions Faxes,ReadMessages": the token's scope; operations needing others answer 403.
    opts.permissions = values.permissions.split(/[\s,]+/).filter((p) => p !== "");
  }

  const emulator = await startEmulator(opts);
  logger.info({ event: "emulator.ready", url: emulator.url, mediaUrl: emulator.mediaUrl }, `RingCentral emulator at ${emulator.url}, media host ${emulator.mediaUrl}`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await emulator.close();
}
