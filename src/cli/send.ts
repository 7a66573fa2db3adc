/**
 * `faxbridge send --to NUMBER FILE...`: queue a fax without email. The files
 * become a MIME message (attachments streamed from disk), which goes through
 * the same intake as a mail accepted over SMTP (src/intake/accept.ts):
 * disk floor, destination rules and hourly quotas, spooled and fsynced, then the
 * `received` job row. The running daemon's worker
 * picks it up on its next look at the queue (it polls about once a second).
 */
import { constants, existsSync } from "node:fs";
import { access, stat } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { userInfo } from "node:os";
import MailComposer from "nodemailer/lib/mail-composer";
import { numberCheckMode } from "../config/resolve.js";
import type { Config } from "../config/schema.js";
import { errorMessage, SmtpReply } from "../errors.js";
import { accept, IntakeError, refusalText, type IntakeSender } from "../intake/accept.js";
import { createSmtpPolicy } from "../policy/index.js";
import { senderIdentity } from "../policy/identity.js";
import { silentLogger } from "../log.js";
import { parseFaxAddress, type NumberCheck } from "../fax/number.js";
import { Spool, SpoolError } from "../spool/spool.js";
import type { JobRecipient } from "../store/outbound.js";
import { newId } from "../util/ids.js";
import { COMMON_OPTIONS, CommandError, loadConfigFrom, out, parse, printJson, UsageError, withStores } from "./common.js";

export const SEND_USAGE = `usage: faxbridge send --to NUMBER [--to NUMBER ...] [options] FILE...

Queue a fax without email; the running daemon sends it. Prints the queue id
(follow it with: faxbridge queue show ID).

  --to NUMBER        fax number, E.164 (+15551234567) or national (fax.defaultCountry);
                     address options work as in mail: "+15551234567/res=low/name=Dr_Roe"
  --cover-text TEXT  text for the cover page
  --notify EMAIL     send the report to this address (default: no report)
  --config PATH      YAML config file (default: $FAXBRIDGE_CONFIG, else built-in defaults)
  --json             print {"id": ...}
  -h, --help         this text

FILE: documents to fax (PDF, Word, images, text ...), faxed in the given order.

The fax goes through the same intake as mail: a number outside the destination
rules (policy.destinations), over the hourly quotas (policy.quotas, charged
to cli:<your login>) or a data directory under smtp.minFreeBytes is refused
with exit 1 and the reason.
`;

const SIMPLE_EMAIL = /^[^\s@<>()",;]+@[^\s@<>()",;]+\.[^\s@<>()",;]+$|^[^\s@<>()",;]+@localhost$/i;

export interface SendRequest {
  readonly to: readonly string[];
  readonly files: readonly string[];
  readonly coverText?: string | undefined;
  readonly notify?: string | undefined;
}

export function recipientsOf(config: Readonly<Config>, to: readonly string[]): JobRecipient[] {
  const check: NumberCheck = numberCheckMode(config);
  const domain = config.fax.domains[0] ?? "fax.local";
  const byNumber = new Map<string, JobRecipient>();
  const problems: string[] = [];
  for (const raw of to) {
    const local = raw.trim();
    const parsed = parseFaxAddress(local, config.fax.defaultCountry, check);
    if (!parsed.ok) {
      problems.push(`--to ${JSON.stringify(raw)}: ${parsed.reason}`);
      continue;
    }
    const needsQuotes = /[\s"(),:;<>@[\\\]]/.test(local);
    const address = `${needsQuotes ? `"${local.replace(/["\\]/g, "")}"` : local}@${domain}`;
    byNumber.set(parsed.e164, { address, e164: parsed.e164, options: parsed.options });
  }
  if (problems.length > 0) throw new UsageError(problems.join("\n"));
  if (byNumber.size > config.smtp.maxRecipients) {
    throw new UsageError(`too many recipients: ${byNumber.size}, at most ${config.smtp.maxRecipients} (smtp.maxRecipients)`);
  }
  return [...byNumber.values()];
}

async function checkFiles(files: readonly string[]): Promise<{ path: string; filename: string; size: number }[]> {
  const out: { path: string; filename: string; size: number }[] = [];
  for (const f of files) {
    const path = resolve(f);
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new UsageError(`${f} is not a file`);
      await access(path, constants.R_OK);
      out.push({ path, filename: basename(path), size: st.size });
    } catch (err) {
      if (err instanceof UsageError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(code === "ENOENT" ? `${f}: no such file` : code === "EACCES" ? `${f}: not readable (permission denied)` : `${f}: ${errorMessage(err)}`);
    }
  }
  return out;
}

/** Spool the message and insert the `received` job; resolves with the queue id. */
export async function queueFax(config: Readonly<Config>, req: SendRequest): Promise<{ id: string; recipients: JobRecipient[]; warnings: string[] }> {
  if (req.to.length === 0) throw new UsageError("say who gets the fax: --to NUMBER");
  if (req.files.length === 0 && (req.coverText ?? "").trim() === "") throw new UsageError("give at least one FILE to fax");
  if (req.notify !== undefined && !SIMPLE_EMAIL.test(req.notify)) throw new UsageError(`--notify ${JSON.stringify(req.notify)} is not an email address`);
  const recipients = recipientsOf(config, req.to);
  const files = await checkFiles(req.files);
  const warnings: string[] = [];

  const cover = req.coverText?.trim();
  const coverMode = config.fax.coverText;
  if (cover !== undefined && cover !== "" && coverMode === "none") warnings.push("fax.coverText is \"none\": the cover text is not printed");
  if (cover !== undefined && cover !== "" && files.length === 0) warnings.push("no file given: the cover text itself is faxed as the document");
  const user = safeUser();
  const composer = new MailComposer({
    from: req.notify ?? config.mail.from,
    to: recipients.map((r) => r.address),
    // Where the cover text is taken from depends on fax.coverText; put it where it is read.
    ...(cover !== undefined && cover !== "" && (coverMode === "subject" ? { subject: cover } : { text: cover })),
    headers: { "X-Faxbridge-Source": `faxbridge send (${user})` },
    attachments: files.map((f) => ({ filename: f.filename, path: f.path })),
  });

  const id = newId();
  const maxBytes = config.smtp.maxMessageBytes;
  const mailFrom = req.notify ?? "";
  // The same intake as SMTP (src/intake/accept.ts): destination rules, quotas, spool, job row.
  // The sender is the local login that ran the command.
  const sender: IntakeSender = { key: senderIdentity({ user: `cli:${user}`, mailFrom }).key, mailFrom, user: `cli:${user}`, ip: "local" };
  return withStores(config, async (stores) => {
    // The floor guards the data directory; on PostgreSQL the mail goes to the database and this machine may have no data directory yet.
    const floor = existsSync(stores.dataDir) ? { dir: stores.dataDir, minFreeBytes: config.smtp.minFreeBytes } : undefined;
    // Quotas are taken from the store's ledger, shared with the daemon(s), whichever path accepts the mail.
    const policy = await createSmtpPolicy({ config, logger: silentLogger(), store: stores.outbound, quota: stores.quota });
    const spool = new Spool({ documents: stores.documents, logger: silentLogger() });
    try {
      await accept(
        { spool, store: stores.outbound, policy, maxMessageBytes: maxBytes, diskFloor: floor, logger: silentLogger() },
        { id, sender, recipients, message: composer.compile().createReadStream() },
      );
    } catch (err) {
      if (err instanceof SmtpReply) throw new CommandError(`refused: ${refusalText(err)}`);
      if (err instanceof SpoolError && err.kind === "too_big") {
        throw new CommandError(`the documents are too large: the message would exceed smtp.maxMessageBytes (${maxBytes} bytes)`);
      }
      if (err instanceof SpoolError && err.kind === "no_space") throw new CommandError(`the data directory ${stores.dataDir} is out of space`);
      if (err instanceof IntakeError) throw new CommandError(`could not queue the fax: ${errorMessage(err.cause ?? err)}`);
      throw new CommandError(`could not store the fax: ${errorMessage(err)}`);
    }
    return { id, recipients, warnings };
  });
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    // No passwd entry (some containers): the uid is still worth recording.
    return String(process.getuid?.() ?? "unknown");
  }
}

export async function cmdSend(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { ...COMMON_OPTIONS, to: { type: "string", multiple: true }, "cover-text": { type: "string" }, notify: { type: "string" } },
    true,
  );
  if (values.help === true) {
    process.stdout.write(SEND_USAGE);
    return 0;
  }
  const config = loadConfigFrom(values.config);
  const r = await queueFax(config, { to: values.to ?? [], files: positionals, coverText: values["cover-text"], notify: values.notify });
  for (const w of r.warnings) process.stderr.write(`faxbridge send: note: ${w}\n`);
  if (values.json === true) printJson({ id: r.id, to: r.recipients.map((x) => x.e164) });
  else out(`queued as ${r.id} to ${r.recipients.map((x) => x.e164).join(", ")}; follow it with: faxbridge queue show ${r.id}`);
  return 0;
}
