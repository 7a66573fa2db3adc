/**
 * Shared pieces of the operator commands: argument parsing that turns every
 * mistake into a UsageError (exit 2), config loading, opening the stores the
 * way the daemon does, and plain-text tables.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { errorMessage, NamedError } from "../errors.js";
import { silentLogger } from "../log.js";
import { databaseName, openStores as openBackend } from "../store/open.js";
import type { DocumentStore, InboundStore, OutboundStore, QuotaStore } from "../store/ports.js";

/** Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A mistake on the command line: printed without a stack, exit 2. */
export class UsageError extends NamedError {}

/** The operation could not be done (unknown id, a refusal): printed in plain words, exit 1. */
export class CommandError extends NamedError {}

/**
 * Runs the subcommand `argv[0]` names with the rest of the arguments. Without
 * one, `usage` is printed and the exit code is 2; `help`, `-h` or `--help`
 * print it with exit 0; an unknown name is a UsageError listing the known ones.
 */
export function runSubcommand(argv: string[], commands: Readonly<Record<string, (argv: string[]) => Promise<number>>>, usage: string): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "-h" || sub === "--help" || sub === "help") {
    process.stdout.write(usage);
    return Promise.resolve(sub === undefined ? EXIT_USAGE : 0);
  }
  const run = Object.hasOwn(commands, sub) ? commands[sub] : undefined;
  if (run === undefined) {
    const names = Object.keys(commands);
    throw new UsageError(`unknown subcommand "${sub}" (use ${names.slice(0, -1).join(", ")} or ${names.at(-1) ?? ""})`);
  }
  return run(rest);
}

export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/** Options every data command takes. */
export const COMMON_OPTIONS = {
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpec;

export function parse<T extends OptionSpec>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

export function loadConfigFrom(file: unknown): Readonly<Config> {
  return loadConfig({ file: typeof file === "string" ? file : undefined });
}

/** A whole number ≥ 1 from an option value. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`--${name} must be a whole number of at least 1, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** One value out of a fixed set, or a UsageError listing the set. */
export function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`--${name} must be one of ${allowed.join(", ")}; got ${JSON.stringify(value)}`);
}

export interface Stores {
  readonly outbound: OutboundStore;
  readonly inbound: InboundStore;
  readonly documents: DocumentStore;
  readonly quota: QuotaStore;
  readonly dataDir: string;
  close(): Promise<void>;
}

/**
 * Open the stores the way the daemon does, as an operator: this runs next to
 * a running daemon (SQLite: WAL mode and a busy timeout); every change is a
 * compare-and-set transition, so a job the daemon moved meanwhile is refused,
 * never overwritten.
 */
export async function openStores(config: Readonly<Config>): Promise<Stores> {
  const dataDir = resolve(config.dataDir);
  try {
    const stores = await openBackend(config, silentLogger(), { role: "operator" });
    return { outbound: stores.outbound, inbound: stores.inbound, documents: stores.documents, quota: stores.quota, dataDir, close: () => stores.close() };
  } catch (err) {
    throw new CommandError(`cannot open ${databaseName(config)}: ${errorMessage(err)}`);
  }
}

/** Run `fn` with the stores open, closing them afterwards whatever happens. */
export async function withStores<T>(config: Readonly<Config>, fn: (stores: Stores) => Promise<T>): Promise<T> {
  const stores = await openStores(config);
  try {
    return await fn(stores);
  } finally {
    await stores.close();
  }
}

// ---------------------------------------------------------------- output

export function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Local time, to the second, e.g. "2026-03-01 14:05:09"; "-" for none. */
export function when(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** ISO time for JSON output; null for none. */
export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();
}

/** "in 4m", "3h ago": how far a time is from now. */
export function relative(ms: number, now = Date.now()): string {
  const diff = ms - now;
  const abs = Math.abs(diff);
  const unit = abs < 60_000 ? `${Math.round(abs / 1000)}s` : abs < 3_600_000 ? `${Math.round(abs / 60_000)}m` : abs < 172_800_000 ? `${Math.round(abs / 3_600_000)}h` : `${Math.round(abs / 86_400_000)}d`;
  return diff >= 0 ? `in ${unit}` : `${unit} ago`;
}

/** Cut a cell to `max` characters and keep it on one line. */
export function cell(value: string | null | undefined, max = 40): string {
  const v = (value ?? "").replace(/\s+/g, " ").trim();
  if (v === "") return "-";
  return v.length > max ? `${v.slice(0, max - 1)}…` : v;
}

/** Left-aligned columns separated by two spaces. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}
