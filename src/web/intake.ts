/**
 * The one door from the web (REST API and console Send page) into the
 * outbound queue. It follows the SMTP intake step by step, with the same
 * policy object and the same wording of refusals:
 *
 *   identity (token / console user)  → policy.checkMailFrom
 *   each number                      → parseFaxAddress, maxRecipients, policy.checkRecipient
 *   documents (already streamed to disk by readUpload) → one MIME message,
 *                                      into the shared intake: disk floor, spool (fsynced),
 *   policy.beforeCommit (From rules, forwarding rights, quota reservation),
 *   store.insertReceived             → only then 202
 *
 * Steps after the message is composed are the shared intake
 * (src/intake/accept.ts), as for SMTP and `faxbridge send`; forwarding rights
 * are checked there by policy.beforeCommit, which reads the X-Fax-Forward-Of
 * header this composes, with the identity `who.user`.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { SMTPServerSession } from "smtp-server";
import MailComposer from "nodemailer/lib/mail-composer";
import type { Config } from "../config/schema.js";
import { SmtpReply } from "../errors.js";
import { REPLIES, replyLine, spoolFailure, type ReplySpec } from "../replies.js";
import { accept, IntakeError, type IntakeSender } from "../intake/accept.js";
import type { Logger } from "../log.js";
import { senderIdentity } from "../policy/identity.js";
import type { SmtpPolicy } from "../policy/index.js";
import { extensionForMime, extensionOf, safeFilename } from "../fax/files.js";
import { parseFaxAddress, type NumberCheck } from "../fax/number.js";
import { SpoolError, type Spool } from "../spool/spool.js";
import type { JobRecipient, OutboundStore } from "../store/ports.js";
import { newId } from "../util/ids.js";
import type { Identity } from "./auth.js";

export interface IntakeDeps {
  readonly config: Readonly<Config>;
  readonly spool: Spool;
  readonly store: OutboundStore;
  readonly policy: SmtpPolicy | undefined;
  readonly numberCheck: NumberCheck;
  readonly logger: Logger;
  readonly onAccepted?: (id: string) => void;
}

export interface UploadedFile {
  readonly path: string;
  readonly filename: string;
  readonly contentType: string;
  readonly size: number;
}

export interface FaxSubmission {
  readonly to: readonly string[];
  readonly files: readonly UploadedFile[];
  readonly coverText?: string | undefined;
  readonly resolution?: string | undefined;
  readonly sendTime?: string | undefined;
  readonly notify?: string | undefined;
  /** Which of the identity's addresses to send as (default: its first): forwarding a received fax sends as the mailbox it was routed to. */
  readonly from?: string | undefined;
  /** The job id to use (the API records it with an Idempotency-Key before the job exists); default: a new one. */
  readonly id?: string | undefined;
  /** Resend an existing RingCentral fax (X-Fax-Forward-Of) instead of documents. */
  readonly forwardOf?: string | undefined;
}

/** A refusal in SMTP terms (the same code and words as over SMTP), shown by the API as problem details. */
export class IntakeRefusal extends Error {
  readonly smtpCode: number;
  readonly status: number;
  constructor(smtpCode: number, message: string, status?: number) {
    super(message);
    this.name = "IntakeRefusal";
    this.smtpCode = smtpCode;
    this.status = status ?? httpStatusOf(smtpCode, message);
  }

  /** The refusal of a catalogued SMTP reply (src/replies.ts): the same code and words as over SMTP. */
  static of(reply: ReplySpec, status?: number): IntakeRefusal {
    return new IntakeRefusal(reply.code, replyLine(reply), status);
  }
}

function httpStatusOf(code: number, message: string): number {
  if (code === 552) return 413;
  if (code === 452) return /quota/.test(message) ? 429 : /storage/.test(message) ? 507 : 422;
  if (code === 530 || code === 535) return 403;
  if (code === 421 || code === 451 || code === 454) return 503;
  return 422;
}

function refusalOf(err: unknown): IntakeRefusal {
  if (err instanceof IntakeRefusal) return err;
  if (err instanceof SmtpReply) return new IntakeRefusal(err.responseCode, err.message);
  return IntakeRefusal.of(REPLIES.localError());
}

const SIMPLE_EMAIL = /^[^\s@<>()",;]+@[^\s@<>()",;]+$/;

/** A stand-in for the SMTP session the policy reads: who, from where, as which envelope sender. */
function policySession(id: string, who: Identity, ip: string, mailFrom: string): SMTPServerSession {
  const session = {
    id: `web-${id}`,
    remoteAddress: ip,
    clientHostname: ip,
    hostNameAppearsAs: who.kind,
    secure: true,
    user: who.user,
    transmissionType: "HTTP",
    envelope: { mailFrom: { address: mailFrom, args: false }, rcptTo: [] },
  };
  return session as unknown as SMTPServerSession;
}

/** Queue a fax for `who`; resolves with the job id once it is durably recorded. Rejects with an IntakeRefusal. */
export async function submitFax(deps: IntakeDeps, who: Identity, ip: string, sub: FaxSubmission): Promise<{ id: string; recipients: JobRecipient[] }> {
  const { config } = deps;
  const sender = sub.from !== undefined && who.senders.includes(sub.from.toLowerCase()) ? sub.from.toLowerCase() : who.senders[0];
  if (sender === undefined) throw new IntakeRefusal(550, `${who.kind === "api" ? "token" : "user"} ${who.name} has no sender address to fax as`, 403);
  if (sub.to.length === 0) throw new IntakeRefusal(554, "no valid recipients: give at least one fax number in `to`");
  if (sub.forwardOf === undefined && sub.files.length === 0) throw new IntakeRefusal(550, "no document to fax: attach at least one file");
  const notify = sub.notify?.trim();
  if (notify !== undefined && notify !== "" && !SIMPLE_EMAIL.test(notify)) throw new IntakeRefusal(553, `notify ${JSON.stringify(notify)} is not an email address`);

  const id = sub.id ?? newId();
  const log = deps.logger.child({ queueId: id, user: who.user });
  const session = policySession(id, who, ip, sender);
  const denied = deps.policy?.checkMailFrom(session, sender);
  if (denied !== undefined) throw refusalOf(denied);

  const domain = config.fax.domains[0] ?? "fax.local";
  const recipients = new Map<string, JobRecipient>();
  for (const raw of sub.to) {
    const local = raw.trim();
    const parsed = parseFaxAddress(local, config.fax.defaultCountry, deps.numberCheck);
    if (!parsed.ok) throw new IntakeRefusal(550, `${local}: ${parsed.reason}`);
    if (recipients.has(parsed.e164)) continue;
    if (recipients.size >= config.smtp.maxRecipients) throw IntakeRefusal.of(REPLIES.tooManyRecipients(), 422);
    const rcptDenied = await deps.policy?.checkRecipient(session, { domain, e164: parsed.e164 });
    if (rcptDenied !== undefined) throw refusalOf(rcptDenied);
    const needsQuotes = /[\s"(),:;<>@[\\\]]/.test(local);
    recipients.set(parsed.e164, { address: `${needsQuotes ? `"${local.replace(/["\\]/g, "")}"` : local}@${domain}`, e164: parsed.e164, options: parsed.options });
  }

  const cover = sub.coverText?.trim() ?? "";
  const headers: Record<string, string> = { "X-Faxbridge-Source": `${who.kind === "api" ? "REST API" : "web console"} (${who.name})` };
  if (sub.resolution !== undefined && sub.resolution !== "") headers["X-Fax-Resolution"] = sub.resolution;
  if (sub.sendTime !== undefined && sub.sendTime !== "") headers["X-Fax-Send-Time"] = sub.sendTime;
  // Forwarding rights (own sent fax, or a received fax mailed to `sender`) are checked by policy.beforeCommit.
  if (sub.forwardOf !== undefined) headers["X-Fax-Forward-Of"] = sub.forwardOf;
  const composer = new MailComposer({
    from: sender,
    to: [...recipients.values()].map((r) => r.address),
    // Where the cover text is read from depends on fax.coverText (as in `faxbridge send`).
    ...(cover !== "" && (config.fax.coverText === "subject" ? { subject: cover } : { text: cover })),
    headers,
    attachments: sub.files.map((f) => ({ filename: f.filename, path: f.path, contentType: f.contentType })),
  });

  const reportTo = notify !== undefined && notify !== "" ? notify : sender;
  // The same intake as SMTP and `faxbridge send` (src/intake/accept.ts): disk floor, destination
  // rules and quotas, spool, then the policy's check of the stored message (sender rules,
  // forwarding rights for X-Fax-Forward-Of, the identity `who.user`), then the job row.
  const intakeSender: IntakeSender = { key: senderIdentity({ user: who.user, mailFrom: reportTo }).key, mailFrom: reportTo, user: who.user, ip };
  const policy = deps.policy;
  let spooledSize: number;
  try {
    const accepted = await accept(
      {
        spool: deps.spool,
        store: deps.store,
        policy,
        maxMessageBytes: config.smtp.maxMessageBytes,
        diskFloor: { dir: config.dataDir, minFreeBytes: config.smtp.minFreeBytes },
        logger: deps.logger,
        onAccepted: deps.onAccepted,
      },
      {
        id,
        sender: intakeSender,
        recipients: [...recipients.values()],
        message: composer.compile().createReadStream(),
        ...(policy !== undefined && {
          checkMessage: async (m) => {
            const d = await policy.beforeCommit(session, { path: m.path });
            return { sender: { ...intakeSender, key: d.identity.key }, reservation: d, job: { reportTo } };
          },
        }),
      },
    );
    spooledSize = accepted.size;
  } catch (err) {
    if (err instanceof SmtpReply) throw refusalOf(err);
    if (err instanceof SpoolError && (err.kind === "too_big" || err.kind === "no_space")) throw IntakeRefusal.of(spoolFailure(err.kind, config.smtp.maxMessageBytes).reply);
    log.error({ event: err instanceof IntakeError ? "web.intake_failed" : "web.spool_failed", err }, "could not queue an upload");
    throw IntakeRefusal.of(REPLIES.localError());
  }
  log.info({ event: "web.accepted", recipients: recipients.size, documents: sub.files.length, size: spooledSize }, "fax accepted over HTTP");
  return { id, recipients: [...recipients.values()] };
}

export interface UploadPart {
  readonly type: "field" | "file";
  readonly fieldname: string;
  readonly value?: unknown;
  readonly filename?: string;
  readonly mimetype?: string;
  readonly file?: NodeJS.ReadableStream;
}

export interface ReadUpload {
  readonly fields: Map<string, string[]>;
  readonly files: UploadedFile[];
  /** SHA-256 over every field and file byte, in order: "the same body" for Idempotency-Key. */
  readonly hash: string;
}

/**
 * Stream multipart parts to files in `dir` (never held in memory), hashing
 * as they pass. File parts under any name other than `fileField` are refused.
 */
export async function readUpload(parts: AsyncIterable<UploadPart>, dir: string, fileField = "file"): Promise<ReadUpload> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const hash = createHash("sha256");
  const fields = new Map<string, string[]>();
  const files: UploadedFile[] = [];
  for await (const part of parts) {
    if (part.type === "field") {
      const v = typeof part.value === "string" ? part.value : String(part.value);
      hash.update(`field\0${part.fieldname}\0${v.length}\0${v}\0`);
      fields.set(part.fieldname, [...(fields.get(part.fieldname) ?? []), v]);
      continue;
    }
    const stream = part.file;
    if (stream === undefined) continue;
    if (part.fieldname !== fileField) {
      (stream as NodeJS.ReadableStream & { resume(): void }).resume();
      throw new IntakeRefusal(554, `unexpected file field "${part.fieldname}": send documents as "${fileField}"`, 400);
    }
    const given = part.filename?.trim() ?? "";
    const type = part.mimetype ?? "application/octet-stream";
    const filename = safeFilename(given === "" ? undefined : given, files.length + 1, extensionOf(given) || extensionForMime(type));
    hash.update(`file\0${filename}\0`);
    const path = join(dir, `${files.length + 1}`);
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    await pipeline(stream, tap, createWriteStream(path, { mode: 0o600 }));
    const truncated = (stream as { truncated?: boolean }).truncated === true;
    if (truncated) throw new IntakeRefusal(552, "document too large", 413);
    hash.update(`\0${size}\0`);
    if (size === 0 && given === "") continue; // an empty file input of a browser form
    files.push({ path, filename, contentType: type, size });
  }
  return { fields, files, hash: hash.digest("hex") };
}

export async function removeUpload(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
