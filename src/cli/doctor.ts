/**
 * `faxbridge doctor`: checks the things that stop faxes in practice and says
 * what to do, one line each: `ok`, `warn` or `FAIL`. Exit 1 when anything
 * FAILs, 2 when the configuration cannot be loaded at all.
 *
 * It changes nothing a running daemon relies on: the database is opened (and
 * migrated, as the daemon would) only when the data directory exists; the
 * RingCentral token pair the daemon keeps there is reused (and kept), so a
 * doctor run costs no login from RingCentral's Auth group of 5 a minute.
 */
import { constants } from "node:fs";
import { access, stat, statfs } from "node:fs/promises";
import { isIP } from "node:net";
import { dirname, join, resolve } from "node:path";
import { hasCredentials, type Config } from "../config/schema.js";
import { ConfigError, errorMessage } from "../errors.js";
import { WEBHOOK_PATH } from "../inbound/webhook.js";
import { silentLogger } from "../log.js";
import { createCidrMatcher, isLoopback } from "../net/cidr.js";
import { openStores } from "../store/open.js";
import { redactDatabaseUrl } from "../store/pg/connect.js";
import { describeDatabase } from "../store/pg/open.js";
import { code, fail, ok, warn, type Check } from "./doctor-common.js";
import { checkMail, checkMailboxes } from "./doctor-mail.js";
import { checkRingCentral } from "./doctor-rc.js";
import { COMMON_OPTIONS, EXIT_USAGE, loadConfigFrom, parse, printJson } from "./common.js";

export type { Check, CheckStatus } from "./doctor-common.js";
export { describeMailFailure, inboundMailboxes } from "./doctor-mail.js";

export const DOCTOR_USAGE = `usage: faxbridge doctor [--config PATH] [--json]

Check the configuration, the data directory, RingCentral (login, app
permissions, reachability), the outgoing mail server and whether it accepts
mail.from and every inbound mailbox (an RCPT probe, no mail sent), the webhook URL and
who may send faxes over SMTP. Each check prints ok, warn or FAIL with what to
do. Exit 0 when nothing FAILs, 1 when something does, 2 when the
configuration cannot be loaded.

  --config PATH   YAML config file (default: $FAXBRIDGE_CONFIG, else built-in defaults)
  --json          [{"name", "status", "message", "fix"}]
  -h, --help      this text
`;

export interface DoctorOptions {
  /** Per network check (RingCentral, mail server). Default 15 s. */
  readonly timeoutMs?: number;
}

const GiB = 1024 ** 3;

async function existing(path: string): Promise<string> {
  let p = path;
  for (;;) {
    try {
      await stat(p);
      return p;
    } catch (err) {
      const parent = dirname(p);
      if (code(err) !== "ENOENT" || parent === p) return p;
      p = parent;
    }
  }
}

function bytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${n} bytes`;
}

// ---------------------------------------------------------------- data dir, database, disk

async function checkDataDir(config: Readonly<Config>): Promise<{ checks: Check[]; usable: boolean }> {
  const dir = resolve(config.dataDir);
  const name = "data dir";
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if (code(err) !== "ENOENT") return { checks: [fail(name, `${dir} cannot be examined (${code(err) ?? errorMessage(err)})`, "check the path and the permissions of its parent directories")], usable: false };
    const parent = await existing(dir);
    try {
      await access(parent, constants.W_OK);
      return { checks: [warn(name, `${dir} does not exist yet`, "nothing to do: faxbridge run creates it (mode 0700); or set dataDir / FAXBRIDGE_DATA_DIR to where it should live")], usable: false };
    } catch {
      // Not writable: the daemon could not create it either.
      return { checks: [fail(name, `${dir} does not exist and ${parent} is not writable, so faxbridge cannot create it`, `create it for the user that runs faxbridge: mkdir -m 700 ${dir} && chown <user> ${dir}`)], usable: false };
    }
  }
  if (!st.isDirectory()) return { checks: [fail(name, `${dir} is not a directory`, "point dataDir (FAXBRIDGE_DATA_DIR) at a directory")], usable: false };
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    // EACCES/EROFS: the daemon cannot store anything here.
    return {
      checks: [fail(name, `${dir} is not writable by this user (uid ${process.getuid?.() ?? "?"})`, `run doctor as the user that runs faxbridge, or: chown -R <that user> ${dir} && chmod 700 ${dir}`)],
      usable: false,
    };
  }
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    return {
      checks: [warn(name, `${dir} is accessible to other users (mode ${mode.toString(8)}); it holds faxes and mail, which may be confidential`, `chmod 700 ${dir}`)],
      usable: true,
    };
  }
  return { checks: [ok(name, `${dir} exists, is writable and private (mode ${mode.toString(8)})`)], usable: true };
}

/** The database as doctor names it: never with its password. */
function describeDatabaseSafely(url: string): string {
  try {
    return describeDatabase(url);
  } catch {
    return redactDatabaseUrl(url);
  }
}

async function checkDatabase(config: Readonly<Config>): Promise<Check[]> {
  const dir = resolve(config.dataDir);
  const pg = config.database.url !== "";
  const file = pg ? describeDatabaseSafely(config.database.url) : join(dir, "faxbridge.db");
  let stores;
  try {
    stores = await openStores(config, silentLogger(), { role: "operator" });
    await stores.ping();
  } catch (err) {
    await stores?.close();
    const busy = /busy|locked/i.test(errorMessage(err));
    return [
      fail(
        "database",
        `${file} cannot be opened: ${errorMessage(err)}`,
        pg
          ? "check that PostgreSQL runs and is reachable from here, and the role, password and database in database.url"
          : busy
            ? "another process holds a lock on it for a long time; check for a stuck faxbridge"
            : "check the file's owner and permissions, and that the disk is not full or read-only",
      ),
    ];
  }
  const checks: Check[] = [];
  try {
    const jobs = await stores.outbound.countByState();
    const faxes = await stores.inbound.countByState();
    const total = Object.values(jobs).reduce((a, b) => a + b, 0);
    const waiting = jobs.received + jobs.parsed + jobs.submitting + jobs.submitted;
    checks.push(ok("database", `${file} opens (${total} outbound jobs, ${waiting} in progress; ${faxes.discovered + faxes.delivered + faxes.dead} received faxes)`));
    if (jobs.failed > 0) {
      checks.push(
        warn(
          "queue",
          `${jobs.failed} outbound job(s) failed and their senders are not yet told (the daemon does that while it runs)`,
          "see faxbridge queue list --state failed; faxbridge queue retry ID sends one again when the cause is fixed",
        ),
      );
    }
    if (faxes.dead > 0) {
      checks.push(
        warn(
          "inbound",
          `${faxes.dead} received fax(es) could not be mailed and were given up (dead)`,
          "see faxbridge inbound list --state dead for the reason; after fixing it: faxbridge inbound redeliver ID",
        ),
      );
    }
  } catch (err) {
    checks.push(fail("database", `${file} opens but cannot be read: ${errorMessage(err)}`, "restore it from a backup or move it aside (the daemon then starts empty)"));
  } finally {
    await stores.close();
  }
  return checks;
}

async function checkDisk(config: Readonly<Config>): Promise<Check> {
  const dir = await existing(resolve(config.dataDir));
  // The daemon's own floor (smtp.minFreeBytes, 452 4.3.1 at MAIL FROM); without one, room for two of the largest mails.
  const floor = config.smtp.minFreeBytes;
  const need = floor > 0 ? floor : 2 * config.smtp.maxMessageBytes;
  try {
    const fs = await statfs(dir);
    const free = Number(fs.bavail) * Number(fs.bsize);
    if (free < need) {
      return warn(
        "disk",
        floor > 0
          ? `${bytes(free)} free on the data directory's file system, under smtp.minFreeBytes (${bytes(floor)}): new mail is refused with 452 4.3.1`
          : `${bytes(free)} free on the data directory's file system; under ${bytes(need)} a large fax may not fit and mail will be refused with 452`,
        "free space or move dataDir to a larger volume",
      );
    }
    return ok("disk", `${bytes(free)} free on the data directory's file system`);
  } catch (err) {
    return warn("disk", `free space of ${dir} is unknown (${code(err) ?? errorMessage(err)})`, "check it with df");
  }
}

export { checkPermissions, describeLoginFailure, permissionNeeds } from "./doctor-rc.js";

// ---------------------------------------------------------------- webhook, SMTP exposure

function isPrivateHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost") || h.endsWith(".local")) return true;
  if (isIP(h) === 0) return false;
  return createCidrMatcher(["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"])(h);
}

export function checkWebhook(config: Readonly<Config>): Check | undefined {
  const name = "webhook";
  const { notifications, webhookUrl, verificationToken } = config.inbound;
  const sandbox = !hasCredentials(config as Config);
  if (webhookUrl === "" || notifications === "websocket" || notifications === "none") return undefined;
  let u: URL;
  try {
    u = new URL(webhookUrl);
  } catch {
    return fail(name, `inbound.webhookUrl ${JSON.stringify(webhookUrl)} is not a URL`, `write it as https://your.host${WEBHOOK_PATH}`);
  }
  if (!sandbox && u.protocol !== "https:") {
    return fail(name, `inbound.webhookUrl uses ${u.protocol.replace(":", "")}; RingCentral delivers webhooks only to https URLs`, "put faxbridge's HTTP port behind a TLS reverse proxy and use its https URL");
  }
  if (!sandbox && isPrivateHost(u.hostname)) {
    return fail(name, `inbound.webhookUrl points at ${u.hostname}, which RingCentral cannot reach from the internet`, "use the public host name of the reverse proxy in front of faxbridge");
  }
  if (u.pathname.replace(/\/+$/, "") !== WEBHOOK_PATH && !u.pathname.endsWith(WEBHOOK_PATH)) {
    return warn(name, `inbound.webhookUrl path is ${u.pathname}; faxbridge answers webhooks at ${WEBHOOK_PATH}`, `make sure the proxy maps ${u.pathname} to ${WEBHOOK_PATH}`);
  }
  if (verificationToken === "") {
    return warn(name, "inbound.verificationToken is empty: faxbridge generates one, but a shared secret you set is easier to rotate", "set inbound.verificationToken (FAXBRIDGE_INBOUND_VERIFICATION_TOKEN) to a long random string");
  }
  return ok(name, `webhooks go to ${u.origin}${u.pathname}`);
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || (isIP(host) !== 0 && isLoopback(host));
}

/** CIDR entries that admit more than this machine. */
function wideEntries(cidrs: readonly string[]): string[] {
  return cidrs.filter((c) => {
    const [addr = ""] = c.split("/");
    return !isLoopback(addr) || /\/(0|[1-7])$/.test(c);
  });
}

export function checkSmtpExposure(config: Readonly<Config>): Check[] {
  const name = "smtp";
  const s = config.smtp;
  const domains = config.fax.domains.join(", ");
  const checks: Check[] = [];
  const local = isLoopbackHost(s.host);
  const wide = wideEntries(s.allowUnauthenticatedFrom);
  const tls = s.tlsKey !== "" && s.tlsCert !== "";
  if (local) {
    checks.push(ok(name, `listens on ${s.host}:${s.port} (this machine only)`));
  } else if (wide.length > 0) {
    const everyone = wide.some((c) => /\/0$/.test(c.trim()));
    const msg =
      `listens on ${s.host}:${s.port} and lets ${everyone ? "ANY address" : wide.join(", ")} send without a password: ` +
      `whoever can reach the port can send faxes at your account's cost. It never relays mail for other domains (only ${domains} is accepted)`;
    const fix = `narrow smtp.allowUnauthenticatedFrom to the mail servers that should fax, or require AUTH (smtp.users${tls ? "" : " with smtp.tlsKey/tlsCert"})`;
    checks.push(everyone ? fail(name, msg, fix) : warn(name, msg, fix));
  } else if (s.users.length === 0) {
    checks.push(warn(name, `listens on ${s.host}:${s.port}, but no remote client can send: there are no smtp.users and allowUnauthenticatedFrom covers only loopback`, "add smtp.users (faxbridge hash-password) or allow your mail server's network"));
  } else {
    checks.push(ok(name, `listens on ${s.host}:${s.port}; remote clients must log in (${s.users.length} user(s))`));
  }
  if (!local && s.users.length > 0 && !tls) {
    checks.push(warn("smtp tls", "smtp.users are set but there is no TLS: remote clients cannot log in (AUTH needs TLS except from a local client: 127.0.0.1 to 127.0.0.1)", "set smtp.tlsKey and smtp.tlsCert (PEM files)"));
  }
  return checks;
}

async function checkTlsFiles(config: Readonly<Config>): Promise<Check | undefined> {
  const { tlsKey, tlsCert } = config.smtp;
  // Half a pair is a configuration error (src/config/resolve.ts).
  if (tlsKey === "" || tlsCert === "") return undefined;
  for (const [what, path] of [
    ["smtp.tlsKey", tlsKey],
    ["smtp.tlsCert", tlsCert],
  ] as const) {
    try {
      await access(path, constants.R_OK);
    } catch (err) {
      return fail("smtp tls", `${what} ${path} cannot be read (${code(err) ?? errorMessage(err)}); the daemon will not start`, "fix the path or the file's permissions");
    }
  }
  return ok("smtp tls", "STARTTLS key and certificate are readable");
}

// ---------------------------------------------------------------- all

export async function runDoctor(config: Readonly<Config>, opts: DoctorOptions = {}): Promise<Check[]> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const checks: Check[] = [ok("config", "the configuration is valid")];
  const dir = await checkDataDir(config);
  checks.push(...dir.checks);
  // PostgreSQL is not in the data directory: it is checked whatever state the directory is in.
  if (dir.usable || config.database.url !== "") checks.push(...(await checkDatabase(config)));
  checks.push(await checkDisk(config));
  // The two network checks run side by side.
  const [rc, mail] = await Promise.all([checkRingCentral(config, timeoutMs, dir.usable ? resolve(config.dataDir) : undefined), checkMail(config, timeoutMs)]);
  checks.push(...rc, mail);
  if (mail.status === "ok") checks.push(...(await checkMailboxes(config, timeoutMs)));
  const webhook = checkWebhook(config);
  if (webhook !== undefined) checks.push(webhook);
  checks.push(...checkSmtpExposure(config));
  const tls = await checkTlsFiles(config);
  if (tls !== undefined) checks.push(tls);
  return checks;
}

export function formatChecks(checks: readonly Check[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.status.padEnd(4)}  ${c.name}: ${c.message}`);
    if (c.fix !== undefined) lines.push(`      → ${c.fix}`);
  }
  const fails = checks.filter((c) => c.status === "FAIL").length;
  const warns = checks.filter((c) => c.status === "warn").length;
  lines.push("", fails > 0 ? `${fails} problem(s) to fix, ${warns} warning(s)` : warns > 0 ? `no problems, ${warns} warning(s)` : "everything looks right");
  return `${lines.join("\n")}\n`;
}

export async function cmdDoctor(argv: string[]): Promise<number> {
  const { values } = parse(argv, COMMON_OPTIONS);
  if (values.help === true) {
    process.stdout.write(DOCTOR_USAGE);
    return 0;
  }
  let config: Readonly<Config>;
  try {
    config = loadConfigFrom(values.config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const check = fail("config", err.message, "fix each setting listed (see the README's configuration table); faxbridge config --print shows the effective values");
    if (values.json === true) printJson([check]);
    else process.stdout.write(formatChecks([check]));
    return EXIT_USAGE;
  }
  const checks = await runDoctor(config);
  if (values.json === true) printJson(checks);
  else process.stdout.write(formatChecks(checks));
  return checks.some((c) => c.status === "FAIL") ? 1 : 0;
}
