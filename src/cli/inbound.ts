/** `faxbridge inbound list|redeliver`: received faxes (fax → email). */
import { INBOUND_STATES, type InboundFax, type InboundState } from "../store/inbound.js";
import { cell, COMMON_OPTIONS, CommandError, iso, loadConfigFrom, oneOf, out, parse, positiveInt, printJson, relative, runSubcommand, table, UsageError, when, withStores } from "./common.js";

export const INBOUND_USAGE = `usage: faxbridge inbound <list|redeliver> [options]

  inbound list [--state S[,S...]] [--limit N] [--after ID]
        received faxes, oldest first (page on with --after <last id>)
        states: discovered (waiting to be mailed), delivered, dead (gave up mailing it)
  inbound redeliver ID
        mail a delivered or dead fax again (same Message-ID, so mail systems that
        already have it drop the copy)

options:
  --config PATH   YAML config file (default: $FAXBRIDGE_CONFIG, else built-in defaults)
  --json          machine-readable output
  -h, --help      this text
`;

export function cmdInbound(argv: string[]): Promise<number> {
  return runSubcommand(argv, { list: inboundList, redeliver: inboundRedeliver }, INBOUND_USAGE);
}

export function inboundSummary(f: InboundFax): Record<string, unknown> {
  return {
    id: f.id,
    state: f.state,
    extension: f.extension,
    rcMessageId: f.rcMessageId,
    from: f.message.from,
    to: f.message.to,
    pages: f.message.pages ?? null,
    receivedAt: f.message.creationTime,
    discoveredAt: iso(f.discoveredAt),
    attempts: f.attempts,
    nextAttemptAt: f.state === "discovered" ? iso(f.nextAttemptAt) : null,
    mailTo: f.route?.mailTo ?? null,
    deliveredAt: iso(f.deliveredAt),
    lastError: f.lastError,
    mailMessageId: f.mailMessageId,
  };
}

async function inboundList(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...COMMON_OPTIONS, state: { type: "string" }, limit: { type: "string" }, after: { type: "string" } });
  if (values.help === true) {
    process.stdout.write(INBOUND_USAGE);
    return 0;
  }
  const states: InboundState[] | undefined = values.state?.split(",").map((s) => oneOf("state", s.trim(), INBOUND_STATES));
  const limit = positiveInt("limit", values.limit, 50);
  const config = loadConfigFrom(values.config);
  const faxes = await withStores(config, (s) =>
    s.inbound.listInbound({ limit, ...(states !== undefined && { state: states }), ...(values.after !== undefined && { after: values.after }) }),
  );
  if (values.json === true) {
    printJson(faxes.map(inboundSummary));
    return 0;
  }
  if (faxes.length === 0) {
    out(states === undefined ? "no received faxes" : `no received faxes in state ${states.join(" or ")}`);
    return 0;
  }
  const now = Date.now();
  const rows = faxes.map((f) => [
    f.id,
    f.state,
    cell(f.message.from === "" ? "(withheld)" : f.message.from, 20),
    cell(f.message.to.join(","), 20),
    when(Date.parse(f.message.creationTime)),
    f.message.pages !== undefined ? String(f.message.pages) : "-",
    String(f.attempts),
    f.state === "discovered" ? (f.nextAttemptAt > now ? relative(f.nextAttemptAt, now) : "due") : "-",
    cell(f.route?.mailTo.join(","), 30),
    f.rcMessageId,
    cell(f.lastError, 60),
  ]);
  process.stdout.write(table(["ID", "STATE", "FROM", "TO", "RECEIVED", "PAGES", "ATT", "NEXT", "MAILED TO", "RC ID", "ERROR"], rows));
  if (faxes.length === limit) out(`(first ${limit}; more with --after ${faxes.at(-1)?.id ?? ""})`);
  return 0;
}

async function inboundRedeliver(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON_OPTIONS, true);
  if (values.help === true) {
    process.stdout.write(INBOUND_USAGE);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] === undefined || positionals[0] === "") throw new UsageError("inbound redeliver takes exactly one fax id");
  const id = positionals[0];
  const config = loadConfigFrom(values.config);
  const result = await withStores(config, async (s) => {
    const before = await s.inbound.get(id);
    if (before === undefined) throw new CommandError(`no received fax with id ${id} (see faxbridge inbound list)`);
    if (before.state === "discovered") return { fax: before, message: `fax ${id} is already waiting to be mailed (attempt ${before.attempts + 1}); nothing to do` };
    const after = await s.inbound.redeliver(id, Date.now());
    if (after === undefined) throw new CommandError(`fax ${id} no longer exists`);
    return { fax: after, message: `fax ${id} (was ${before.state}) is queued to be mailed again${before.route !== null ? `; it went to ${before.route.mailTo.join(", ")} before` : ""}` };
  });
  if (values.json === true) printJson({ ...inboundSummary(result.fax), message: result.message });
  else out(result.message);
  return 0;
}
