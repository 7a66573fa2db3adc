import { pino, type Logger, type DestinationStream, type LoggerOptions } from "pino";

export type { Logger } from "pino";

/**
 * Paths pino blanks out wherever they appear in a log object. Tokens, client
 * secrets, JWTs, SMTP AUTH passwords and Authorization headers never reach a log.
 */
export const REDACT_PATHS: readonly string[] = [
  "password",
  "*.password",
  "pass",
  "*.pass",
  "auth.pass",
  "*.auth.pass",
  "passwordHash",
  "*.passwordHash",
  "*.*.passwordHash",
  "clientSecret",
  "*.clientSecret",
  "jwt",
  "*.jwt",
  "token",
  "*.token",
  "accessToken",
  "*.accessToken",
  "refreshToken",
  "*.refreshToken",
  "access_token",
  "*.access_token",
  "refresh_token",
  "*.refresh_token",
  "verificationToken",
  "*.verificationToken",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "req.headers.authorization",
  'headers["verification-token"]',
  'headers["validation-token"]',
  "assertion",
  "*.assertion",
];

export interface LogOptions {
  level?: string;
  /** A destination stream (tests inject one to read log lines). */
  destination?: DestinationStream;
  /** Extra fields bound to every line. */
  base?: Record<string, unknown>;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? "info",
    redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
    base: { service: "faxbridge", ...(opts.base ?? {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything, for library code used without a daemon. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
