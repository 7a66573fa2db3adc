/**
 * Configuration resolved once. The schema (./schema.ts) checks each setting
 * on its own, including schedules and networks (CIDRs) with the parsers the
 * daemon uses; the rules here check what one setting says about another, and
 * `resolveConfig` turns the `auto` values into what they mean. `loadConfig`
 * runs the rules (so `run`, `doctor` and `config --print` accept and refuse
 * the same configurations, listing every problem at once), and the daemon runs
 * them again for a configuration built in code.
 */
import { ConfigError, type ConfigProblem } from "../errors.js";
import { parseSchedule } from "../util/schedule.js";
import { hasCredentials, type Config } from "./schema.js";

/** Where a setting's value came from, for a problem: "env NAME", "file F line N", "default", or "config" when built in code. */
export type SourceOf = (path: string) => string;

/** A check of several settings together. */
export interface ConfigRule {
  /**
   * The settings it reads. The loader runs a rule whenever these are valid,
   * even if other settings are not, so one run reports every problem.
   */
  readonly reads: readonly string[];
  readonly check: (config: Config, at: SourceOf) => ConfigProblem[];
}

const CREDENTIALS = [
  ["clientId", "RC_CLIENT_ID"],
  ["clientSecret", "RC_CLIENT_SECRET"],
  ["jwt", "RC_JWT"],
] as const;

/**
 * RingCentral credentials are all or nothing: some but not all of them is a
 * configuration error naming what is missing (sandbox mode, which sends no
 * real fax, only when none is set). Fail closed rather than run a sandbox
 * that reports faxes as delivered.
 */
export function credentialProblems(config: Pick<Config, "ringcentral">): ConfigProblem[] {
  const rc = config.ringcentral;
  const set = CREDENTIALS.filter(([key]) => rc[key] !== "").map(([, env]) => env);
  if (set.length === 0 || set.length === CREDENTIALS.length) return [];
  return CREDENTIALS.filter(([key]) => rc[key] === "").map(([key, env]) => ({
    path: `ringcentral.${key}`,
    source: "missing",
    message: `${env} (or ${env}_FILE) is not set, but ${set.join(" and ")} ${set.length === 1 ? "is" : "are"}: RingCentral credentials are all or nothing (none at all = sandbox mode, no real faxes)`,
  }));
}

const bareDomain = (d: string): string => d.toLowerCase().replace(/\.$/, "");

/** policy.domains names fax domains; policy.users names SMTP users. */
export function policyProblems(config: Pick<Config, "policy" | "fax" | "smtp">, at: SourceOf = () => "config"): ConfigProblem[] {
  const faxDomains = new Set(config.fax.domains.map(bareDomain));
  const knownUsers = new Set(config.smtp.users.map((u) => u.username));
  return [
    ...config.policy.domains.flatMap((d, i) =>
      faxDomains.has(bareDomain(d.domain)) ? [] : [{ path: "policy.domains", source: at(`policy.domains.${i}.domain`), message: `${bareDomain(d.domain)} is not one of fax.domains` }],
    ),
    ...config.policy.users.flatMap((u, i) =>
      knownUsers.has(u.username) ? [] : [{ path: "policy.users", source: at(`policy.users.${i}.username`), message: `${u.username} is not one of smtp.users` }],
    ),
  ];
}

function webhookProblems(config: Config, at: SourceOf): ConfigProblem[] {
  if (config.inbound.notifications !== "webhook" || config.inbound.webhookUrl !== "") return [];
  return [
    {
      path: "inbound.notifications",
      source: at("inbound.notifications"),
      message: '"webhook" needs inbound.webhookUrl (the public https URL ending in /webhook/ringcentral), which is empty',
    },
  ];
}

/** STARTTLS needs the key and the certificate: one without the other is a mistake, not "no TLS". */
function tlsProblems(config: Config, at: SourceOf): ConfigProblem[] {
  const { tlsKey, tlsCert } = config.smtp;
  if ((tlsKey === "") === (tlsCert === "")) return [];
  const [given, missing] = tlsKey !== "" ? ["smtp.tlsKey", "smtp.tlsCert"] : ["smtp.tlsCert", "smtp.tlsKey"];
  return [{ path: missing, source: "missing", message: `${given} is set (${at(given)}) but ${missing} is not: STARTTLS needs both, or neither` }];
}

export const CONFIG_RULES: readonly ConfigRule[] = [
  { reads: ["ringcentral.clientId", "ringcentral.clientSecret", "ringcentral.jwt"], check: (c) => credentialProblems(c) },
  { reads: ["policy.domains", "policy.users", "fax.domains", "smtp.users"], check: policyProblems },
  { reads: ["inbound.notifications", "inbound.webhookUrl"], check: webhookProblems },
  { reads: ["smtp.tlsKey", "smtp.tlsCert"], check: tlsProblems },
];

/** Every cross-setting problem of a parsed configuration. */
export function configProblems(config: Config, at: SourceOf = () => "config"): ConfigProblem[] {
  return CONFIG_RULES.flatMap((r) => r.check(config, at));
}

export type NotificationMode = "webhook" | "websocket" | "none";

/** Which transport `inbound.notifications` means with the given webhook URL. */
export function notificationMode(config: Pick<Config, "inbound">): NotificationMode {
  const n = config.inbound.notifications;
  if (n === "auto") return config.inbound.webhookUrl !== "" ? "webhook" : "websocket";
  if (n === "webhook" && config.inbound.webhookUrl === "") {
    throw new Error('inbound.notifications is "webhook" but inbound.webhookUrl is empty');
  }
  return n;
}

export type NumberCheckMode = Exclude<Config["fax"]["numberCheck"], "auto">;

/** fax.numberCheck: "auto" is "valid" with RingCentral credentials and "possible" in sandbox mode (fictional +1 555 numbers). */
export function numberCheckMode(config: Config): NumberCheckMode {
  const n = config.fax.numberCheck;
  if (n !== "auto") return n;
  return hasCredentials(config) ? "valid" : "possible";
}

export type TransmittedCopyMode = Exclude<Config["fax"]["reportTransmittedCopy"], "auto">;

/** fax.reportTransmittedCopy: "auto" is the first page, or none when received faxes go out as links only (PHI). */
export function transmittedCopyMode(config: Pick<Config, "fax"> & { inbound?: Pick<Config["inbound"], "delivery"> }): TransmittedCopyMode {
  const setting = config.fax.reportTransmittedCopy;
  if (setting !== "auto") return setting;
  return config.inbound?.delivery === "link" ? "none" : "first-page";
}

/** What the configuration means once every `auto` is decided and every schedule read. */
export interface ResolvedConfig {
  readonly config: Readonly<Config>;
  /** No RingCentral credentials: the built-in emulator answers instead. */
  readonly sandbox: boolean;
  readonly numberCheck: NumberCheckMode;
  readonly notifications: NotificationMode;
  readonly transmittedCopy: TransmittedCopyMode;
  /** Waits in ms. */
  readonly schedules: {
    readonly faxRetry: readonly number[];
    readonly faxStatusPoll: readonly number[];
    readonly inboundRetry: readonly number[];
  };
}

/** Check a parsed configuration as `loadConfig` does and decide its `auto` values; throws a ConfigError listing every problem. */
export function resolveConfig(config: Readonly<Config>): ResolvedConfig {
  const problems = configProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    config,
    sandbox: !hasCredentials(config),
    numberCheck: numberCheckMode(config),
    notifications: notificationMode(config),
    transmittedCopy: transmittedCopyMode(config),
    schedules: {
      faxRetry: parseSchedule(config.fax.retrySchedule),
      faxStatusPoll: parseSchedule(config.fax.statusPollSchedule),
      inboundRetry: parseSchedule(config.inbound.retrySchedule),
    },
  };
}
