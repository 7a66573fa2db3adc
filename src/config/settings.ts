/**
 * Every configuration leaf with its environment variable. The rule: a key
 * `a.bC.d` is `FAXBRIDGE_A_B_C_D`, except `ringcentral.*`, which is `RC_*`,
 * and `inbound.defaultTo`, which is `FAXBRIDGE_INBOUND_TO` (names fixed by
 * deployments). Secrets may instead be read from a file named by `<ENV>_FILE`
 * (container secrets); every variable accepts `_FILE`.
 */

export type SettingKind = "string" | "int" | "bool" | "list" | "json";

export interface Setting {
  /** Dotted path in the config object. */
  readonly path: string;
  readonly env: string;
  readonly kind: SettingKind;
  /** Redacted in `config --print` and never logged. */
  readonly secret: boolean;
}

function envName(path: string): string {
  if (path === "inbound.defaultTo") return "FAXBRIDGE_INBOUND_TO";
  const snake = path
    .split(".")
    .map((seg) => seg.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase())
    .join("_");
  return snake.startsWith("RINGCENTRAL_") ? `RC_${snake.slice("RINGCENTRAL_".length)}` : `FAXBRIDGE_${snake}`;
}

const LEAVES: ReadonlyArray<readonly [path: string, kind: SettingKind, secret?: boolean]> = [
  ["ringcentral.serverUrl", "string"],
  ["ringcentral.clientId", "string"],
  ["ringcentral.clientSecret", "string", true],
  ["ringcentral.jwt", "string", true],
  ["ringcentral.extensions", "list"],
  ["ringcentral.rateLimits.light", "int"],
  ["ringcentral.rateLimits.medium", "int"],
  ["ringcentral.rateLimits.heavy", "int"],
  ["ringcentral.rateLimits.auth", "int"],
  ["ringcentral.rateLimits.windowSeconds", "int"],
  ["ringcentral.requestTimeoutMs", "int"],
  ["ringcentral.faxLayout", "string"],
  ["ringcentral.mediaOrigins", "list"],
  ["smtp.host", "string"],
  ["smtp.port", "int"],
  ["smtp.hostname", "string"],
  ["smtp.maxMessageBytes", "int"],
  ["smtp.maxRecipients", "int"],
  ["smtp.maxConnections", "int"],
  ["smtp.tlsKey", "string"],
  ["smtp.tlsCert", "string"],
  ["smtp.users", "json", true],
  ["smtp.allowUnauthenticatedFrom", "list"],
  ["smtp.minFreeBytes", "int"],
  ["http.host", "string"],
  ["http.port", "int"],
  ["http.maxBodyBytes", "int"],
  ["dataDir", "string"],
  ["database.url", "string", true],
  ["fax.domains", "list"],
  ["fax.defaultCountry", "string"],
  ["fax.numberCheck", "string"],
  ["fax.resolution", "string"],
  ["fax.coverIndex", "int"],
  ["fax.coverText", "string"],
  ["fax.stripQuotes", "bool"],
  ["fax.isoCode", "string"],
  ["fax.skipInlineImages", "bool"],
  ["fax.duplicateWindowSeconds", "int"],
  ["fax.maxPages", "int"],
  ["fax.retrySchedule", "string"],
  ["fax.redial", "string"],
  ["fax.statusPollSchedule", "string"],
  ["fax.statusTimeoutHours", "int"],
  ["fax.notifyOnAccept", "bool"],
  ["fax.reportAttachDocuments", "bool"],
  ["fax.reportTransmittedCopy", "string"],
  ["mail.url", "string", true],
  ["mail.from", "string"],
  ["mail.adminTo", "list"],
  ["mail.timeZone", "string"],
  ["inbound.defaultTo", "string"],
  ["inbound.routes", "json"],
  ["inbound.notifications", "string"],
  ["inbound.webhookUrl", "string"],
  ["inbound.verificationToken", "string", true],
  ["inbound.syncIntervalSeconds", "int"],
  ["inbound.lookbackHours", "int"],
  ["inbound.subjectTemplate", "string"],
  ["inbound.delivery", "string"],
  ["inbound.markAsRead", "bool"],
  ["inbound.retrySchedule", "string"],
  ["inbound.linkTtlHours", "int"],
  ["inbound.linkAccess", "string"],
  ["emulator.port", "int"],
  ["policy.default.senders", "list"],
  ["policy.default.requireAuth", "bool"],
  ["policy.default.verifySender", "string"],
  ["policy.domains", "json"],
  ["policy.users", "json"],
  ["policy.trustedRelays", "list"],
  ["policy.authservIds", "list"],
  ["policy.verifyTimeoutMs", "int"],
  ["policy.destinations.deny", "list"],
  ["policy.destinations.allow", "list"],
  ["policy.destinations.blockTypes", "list"],
  ["policy.destinations.allowCountries", "list"],
  ["policy.quotas.perSenderPerHour", "int"],
  ["policy.quotas.globalPerHour", "int"],
  ["policy.quotas.perClientIpPerHour", "int"],
  ["policy.quotas.pagesPerSenderPerHour", "int"],
  ["policy.quotas.pagesGlobalPerHour", "int"],
  ["policy.abuse.connectionsPerMinute", "int"],
  ["policy.abuse.exempt", "list"],
  ["policy.abuse.maxConnectionsPerIp", "int"],
  ["policy.abuse.maxCommandsWithoutProgress", "int"],
  ["policy.abuse.authMaxFailures", "int"],
  ["policy.abuse.authFailureWindowSeconds", "int"],
  ["policy.abuse.authLockoutSeconds", "int"],
  ["policy.abuse.authFailureDelayMs", "int"],
  ["policy.abuse.noticesPerAddressPerHour", "int"],
  ["retention.documentsHours", "int"],
  ["retention.recordsDays", "int"],
  ["api.tokens", "json", true],
  ["web.users", "json", true],
  ["web.publicUrl", "string"],
  ["web.trustProxy", "list"],
  ["web.sessionHours", "int"],
  ["web.secret", "string", true],
  ["log.level", "string"],
];

export const SETTINGS: readonly Setting[] = LEAVES.map(([path, kind, secret]) => ({
  path,
  env: envName(path),
  kind,
  secret: secret === true,
}));
