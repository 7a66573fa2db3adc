/** doctor's mail checks: the mail server answers, takes mail.from and every mailbox faxbridge mails. */
import { join, resolve } from "node:path";
import type { Config } from "../config/schema.js";
import { errorMessage } from "../errors.js";
import { silentLogger } from "../log.js";
import { bareAddress, isLocalDomain, probeRecipients } from "../mail/probe.js";
import { createMailSender, MailDeliveryError } from "../mail/transport.js";
import { code, fail, ok, warn, withTimeout, type Check } from "./doctor-common.js";

export function describeMailFailure(err: unknown, where: string): Check {
  const name = "mail";
  const cause = err instanceof MailDeliveryError && err.cause !== undefined ? err.cause : err;
  const text = errorMessage(cause);
  const c = code(cause) ?? "";
  const responseCode = err instanceof MailDeliveryError ? err.responseCode : undefined;
  if (/ECONNREFUSED/.test(text) || c === "ECONNREFUSED") {
    return fail(name, `nothing accepts connections at ${where} (connection refused): the mail server is down or mail.url names the wrong host or port`, "start the mail server, or fix mail.url (FAXBRIDGE_MAIL_URL)");
  }
  if (/ENOTFOUND|EAI_AGAIN/.test(text) || c === "EDNS" || c === "ENOTFOUND") {
    return fail(name, `the mail server's host name in ${where} does not resolve`, "fix the host in mail.url (FAXBRIDGE_MAIL_URL) or the DNS");
  }
  if (c === "ETIMEDOUT" || /timeout|timed out/i.test(text)) {
    return fail(name, `the mail server at ${where} did not answer in time`, "check that it runs and that no firewall drops the connection");
  }
  if (c === "EAUTH" || responseCode === 535 || responseCode === 534 || /auth/i.test(text)) {
    return fail(name, `the mail server at ${where} refused the username or password in mail.url`, "fix the credentials in mail.url (user:password@host, URL-encoded)");
  }
  if (c === "ETLS" || /certificate|TLS|SSL/i.test(text)) {
    return fail(name, `TLS with the mail server at ${where} failed (${text})`, "use smtps:// for port 465 and smtp:// for STARTTLS ports; check the server's certificate");
  }
  return fail(name, `the mail server at ${where} cannot be used: ${text}`, "check mail.url (FAXBRIDGE_MAIL_URL) and the mail server's log");
}

export async function checkMail(config: Readonly<Config>, timeoutMs: number): Promise<Check> {
  const dir = join(resolve(config.dataDir), "mailbox");
  if (config.mail.url === "") {
    return warn(
      "mail",
      `no mail server configured: reports and received faxes are written as .eml files to ${dir}, and nobody is mailed`,
      "set mail.url (FAXBRIDGE_MAIL_URL), e.g. smtp://mail.example.com:587",
    );
  }
  let sender;
  try {
    sender = createMailSender(config.mail.url, dir, silentLogger());
  } catch (err) {
    return fail("mail", `mail.url is not usable: ${errorMessage(err)}`, "write it as smtp://[user:password@]host:port or smtps://...");
  }
  try {
    await withTimeout(sender.verify(), timeoutMs, "mail server");
    return ok("mail", `the mail server at ${sender.description} accepts connections`);
  } catch (err) {
    return describeMailFailure(err, sender.description);
  } finally {
    sender.close();
  }
}

// ---------------------------------------------------------------- inbound mailboxes


/** Every mailbox faxbridge mails on its own: received faxes (default and routes) and admin alerts. */
export function inboundMailboxes(config: Readonly<Config>): string[] {
  const all = [config.inbound.defaultTo, ...config.inbound.routes.flatMap((r) => r.mailTo), ...config.mail.adminTo].map(bareAddress);
  return [...new Set(all)];
}

/**
 * With a real mail server: warn about localhost addresses, then ask the server
 * (RCPT, no mail sent) whether it takes mail for each mailbox; a refusal means
 * every received fax for it would be dead-lettered.
 */
export async function checkMailboxes(config: Readonly<Config>, timeoutMs: number): Promise<Check[]> {
  if (config.mail.url === "") return [];
  const checks: Check[] = [];
  const mailboxes = inboundMailboxes(config);
  const local = [config.mail.from, ...mailboxes].filter(isLocalDomain).map(bareAddress);
  if (local.length > 0) {
    checks.push(
      warn(
        "mail addresses",
        `${[...new Set(local)].join(", ")} ${local.length === 1 ? "is" : "are"} at a local-only domain, but mail goes to a real mail server, which will likely refuse or misroute ${local.length === 1 ? "it" : "them"}`,
        "set mail.from (FAXBRIDGE_MAIL_FROM), inbound.defaultTo (FAXBRIDGE_INBOUND_TO), inbound.routes and mail.adminTo to real addresses of your domain",
      ),
    );
  }
  let result;
  try {
    result = await withTimeout(probeRecipients(config.mail.url, bareAddress(config.mail.from), mailboxes, { timeoutMs, heloName: config.smtp.hostname }), timeoutMs, "mail server");
  } catch (err) {
    // The mail check reports why the server cannot be used.
    return [...checks, warn("inbound mailboxes", `could not ask the mail server about ${mailboxes.join(", ")} (${errorMessage(err)})`, "fix the mail server check above first")];
  }
  if (!result.mailFrom.accepted) {
    return [
      ...checks,
      fail(
        "mail from",
        `the mail server refuses mail.from ${bareAddress(config.mail.from)} as sender (${result.mailFrom.reply}): no report or received fax can be mailed`,
        "set mail.from (FAXBRIDGE_MAIL_FROM) to an address of a domain the mail server sends for (and covered by SPF/DKIM)",
      ),
    ];
  }
  for (const r of result.recipients) {
    if (r.accepted) continue;
    const where = r.address === bareAddress(config.inbound.defaultTo) ? "inbound.defaultTo" : config.mail.adminTo.map(bareAddress).includes(r.address) ? "mail.adminTo" : "an inbound route";
    const msg = `the mail server refuses ${r.address} (${where}): ${r.reply}`;
    if (r.code >= 500) {
      checks.push(fail("inbound mailboxes", `${msg}; every fax for it would be dead-lettered`, `use a mailbox the mail server delivers to, or make it accept ${r.address}`));
    } else {
      checks.push(warn("inbound mailboxes", `${msg} (temporary refusal)`, "check the mail server's log; faxbridge retries temporary refusals"));
    }
  }
  if (result.recipients.every((r) => r.accepted)) checks.push(ok("inbound mailboxes", `the mail server accepts ${mailboxes.join(", ")} (asked with RCPT, nothing sent)`));
  return checks;
}

