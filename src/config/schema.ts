import { z } from "zod";
import { createCidrMatcher } from "../net/cidr.js";
import { parseSchedule } from "../util/schedule.js";

/**
 * The configuration schema. Defaults here are the single source of truth;
 * config/default.yaml is the same set, commented for operators (a test keeps
 * the two equal). Every leaf has an environment override, listed in
 * ./settings.ts and in the README's configuration table.
 */

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

const SCHEDULE_HINT = 'expected a schedule like "1m,5m*2,1h" (units ms, s, m, h, d; *N repeats)';

/** True when the runtime's own parser (src/util/schedule.ts) reads the text: one grammar for the check and the use. */
function isSchedule(text: string): boolean {
  try {
    parseSchedule(text);
    return true;
  } catch {
    return false;
  }
}

/** A duration schedule such as "10s,30s,1m*3,5m" (see src/util/schedule.ts). */
const schedule = z.string().refine(isSchedule, { message: SCHEDULE_HINT });

/** fax.redial: a schedule, or "off" / empty for none (as src/outbound/redial.ts reads it). */
const redialSchedule = z.string().refine((t) => t.trim() === "" || t.trim().toLowerCase() === "off" || isSchedule(t), {
  message: 'expected a schedule like "5m*2" (units ms, s, m, h, d; *N repeats), or "off" (or empty) for no redials',
});

/** A client network: an IPv4 or IPv6 CIDR, or a single address; checked by the matcher the daemon uses. */
const cidr = z
  .string()
  .min(1)
  .superRefine((entry, ctx) => {
    try {
      createCidrMatcher([entry]);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : String(err) });
    }
  });

const smtpUser = z.strictObject({
  username: z.string().min(1),
  /** scrypt hash as produced by `faxbridge hash-password` (format: scrypt$N$r$p$salt$hash). */
  passwordHash: z.string().min(1),
});

const inboundRoute = z.strictObject({
  /** Receiving number (E.164) this route applies to; omitted = any. */
  to: z.string().optional(),
  /** RingCentral extension id the fax arrived on; omitted = any. */
  extension: z.string().optional(),
  /** Sender number pattern: E.164 with `*` wildcards, e.g. "+1555*"; omitted = any. */
  from: z.string().optional(),
  /** Mailboxes this fax is sent to. */
  mailTo: z.array(z.string().min(3)).min(1),
});

/** A sender rule entry: a whole address ("alice@example.com") or a whole domain ("@example.org"). */
const senderEntry = z
  .string()
  .regex(/^([^@\s]+@[^@\s]+|@[^@\s]+)$/, { message: 'expected an address such as "alice@example.com" or a domain such as "@example.org"' });

/** How the identity of an unauthenticated sender on an allowlist is proven. */
const verifySender = z.enum(["dmarc", "spf-dkim", "authentication-results", "none"]);

/** An E.164 number pattern with `*` wildcards, e.g. "+1900*". */
const numberPattern = z.string().regex(/^\+?[\d*]+$/, { message: 'expected an E.164 pattern with * wildcards such as "+1900*"' });

const senderRule = {
  /** Who may fax: addresses and "@domain" entries; empty = anyone the SMTP rules let in. */
  senders: z.array(senderEntry).default([]),
  /** Only SMTP AUTH users may fax via this domain (relays in allowUnauthenticatedFrom are refused). */
  requireAuth: z.boolean().default(false),
  /** How an unauthenticated sender matched by `senders` must be verified. */
  verifySender: verifySender.default("dmarc"),
};

const domainPolicy = z.strictObject({
  /** The fax domain (one of fax.domains) this rule applies to. */
  domain: z.string().min(1),
  senders: senderRule.senders,
  requireAuth: senderRule.requireAuth,
  verifySender: senderRule.verifySender,
});

const userBinding = z.strictObject({
  /** An smtp.users username. */
  username: z.string().min(1),
  /** Envelope and From addresses this user may use ("@domain" = any address there). */
  senders: z.array(senderEntry).min(1),
});

/** A REST API token: one sender identity (src/web/). */
const apiToken = z.strictObject({
  /** A name for logs, audit and quotas ("ehr"); the token itself is never logged. */
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { message: "expected a short name of letters, digits, . _ -" }),
  /** scrypt hash of the token, from `faxbridge hash-password`. */
  tokenHash: z.string().min(1),
  /** Addresses this token sends as (the first is its sender and report address) and whose received faxes it may read. */
  senders: z.array(z.string().regex(/^[^@\s]+@[^@\s]+$/, { message: "expected an address such as ehr@example.com" })).min(1),
});

/** A web console operator. */
const webUser = z.strictObject({
  username: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, { message: "expected a short name of letters, digits, . _ @ -" }),
  /** scrypt hash, from `faxbridge hash-password`. */
  passwordHash: z.string().min(1),
  /** admin sees everything; user sees the faxes of its `senders` and the received faxes routed to them. */
  role: z.enum(["admin", "user"]).default("user"),
  senders: z.array(z.string().regex(/^[^@\s]+@[^@\s]+$/, { message: "expected an address such as alice@example.com" })).default([]),
});

export const configSchema = z
  .strictObject({
    ringcentral: z
      .strictObject({
        serverUrl: z.url().default("https://platform.ringcentral.com"),
        clientId: z.string().default(""),
        clientSecret: z.string().default(""),
        /**
         * JWT credential(s). Several, separated by commas (or lines, in RC_JWT_FILE), make an
         * extension pool: each JWT is one sending extension with its own token and rate limits.
         */
        jwt: z
          .string()
          .default("")
          .refine((v) => v.trim() === "" || splitJwts(v).every((j) => j !== ""), { message: "an empty entry in the comma-separated JWT list" })
          .refine((v) => new Set(splitJwts(v)).size === splitJwts(v).length, { message: "the same JWT is listed twice in the extension pool" }),
        /** Extensions whose received faxes are delivered ("~" is the JWT owner's). */
        extensions: z.array(z.string().min(1)).min(1).default(["~"]),
        /** Assumed per-group limits (requests per window) until RingCentral's X-Rate-Limit-* headers say otherwise. */
        rateLimits: z
          .strictObject({
            light: positiveInt.default(50),
            medium: positiveInt.default(40),
            heavy: positiveInt.default(10),
            auth: positiveInt.default(5),
            windowSeconds: positiveInt.default(60),
          })
          .prefault({}),
        /** Per-request timeout, milliseconds. */
        requestTimeoutMs: positiveInt.default(60_000),
        /** Body layout of a fax send: multipart/form-data (RingCentral's SDKs) or multipart/mixed (RingCentral's API guide). */
        faxLayout: z.enum(["form-data", "mixed"]).default("form-data"),
        /**
         * Extra origins (scheme://host[:port]) attachment content may be downloaded from with the
         * access token, besides the API server's own origin and https *.ringcentral.com (the media host).
         */
        mediaOrigins: z
          .array(z.url().refine((u) => /^https?:$/.test(new URL(u).protocol) && new URL(u).origin === u.replace(/\/+$/, ""), "an origin: scheme://host[:port], nothing after"))
          .default([]),
      })
      .prefault({}),
    smtp: z
      .strictObject({
        host: z.string().min(1).default("127.0.0.1"),
        port: port.default(2525),
        /** Name in the greeting banner and in Received headers. */
        hostname: z.string().min(1).default("faxbridge"),
        /** Largest message accepted, in bytes (50 MB of documents is about 68 MB once base64-encoded). */
        maxMessageBytes: positiveInt.default(73_400_320),
        maxRecipients: positiveInt.default(10),
        maxConnections: positiveInt.default(100),
        /** Paths of a PEM key and certificate; both set enables STARTTLS. */
        tlsKey: z.string().default(""),
        tlsCert: z.string().default(""),
        /** Users allowed to authenticate (AUTH PLAIN/LOGIN, only over TLS unless the client is local: see isLocalClient in src/net/cidr.ts). */
        users: z.array(smtpUser).default([]),
        /** Client networks (CIDR) that may send without AUTH. Everyone else must authenticate. */
        allowUnauthenticatedFrom: z.array(cidr).default(["127.0.0.0/8", "::1/128"]),
        /** New mail is refused (452 4.3.1 at MAIL FROM) while the data directory has less free space than this, in bytes; default the larger of 1 GiB and 2 × maxMessageBytes; 0 = no floor. */
        minFreeBytes: nonNegativeInt.optional(),
      })
      .transform((s) => ({ ...s, minFreeBytes: s.minFreeBytes ?? defaultMinFreeBytes(s.maxMessageBytes) }))
      .prefault({}),
    http: z
      .strictObject({
        host: z.string().min(1).default("127.0.0.1"),
        port: port.default(8025),
        /** Largest webhook body accepted, in bytes. */
        maxBodyBytes: positiveInt.default(65_536),
      })
      .prefault({}),
    dataDir: z.string().min(1).default("./data"),
    database: z
      .strictObject({
        /** PostgreSQL connection URL (postgres://user:password@host:port/db) shared by every instance; empty = the embedded SQLite database in dataDir. */
        url: z
          .string()
          .regex(/^((postgres|postgresql):\/\/\S+)?$/, { message: "expected a postgres:// or postgresql:// URL, or empty for SQLite" })
          .default(""),
      })
      .prefault({}),
    fax: z
      .strictObject({
        domains: z.array(z.string().min(1)).min(1).default(["fax.local"]),
        /** ISO 3166 country for numbers written without a country code. */
        defaultCountry: z
          .string()
          .regex(/^[A-Z]{2}$/, { message: "expected a two-letter ISO 3166 country code such as US" })
          .default("US"),
        /** "valid": the number must be assigned in its numbering plan; "possible": right length is enough; "auto": valid with RingCentral credentials, possible in sandbox mode (fictional +1 555 numbers). */
        numberCheck: z.enum(["auto", "valid", "possible"]).default("auto"),
        resolution: z.enum(["High", "Low"]).default("High"),
        /** RingCentral cover page template: 0 = none; omitted (-1) = the extension's default. */
        coverIndex: z.number().int().min(-1).max(28).default(-1),
        /** What goes into the cover page text. */
        coverText: z.enum(["body", "subject", "subject+body", "none"]).default("subject+body"),
        /** Strip quoted replies and signatures from the cover page text. */
        stripQuotes: z.boolean().default(true),
        /** Country (ISO 3166) RingCentral uses to read the recipient numbers (the send's isoCode); empty = RingCentral's default. Header X-Fax-Iso-Code overrides. */
        isoCode: z
          .string()
          .regex(/^([A-Z]{2})?$/, { message: "expected a two-letter ISO 3166 country code such as GB, or empty" })
          .default(""),
        /** Skip inline images that belong to an HTML body (signature logos). */
        skipInlineImages: z.boolean().default(true),
        /** Same Message-ID to the same recipients within this many seconds is not faxed twice. */
        duplicateWindowSeconds: nonNegativeInt.default(86_400),
        /** A fax with more pages than this is not sent; the sender gets a notice (RingCentral's own limit is 200). */
        maxPages: positiveInt.default(200),
        /** When RingCentral answers 429/5xx or the network fails: wait this long between attempts. */
        retrySchedule: schedule.default("30s,1m,2m,5m,10m,30m,1h*4"),
        /** Redial recipients whose fax failed busy / no answer / line trouble (src/outbound/redial.ts): waits before each redial; empty or "off" = no redials. */
        redial: redialSchedule
          .default("5m*2"),
        /** How often to poll a submitted fax for its final status. */
        statusPollSchedule: schedule.default("10s,30s,1m,2m,5m*12,15m"),
        /** Give up following a fax after this many hours and report it as unknown. */
        statusTimeoutHours: positiveInt.default(24),
        /** Send the sender a notice when the mail is accepted, not only when the fax is final. */
        notifyOnAccept: z.boolean().default(false),
        /** Attach the original documents to the sender report (off: documents may be PHI). */
        reportAttachDocuments: z.boolean().default(false),
        /** Attach the fax as RingCentral transmitted it: none, its first page, or all of it; auto = first-page, or none when inbound.delivery is link (PHI). */
        reportTransmittedCopy: z.enum(["auto", "none", "first-page", "all"]).default("auto"),
      })
      .prefault({}),
    mail: z
      .strictObject({
        /** Outbound mail transport, e.g. smtp://127.0.0.1:25; empty = write .eml files to <dataDir>/mailbox/. */
        url: z.string().default(""),
        from: z.string().min(3).default("faxbridge <faxbridge@localhost>"),
        /** Administrators told about dead-lettered received faxes, failed jobs, refused credentials and lost subscriptions (one mail per event, a digest at most every 15 minutes per kind); empty = nobody. */
        adminTo: z.array(z.string().min(3)).default([]),
        /** IANA time zone for every time shown in reports and received-fax mails, e.g. Europe/London. */
        timeZone: z
          .string()
          .min(1)
          .refine((tz) => isTimeZone(tz), { message: "expected an IANA time zone name such as UTC or America/New_York" })
          .default("UTC"),
      })
      .prefault({}),
    inbound: z
      .strictObject({
        /** Mailbox for received faxes that match no route. */
        defaultTo: z.string().min(3).default("fax-inbox@localhost"),
        routes: z.array(inboundRoute).default([]),
        /** How notifications reach us: a public webhook URL, a WebSocket, or only the periodic sync. */
        notifications: z.enum(["auto", "webhook", "websocket", "none"]).default("auto"),
        /** Public HTTPS URL RingCentral posts webhooks to (ends in /webhook/ringcentral). */
        webhookUrl: z.string().default(""),
        /** Shared secret RingCentral sends with every webhook delivery. */
        verificationToken: z.string().default(""),
        /** Safety-net sync interval, seconds, whatever notifications do. */
        syncIntervalSeconds: positiveInt.default(60),
        /** On first start, deliver faxes received this many hours back. */
        lookbackHours: nonNegativeInt.default(24),
        subjectTemplate: z.string().min(1).default("Fax from {from} ({pages} pages)"),
        /** "attachment" mails the PDF; "link" mails only where to fetch it (PHI). */
        delivery: z.enum(["attachment", "link"]).default("attachment"),
        markAsRead: z.boolean().default(false),
        /** Hours a link in a link-only notice (delivery: link, with web.publicUrl set) stays valid. */
        linkTtlHours: positiveInt.default(72),
        /** Who may open such a link: "sign-in" = a console user allowed to see the fax; "one-time" = anyone holding the link, once. */
        linkAccess: z.enum(["sign-in", "one-time"]).default("sign-in"),
        retrySchedule: schedule.default("30s,1m,5m,15m,30m,1h*6"),
      })
      .prefault({}),
    emulator: z
      .strictObject({
        /** Port of the built-in RingCentral emulator in sandbox mode (0 = any free port). */
        port: port.default(8026),
      })
      .prefault({}),
    policy: z
      .strictObject({
        /** The sender rule for fax domains without an entry in `domains`. */
        default: z.strictObject(senderRule).prefault({}),
        /** Per fax domain sender rules: [{ domain, senders, requireAuth, verifySender }]. */
        domains: z.array(domainPolicy).default([]),
        /** SMTP AUTH users bound to the addresses they may send as: [{ username, senders }]. */
        users: z.array(userBinding).default([]),
        /** Client networks (CIDR) whose Authentication-Results headers are trusted (verifySender "authentication-results"). */
        trustedRelays: z.array(cidr).default([]),
        /** authserv-ids (the first token of Authentication-Results) of those relays. */
        authservIds: z.array(z.string().min(1)).default([]),
        /** Timeout of one sender verification (DNS lookups), milliseconds. */
        verifyTimeoutMs: positiveInt.default(10_000),
        destinations: z
          .strictObject({
            /** Numbers matching these patterns are refused. */
            deny: z.array(numberPattern).default([]),
            /** Numbers matching these patterns skip the type and country checks. */
            allow: z.array(numberPattern).default([]),
            /** Number types (libphonenumber) refused. */
            blockTypes: z
              .array(z.enum(["PREMIUM_RATE", "SHARED_COST", "PERSONAL_NUMBER", "UAN", "VOICEMAIL", "PAGER", "TOLL_FREE", "VOIP", "MOBILE"]))
              .default(["PREMIUM_RATE", "SHARED_COST", "PERSONAL_NUMBER"]),
            /** Countries (ISO 3166) besides fax.defaultCountry that may be faxed; ["*"] = all. */
            allowCountries: z.array(z.string().regex(/^([A-Z]{2}|\*)$/, { message: "expected a two-letter ISO 3166 country code or *" })).default([]),
          })
          .prefault({}),
        quotas: z
          .strictObject({
            /** Fax recipients one sender identity (SMTP user, else verified From, else normalised envelope sender) may send per hour; 0 = no limit. */
            perSenderPerHour: nonNegativeInt.default(100),
            /** Fax recipients everyone together may send per hour; 0 = no limit. */
            globalPerHour: nonNegativeInt.default(1000),
            /** Fax recipients one unauthenticated client IP outside policy.trustedRelays may send per hour, whatever sender it names; 0 = no limit. */
            perClientIpPerHour: nonNegativeInt.default(300),
            /** Fax pages × recipients one sender may send per hour; 0 = no limit. */
            pagesPerSenderPerHour: nonNegativeInt.default(1000),
            /** Fax pages × recipients everyone together may send per hour; 0 = no limit. */
            pagesGlobalPerHour: nonNegativeInt.default(10_000),
          })
          .prefault({}),
        abuse: z
          .strictObject({
            /** New SMTP connections one client IP may open per minute (421 above); 0 = no limit. */
            connectionsPerMinute: nonNegativeInt.default(60),
            /** Networks (CIDR) the connection rate does not apply to (local relays). */
            exempt: z.array(cidr).default(["127.0.0.0/8", "::1/128"]),
            /** SMTP connections one client IP may hold open at once (421 4.7.0 above); 0 = no limit. Networks in `exempt` are not limited. */
            maxConnectionsPerIp: nonNegativeInt.default(10),
            /** Commands a session may send without progress (NOOP, RSET, VRFY, refused commands ...) before it is closed with 421 4.7.0; an accepted message or login starts the count over; 0 = no limit. */
            maxCommandsWithoutProgress: nonNegativeInt.default(20),
            /** Failed AUTH attempts from one IP within authFailureWindowSeconds before AUTH is refused; 0 = never. */
            authMaxFailures: nonNegativeInt.default(5),
            authFailureWindowSeconds: positiveInt.default(900),
            /** How long AUTH stays refused for that IP. */
            authLockoutSeconds: positiveInt.default(900),
            /** Delay of the first failed-AUTH reply, doubling per further failure (capped at 8x). */
            authFailureDelayMs: nonNegativeInt.default(1000),
            /** Notices for mails that cost nothing (refused after acceptance) one address may receive per hour; 0 = no limit. */
            noticesPerAddressPerHour: nonNegativeInt.default(10),
          })
          .prefault({}),
      })
      .prefault({}),
    retention: z
      .strictObject({
        /** Hours the documents of a finished fax (sent or received) are kept on disk; 0 = deleted as soon as it is done. Link-only inbound delivery keeps them at least 24 h. */
        documentsHours: nonNegativeInt.default(0),
        /** Days finished jobs and received-fax records are kept in the database (the audit log keeps the history). */
        recordsDays: positiveInt.default(90),
      })
      .prefault({}),
    api: z
      .strictObject({
        /** REST API tokens: [{ name, tokenHash, senders }]; empty = the API answers 401 to everyone. */
        tokens: z
          .array(apiToken)
          .refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, { message: "token names must be unique (a name is a sender identity for quotas and Idempotency-Key)" })
          .default([]),
      })
      .prefault({}),
    web: z
      .strictObject({
        /** Console operators: [{ username, passwordHash, role, senders }]; empty = nobody can sign in. */
        users: z
          .array(webUser)
          .refine((us) => new Set(us.map((u) => u.username)).size === us.length, { message: "user names must be unique" })
          .default([]),
        /** The console's address as users reach it (https://fax.example.com); used in mailed links. Empty = no links. */
        publicUrl: z
          .string()
          .regex(/^(https?:\/\/[^\s/?#]+(\/[^\s?#]*)?)?$/, { message: "expected an http(s) URL such as https://fax.example.com, or empty" })
          .default(""),
        /** Reverse proxies (CIDR) whose X-Forwarded-For/-Proto are believed: client addresses for lockouts and logs. Empty = none. */
        trustProxy: z.array(cidr).default([]),
        /** Hours a console sign-in lasts. */
        sessionHours: positiveInt.default(12),
        /** Key for session cookies and signed links; empty = generated once and kept in <dataDir>/web.key. */
        secret: z.string().default(""),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      })
      .prefault({}),
  });

export type Config = z.infer<typeof configSchema>;

/** The default disk floor: the larger of 1 GiB and two of the largest messages. */
export function defaultMinFreeBytes(maxMessageBytes: number): number {
  return Math.max(1024 ** 3, 2 * maxMessageBytes);
}
export type InboundRoute = z.infer<typeof inboundRoute>;
export type SmtpUser = z.infer<typeof smtpUser>;
export type ApiToken = z.infer<typeof apiToken>;
export type WebUser = z.infer<typeof webUser>;
export type PolicyConfig = z.infer<typeof configSchema>["policy"];
export type VerifySenderMode = z.infer<typeof verifySender>;

/**
 * The JWTs of `ringcentral.jwt`: one per pool extension, separated by commas
 * (or line breaks). Empty entries stay empty strings (the schema refuses them).
 */
export function splitJwts(jwt: string): string[] {
  if (jwt.trim() === "") return [];
  return jwt.split(/,|\r?\n/).map((j) => j.trim());
}

/** True when RingCentral credentials are configured; otherwise the daemon runs in sandbox mode. Credentials are all or nothing (credentialProblems in ./resolve.ts). */
export function hasCredentials(config: Config): boolean {
  const rc = config.ringcentral;
  return rc.clientId !== "" && rc.jwt !== "";
}

/** True when Intl knows the IANA time zone name. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
