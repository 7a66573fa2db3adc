/**
 * `npm run bench`: measures intake throughput, memory for a large fax, send
 * pacing against the Heavy rate limit, and inbound latency, and prints one
 * JSON document with the figures and the targets they are measured against.
 * Benchmarks report; they never fail on a number (tests check behaviour).
 *
 * Run one part: `npm run bench -- intake` (intake | memory | pacing | inbound).
 */
import { cpus, totalmem } from "node:os";
import { benchInbound } from "./inbound.js";
import { benchIntake } from "./intake.js";
import { benchMemory } from "./memory.js";
import { benchPacing } from "./pacing.js";

const PARTS: Record<string, () => Promise<unknown>> = {
  intake: async () => ({ ...(await benchIntake({ messages: 4000, connections: 8 })), target: "messagesPerSecond >= 1100 (Postfix on this machine)" }),
  memory: async () => ({ ...(await benchMemory({ attachmentBytes: 45 * 1024 * 1024 })), target: "growthBytes <= 64 MiB" }),
  pacing: async () => ({ ...(await benchPacing({ faxes: 40, heavyLimit: 10, windowSeconds: 6 })), target: "ratio >= 0.95 with http429 == 0" }),
  inbound: async () => ({ ...(await benchInbound({ faxes: 200 })), target: "webhook.p50Ms <= 300, rcCallsPerFax <= 3" }),
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => a !== "--");
  const names = wanted.length > 0 ? wanted : Object.keys(PARTS);
  const results: Record<string, unknown> = {};
  for (const name of names) {
    const part = PARTS[name];
    if (!part) throw new Error(`unknown bench part "${name}" (known: ${Object.keys(PARTS).join(", ")})`);
    process.stderr.write(`bench: ${name}…\n`);
    const started = Date.now();
    try {
      results[name] = { ...(await part()) as object, benchSeconds: (Date.now() - started) / 1000 };
    } catch (err) {
      results[name] = { error: err instanceof Error ? err.message : String(err) };
    }
  }
  const machine = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem() };
  process.stdout.write(`${JSON.stringify({ machine, results }, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
