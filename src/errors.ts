/**
 * The error taxonomy. Every error that crosses a module boundary is one of
 * these, with a stable `name` so callers can use `instanceof` instead of
 * matching messages.
 */

/** An Error whose `name` is its class's name (stable: logs and tests read it), so each error class need not set it. */
export class NamedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** SMTP reply codes we answer with. smtp-server adds the enhanced status code from the basic code. */
export type SmtpReplyCode = 421 | 450 | 451 | 452 | 454 | 530 | 535 | 538 | 550 | 551 | 552 | 553 | 554;

/**
 * A refusal at SMTP time. smtp-server reads `responseCode`; an Error without it
 * becomes a permanent 5xx before DATA, so every hook rejects with one of these.
 * With `enhanced` (e.g. "5.7.1") the reply carries that enhanced status code
 * instead of the one smtp-server derives from the basic code (src/smtp/enhanced.ts).
 */
export class SmtpReply extends NamedError {
  readonly responseCode: SmtpReplyCode;
  constructor(responseCode: SmtpReplyCode, message: string, options?: ErrorOptions & { enhanced?: string }) {
    super(options?.enhanced === undefined ? message : `${options.enhanced} ${message}`, options);
    this.responseCode = responseCode;
  }
}

/** One configuration problem: which key, where its value came from, and what was expected. */
export interface ConfigProblem {
  readonly path: string;
  readonly source: string;
  readonly message: string;
}

export class ConfigError extends NamedError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p.path} (${p.source}): ${p.message}`).join("\n"),
    );
    this.problems = problems;
  }
}

/** Render an unknown thrown value as a short message, never including secrets the caller passed in. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
