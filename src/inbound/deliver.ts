/**
 * Delivers discovered faxes: claim due rows with a lease, download each
 * document to `<dataDir>/inbound/<id>/` (streamed, size-checked), route,
 * compose, send, and only after the mail server's 250 mark the fax delivered.
 * Failures are classified: temporary → retry per `inbound.retrySchedule` with
 * jitter; permanent or schedule exhausted → dead (error-level `inbound.dead`).
 */
import type { AlertSink } from "../ops/alerts.js";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Config } from "../config/schema.js";
import { errorMessage, NamedError } from "../errors.js";
import { extensionForMime } from "../fax/files.js";
import { failureOf, isTransient, type Failure } from "../failure.js";
import type { Logger } from "../log.js";
import type { AuditSink } from "../ops/audit.js";
import type { MailSender } from "../mail/transport.js";
import { MailDeliveryError } from "../mail/transport.js";
import type { Metrics } from "../metrics.js";
import type { MessageApi, SessionApi } from "../rc/api.js";
import { RcApiError, RcNetworkError, RcProtocolError } from "../rc/errors.js";
import { InboundStateError, type InboundAttachment, type InboundFax, type InboundStore } from "../store/ports.js";
import { ClaimLoop } from "../pipeline/claim-loop.js";
import { storeLease } from "../pipeline/leases.js";
import { delayFor, parseSchedule } from "../util/schedule.js";
import { composeInboundMail, type DownloadedFile } from "./compose.js";
import { routeFax } from "./route.js";
import { toNewFax } from "./sync.js";

export type DeliveryClient = Pick<MessageApi, "downloadContent" | "getMessage" | "setReadStatus"> & Pick<SessionApi, "ownerId">;

export interface InboundDeliveryDeps {
  readonly config: Config;
  readonly client: DeliveryClient;
  readonly store: InboundStore;
  readonly mail: MailSender;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
  /** Faxes processed at the same time. */
  readonly concurrency: number;
  /** How long a claim holds a fax before another worker may take it (a crashed worker's claim expires); renewed every third of it while the fax is delivered. */
  readonly leaseMs: number;
  /** In [0,1]: retry delays are drawn from [d·(1−jitter), d]. */
  readonly jitter: number;
  /** Where delivered and dead faxes are recorded (never contents). */
  readonly audit?: AuditSink;
  /** Link-only delivery: a signed link to the fax in the web console, when web.publicUrl is set. */
  readonly link?: (faxId: string) => { url: string; expiresAt: number };
  /** Told about dead letters (mail.adminTo). */
  readonly alerts?: AlertSink;
}

/** How often an idle delivery loop checks the store for work it was not told about. */
const IDLE_POLL_MS = 5_000;

/** The document was shorter or longer than RingCentral said: download again later. */
export class DownloadMismatchError extends NamedError {}

/** The fax has nothing to deliver (no document) even after re-reading it. */
export class NoDocumentError extends NamedError {}

/** Transient or permanent? Pure, so it can be tested table-style. */
export function classifyDeliveryError(err: unknown): Failure {
  if (err instanceof MailDeliveryError) {
    const code = err.responseCode !== undefined ? `mail ${err.responseCode}` : "mail";
    return { kind: failureOf(err).kind, reason: code };
  }
  if (err instanceof RcApiError) {
    const reason = `ringcentral ${err.status}${err.errorCode !== undefined ? ` ${err.errorCode}` : ""}`;
    // The message or its document is gone, or RingCentral refuses the request as malformed: retrying cannot help.
    if (err.status === 404 || err.status === 410 || err.status === 400) return { kind: "permanent", reason };
    return err.retryAfterMs !== undefined ? { kind: "transient", retryAfterMs: err.retryAfterMs, reason } : { kind: "transient", reason };
  }
  if (err instanceof RcNetworkError) return { kind: "transient", reason: "ringcentral network" };
  if (err instanceof RcProtocolError) return { kind: "transient", reason: "ringcentral protocol" };
  if (err instanceof DownloadMismatchError) return { kind: "transient", reason: "download size mismatch" };
  if (err instanceof NoDocumentError) return { kind: "transient", reason: "no document yet" };
  // Local trouble (disk full, permissions) or something unforeseen: worth another try.
  return { kind: "transient", reason: "local" };
}

class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** The documents of a fax: its rendered documents, or every attachment when none is typed so. */
function documentsOf(attachments: readonly InboundAttachment[]): readonly InboundAttachment[] {
  const rendered = attachments.filter((a) => a.type === "RenderedDocument");
  return rendered.length > 0 ? rendered : attachments;
}

export class InboundDelivery {
  readonly #deps: InboundDeliveryDeps;
  readonly #log: Logger;
  readonly #schedule: readonly number[];
  readonly #dir: string;
  readonly #loop: ClaimLoop<InboundFax, "deliver">;

  constructor(deps: InboundDeliveryDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
    this.#schedule = parseSchedule(deps.config.inbound.retrySchedule);
    this.#dir = join(deps.config.dataDir, "inbound");
    this.#loop = new ClaimLoop<InboundFax, "deliver">({
      lanes: ["deliver"],
      now: deps.now,
      // A fax still being worked on here whose lease ran out (a very slow download) is not started twice.
      reclaimed: "skip",
      unref: true,
      id: (fax) => fax.id,
      plan: (busy) => [["deliver", deps.concurrency - busy.deliver]],
      claim: (_lane, limit, now) => deps.store.claimDue({ limit, leaseMs: deps.leaseMs, now }),
      run: (fax, _lane, signal) => this.deliverOne(fax, signal),
      onError: (fax, err) => {
        this.#log.error({ event: "inbound.delivery_crashed", faxId: fax.id, err }, "inbound delivery failed unexpectedly");
      },
      nextDelay: async () => {
        if (this.#loop.size >= deps.concurrency) return undefined;
        // Also look again after IDLE_POLL_MS: an operator's `faxbridge inbound redeliver`
        // changes the store from another process and wakes nothing here.
        const at = await deps.store.nextWakeAt();
        const due = at === undefined ? IDLE_POLL_MS : Math.max(50, at - deps.now());
        return Math.min(due, IDLE_POLL_MS);
      },
      onRoundError: (err) => {
        this.#log.error({ event: "inbound.delivery_loop_failed", err }, "inbound delivery loop failed; retrying shortly");
        return 1000;
      },
      lease: storeLease<InboundFax>(deps.store, {
        ms: deps.leaseMs,
        lostError: (fax, holder) => new InboundStateError(fax.id, `fax ${fax.id}: the lease of ${deps.store.owner} was lost${holder === null ? "" : ` (now held by ${holder})`}`),
        onRenewError: (fax, err) => this.#log.warn({ event: "inbound.lease_renew_failed", faxId: fax.id, err }, "could not renew a received fax's lease; trying again at the next beat"),
        onLost: (fax, reason) =>
          this.#log.warn({ event: "inbound.lease_lost", faxId: fax.id, reason: reason.message }, "another instance took the received fax over; this one stops delivering it"),
      }),
    });
  }

  /** Directory for a fax's downloaded documents. */
  faxDir(faxId: string): string {
    return join(this.#dir, faxId);
  }

  start(): void {
    this.#loop.start();
    this.wake();
  }

  /** Look for due work now (after a sync found faxes, a fax finished, a timer fired). */
  wake(): void {
    this.#loop.wake();
  }

  /** Stop claiming; resolves when faxes being delivered are finished (delivered or deferred). */
  async stop(): Promise<void> {
    await this.#loop.stop();
  }

  /**
   * Deliver one claimed fax; never throws for delivery failures (they defer or kill the fax).
   * `signal` fires when another instance took the fax over (lost lease): the download stops,
   * no mail goes out, and the fax is left to its new holder.
   */
  async deliverOne(fax: InboundFax, signal?: AbortSignal): Promise<void> {
    const cfg = this.#deps.config;
    const log = this.#log.child({ faxId: fax.id, rcMessageId: fax.rcMessageId, extension: fax.extension });
    const started = this.#deps.now();
    try {
      const route = routeFax(
        { to: fax.message.to, extensions: this.#extensionNames(fax.extension), from: fax.message.from },
        cfg.inbound.routes,
        cfg.inbound.defaultTo,
      );
      if (!route.matched) {
        log.info({ event: "inbound.unrouted", from: fax.message.from, to: fax.message.to, mailTo: route.mailTo }, "no inbound route matched; using inbound.defaultTo");
      }
      const files = await this.#download(fax, log, signal);
      const faxDomain = cfg.fax.domains[0] ?? "fax.local";
      const mail = composeInboundMail(
        {
          fax,
          mailTo: route.mailTo,
          files,
          ...(cfg.inbound.delivery === "link" ? { storedDir: this.faxDir(fax.id) } : {}),
          ...(cfg.inbound.delivery === "link" && this.#deps.link !== undefined ? { link: this.#deps.link(fax.id) } : {}),
        },
        {
          from: cfg.mail.from,
          faxDomain,
          defaultCountry: cfg.fax.defaultCountry,
          subjectTemplate: cfg.inbound.subjectTemplate,
          delivery: cfg.inbound.delivery,
          timeZone: cfg.mail.timeZone,
        },
      );
      signal?.throwIfAborted();
      const sent = await this.#deps.mail.send(mail);
      const now = this.#deps.now();
      await this.#deps.store.markDelivered(fax.id, { route: route.route, mailTo: route.mailTo }, now);
      this.#audit(fax, "delivered", route.mailTo, null);
      this.#deps.metrics.inboundDelivered.inc();
      const receivedAt = Date.parse(fax.message.creationTime);
      if (!Number.isNaN(receivedAt)) this.#deps.metrics.inboundLatency.observe(Math.max(0, now - receivedAt) / 1000);
      log.info(
        { event: "inbound.delivered", mailTo: route.mailTo, route: route.route, response: sent.response, attempts: fax.attempts + 1, ms: now - started },
        "received fax mailed",
      );
      // Link-only mail points at the stored PDF, and a retention period keeps documents: the janitor removes those later.
      if (cfg.inbound.delivery === "attachment" && cfg.retention.documentsHours === 0) await this.#removeFiles(fax.id, log);
      if (cfg.inbound.markAsRead) {
        try {
          await this.#deps.client.setReadStatus(fax.rcMessageId, "Read", fax.extension);
          log.debug({ event: "inbound.marked_read" }, "fax marked as read at RingCentral");
        } catch (err) {
          log.warn({ event: "inbound.mark_read_failed", err }, "could not mark the fax as read at RingCentral (it was delivered)");
        }
      }
    } catch (err) {
      if (signal?.aborted === true) return;
      await this.#fail(fax, err, log);
    }
  }

  /** The names an extension goes by in the configuration: its id, and "~" when it is the JWT owner's. */
  #extensionNames(extension: string): string[] {
    const owner = this.#deps.client.ownerId;
    return owner !== undefined && owner === extension ? [extension, "~"] : [extension];
  }

  async #fail(fax: InboundFax, err: unknown, log: Logger): Promise<void> {
    const c = classifyDeliveryError(err);
    const now = this.#deps.now();
    const attempt = fax.attempts + 1;
    const retry = isTransient(c);
    const delay = retry ? delayFor(this.#schedule, attempt, this.#deps.jitter) : undefined;
    const text = `${c.reason}: ${errorMessage(err)}`;
    if (delay !== undefined) {
      const wait = Math.max(delay, c.retryAfterMs ?? 0);
      await this.#deps.store.defer(fax.id, now + wait, text, now);
      log.warn({ event: "inbound.deferred", attempt, retryInMs: wait, reason: c.reason, err }, "fax delivery deferred");
      this.#loop.wakeIn(wait);
      return;
    }
    await this.#deps.store.markDead(fax.id, text, now);
    this.#audit(fax, "dead", [], text);
    this.#deps.metrics.inboundFailed.inc();
    log.error(
      { event: "inbound.dead", attempt, reason: c.reason, permanent: !retry, err, alert: true },
      retry ? "fax delivery gave up after every retry" : "fax delivery failed permanently",
    );
    this.#deps.alerts?.({
      kind: "inbound_dead",
      summary: `received fax from ${fax.message.from || "unknown"} could not be mailed`,
      details: { fax: fax.id, "RingCentral message": fax.rcMessageId, from: fax.message.from, to: fax.message.to.join(", "), attempts: attempt, reason: text },
    });
    await this.#removeFiles(fax.id, log);
  }

  #audit(fax: InboundFax, outcome: "delivered" | "dead", mailTo: readonly string[], error: string | null): void {
    this.#deps.audit?.record({
      type: "fax.inbound",
      id: fax.id,
      rcMessageId: fax.rcMessageId,
      extension: fax.extension,
      from: fax.message.from,
      to: fax.message.to,
      pages: fax.message.pages ?? null,
      mailTo,
      outcome,
      error,
      receivedAt: fax.message.creationTime,
    });
  }

  async #removeFiles(faxId: string, log: Logger): Promise<void> {
    try {
      await rm(this.faxDir(faxId), { recursive: true, force: true });
    } catch (err) {
      log.warn({ event: "inbound.cleanup_failed", err }, "could not remove downloaded fax files");
    }
  }

  /** The fax's documents on disk, downloading those not yet complete there. */
  async #download(fax: InboundFax, log: Logger, signal: AbortSignal | undefined): Promise<DownloadedFile[]> {
    let docs = documentsOf(fax.message.attachments);
    if (docs.length === 0) {
      // The sync record had no attachment list (should not happen for a received fax): read the message.
      const msg = await this.#deps.client.getMessage(fax.rcMessageId, fax.extension);
      docs = documentsOf(toNewFax(msg, fax.extension, this.#deps.now()).message.attachments);
      if (docs.length === 0) throw new NoDocumentError(`RingCentral message ${fax.rcMessageId} has no document`);
    }
    const dir = this.faxDir(fax.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const out: DownloadedFile[] = [];
    for (const [i, att] of docs.entries()) {
      const final = join(dir, `${i + 1}-${att.id.replace(/[^A-Za-z0-9_-]/g, "_")}.${extensionForMime(att.contentType ?? "")}`);
      if (att.size !== undefined) {
        // Kept from an earlier attempt whose mail failed: complete files only ever exist under the final name.
        const existing = await stat(final).catch(() => undefined);
        if (existing?.isFile() === true && existing.size === att.size) {
          out.push({ path: final, contentType: att.contentType ?? "application/pdf", size: existing.size });
          continue;
        }
      }
      out.push(await this.#downloadOne(att, final, log, signal));
    }
    return out;
  }

  async #downloadOne(att: InboundAttachment, final: string, log: Logger, signal: AbortSignal | undefined): Promise<DownloadedFile> {
    const started = this.#deps.now();
    const tmp = `${final}.part`;
    const res = await this.#deps.client.downloadContent(att.uri, signal !== undefined ? { signal } : undefined);
    const counter = new ByteCounter();
    try {
      await pipeline(res.body, counter, createWriteStream(tmp, { mode: 0o600 }), signal !== undefined ? { signal } : {});
      if (res.contentLength !== undefined && counter.bytes !== res.contentLength) {
        throw new DownloadMismatchError(`document ${att.id}: got ${counter.bytes} bytes, Content-Length said ${res.contentLength}`);
      }
      if (att.size !== undefined && counter.bytes !== att.size) {
        throw new DownloadMismatchError(`document ${att.id}: got ${counter.bytes} bytes, the message said ${att.size}`);
      }
      await rename(tmp, final);
    } catch (err) {
      await unlink(tmp).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") log.warn({ event: "inbound.cleanup_failed", err: e }, "could not remove a partial download");
      });
      throw err;
    }
    const served = res.contentType.split(";")[0]?.trim().toLowerCase() ?? "";
    const contentType = served !== "" && served !== "application/octet-stream" ? served : (att.contentType ?? "application/pdf");
    log.info({ event: "inbound.downloaded", attachmentId: att.id, bytes: counter.bytes, contentType, ms: this.#deps.now() - started }, "fax document downloaded");
    return { path: final, contentType, size: counter.bytes };
  }
}
