#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadConfig, redactedConfig } from "./config/load.js";
import type { Config } from "./config/schema.js";
import { ConfigError, errorMessage } from "./errors.js";
import { createLogger } from "./log.js";
import { CommandError, EXIT_USAGE, UsageError } from "./cli/common.js";

export { UsageError };

const USAGE = `usage: faxbridge <command> [options]

commands:
  run [--config PATH] [--role R]      run the daemon (sandbox mode without RingCentral credentials)
  doctor                              check configuration, data directory, RingCentral, mail; exit 1 on a FAIL
  queue list|show|retry|cancel        outbound faxes (email → fax): list, inspect, retry, withdraw
  inbound list|redeliver              received faxes (fax → email): list, mail again
  send --to NUMBER FILE...            queue a fax from files, without email
  config --print [--config PATH]      show the effective configuration, secrets redacted
  emulator [--port N] [...]           run the RingCentral emulator alone (see --help)
  hash-password                       read a password on stdin, print its hash for smtp.users

  "faxbridge <command> --help" explains a command.

options:
  --config PATH   YAML config file (default: $FAXBRIDGE_CONFIG, else built-in defaults)
  --json          machine-readable output where a command prints data
  -h, --help      this text
`;

type Command = (argv: string[]) => Promise<number>;

/** --help of the commands that do not print their own. */
const HELP: Record<string, string> = {
  run: `usage: faxbridge run [--config PATH] [--role all|intake|worker]

Run the daemon: SMTP intake, outbound fax worker, inbound fax delivery, HTTP
(health, metrics, webhooks). Without RingCentral credentials (RC_CLIENT_ID,
RC_JWT) it runs in sandbox mode against a built-in RingCentral emulator.
Stops cleanly on SIGTERM/SIGINT.

  --role all      (default) the intake (SMTP, API, console, health) in this
                  process and the fax pipeline in a child process it starts,
                  restarts if it dies alone, and stops with it
  --role intake   the intake only: mail is accepted and queued; a worker
                  elsewhere on the same data directory or PostgreSQL sends it
  --role worker   the fax pipeline only (outbound, inbound, janitor, alerts)
                  with HTTP for health, metrics and the RingCentral webhook
`,
  config: `usage: faxbridge config --print [--config PATH]

Print the effective configuration (defaults, then the file, then environment
variables) as JSON, secrets redacted. Exits 2 listing every problem when the
configuration is invalid.
`,
  emulator: `usage: faxbridge emulator [options]

Run the RingCentral API emulator alone (for tests and demos).

  --host H, --port N                     where to listen (default 127.0.0.1, any free port)
  --light-limit N, --medium-limit N,
  --heavy-limit N, --auth-limit N        requests per window per rate-limit group
  --window-s N, --penalty-s N            rate-limit window and penalty, seconds
  --strict-client-id ID --strict-client-secret S --strict-jwt JWT
                                         accept only these credentials
  --extension-jwt JWT                    (repeatable) a JWT of the next extension (after --strict-jwt's
                                         200000001); each distinct JWT logs in as its own extension
  --media-port N                         where attachment content is served (a second origin, default any free port)
  --queued-ms N                          how long a sent fax stays Queued before transmission (default 1500)
  --page-ms N                            transmission time per page (default 0; RingCentral: about 60000)
  --fax-format pdf|tiff                  the format sent faxes are stored in (default pdf)
  --permissions P[,P...]                 app permissions in the token's scope (e.g. ReadMessages);
                                         operations needing another answer 403 InsufficientPermissions
`,
  "hash-password": `usage: faxbridge hash-password < file

Read a password on standard input and print its scrypt hash for smtp.users
(passwordHash).
`,
};

const COMMANDS: Record<string, Command> = {
  run: cmdRun,
  doctor: async (argv) => (await import("./cli/doctor.js")).cmdDoctor(argv),
  queue: async (argv) => (await import("./cli/queue.js")).cmdQueue(argv),
  inbound: async (argv) => (await import("./cli/inbound.js")).cmdInbound(argv),
  send: async (argv) => (await import("./cli/send.js")).cmdSend(argv),
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
  const help = HELP[name];
  if (help !== undefined && (rest.includes("--help") || rest.includes("-h"))) {
    process.stdout.write(help);
    return 0;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`faxbridge: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`faxbridge ${name}: ${err.message}\n(see: faxbridge ${name} --help)\n`);
      return EXIT_USAGE;
    }
    if (err instanceof CommandError) {
      process.stderr.write(`faxbridge ${name}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`faxbridge ${name}: ${errorMessage(err)}\n`);
    return 1;
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
  const rest = parse(argv, { config: { type: "string" }, print: { type: "boolean" }, json: { type: "boolean" }, role: { type: "string" } });
  const file = rest.values.config;
  return { config: loadConfig({ file: typeof file === "string" ? file : undefined }), rest };
}

async function cmdConfig(argv: string[]): Promise<number> {
  const { config, rest } = configFrom(argv);
  if (rest.values.print !== true) throw new UsageError("say --print to show the effective configuration");
  process.stdout.write(`${JSON.stringify(redactedConfig(config), null, 2)}\n`);
  return 0;
}

const ROLES = ["all", "intake", "worker"] as const;

async function cmdRun(argv: string[]): Promise<number> {
  // Each accepted mail costs several filesystem calls on libuv's pool (default 4 threads);
  // a larger pool keeps concurrent SMTP sessions from queueing behind each other's fsyncs.
  process.env.UV_THREADPOOL_SIZE ??= "16";
  const { config, rest } = configFrom(argv);
  const role = rest.values.role ?? "all";
  if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(", ")}`);
  const logger = createLogger({ level: config.log.level });
  let finished: Promise<number>;
  if (role === "worker") {
    const { startWorkerRole } = await import("./roles/worker.js");
    finished = (await startWorkerRole(config, { logger, signals: true })).finished;
  } else {
    const { startDaemon } = await import("./app.js");
    // --role all: the pipeline runs in a child process, off the intake's event loop.
    finished = (await startDaemon(config, { logger, signals: true, role: role === "intake" ? "intake" : "all", pipeline: "process" })).finished;
  }
  const code = await finished;
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
