#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadConfig, redactedConfig } from "./config/load.js";
import type { Config } from "./config/schema.js";
import { ConfigError, errorMessage } from "./errors.js";
import { createLogger } from "./log.js";

/** Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. */
const EXIT_USAGE = 2;

const USAGE = `usage: faxbridge <command> [options]

commands:
  run [--config PATH]                 run the daemon (sandbox mode without RingCentral credentials)
  config --print [--config PATH]      show the effective configuration, secrets redacted
  emulator [--port N] [...]           run the RingCentral emulator alone (see --help)
  hash-password                       read a password on stdin, print its hash for smtp.users

options:
  --config PATH   YAML config file (default: $FAXBRIDGE_CONFIG, else built-in defaults)
  --json          machine-readable output where a command prints data
  -h, --help      this text
`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  run: cmdRun,
  config: cmdConfig,
  emulator: cmdEmulator,
  "hash-password": cmdHashPassword,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(USAGE);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`faxbridge: unknown command "${name}"\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`faxbridge: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`faxbridge ${name}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`faxbridge ${name}: ${errorMessage(err)}\n`);
    return 1;
  }
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function parse<T extends Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

function configFrom(argv: string[]): { config: Readonly<Config>; rest: ReturnType<typeof parse> } {
  const rest = parse(argv, { config: { type: "string" }, print: { type: "boolean" }, json: { type: "boolean" } });
  const file = rest.values.config;
  return { config: loadConfig({ file: typeof file === "string" ? file : undefined }), rest };
}

async function cmdConfig(argv: string[]): Promise<number> {
  const { config, rest } = configFrom(argv);
  if (rest.values.print !== true) throw new UsageError("say --print to show the effective configuration");
  process.stdout.write(`${JSON.stringify(redactedConfig(config), null, 2)}\n`);
  return 0;
}

async function cmdRun(argv: string[]): Promise<number> {
  // Each accepted mail costs several filesystem calls on libuv's pool (default 4 threads);
  // a larger pool keeps concurrent SMTP sessions from queueing behind each other's fsyncs.
  process.env.UV_THREADPOOL_SIZE ??= "16";
  const { config } = configFrom(argv);
  const logger = createLogger({ level: config.log.level });
  const { startDaemon } = await import("./app.js");
  const daemon = await startDaemon(config, { logger, signals: true });
  const code = await daemon.finished;
  // Stray timers or sockets must not keep a stopped daemon alive.
  process.exit(code);
}

async function cmdEmulator(argv: string[]): Promise<number> {
  const { runEmulatorCli } = await import("./emulator/index.js");
  await runEmulatorCli(argv);
  return 0;
}

async function cmdHashPassword(argv: string[]): Promise<number> {
  parse(argv, {});
  const { hashPassword } = await import("./smtp/password.js");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (password === "") throw new UsageError("give the password on standard input, e.g. `faxbridge hash-password < file`");
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}

// Run when executed directly (the `faxbridge` bin), not when imported by tests.
if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`faxbridge: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    },
  );
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
