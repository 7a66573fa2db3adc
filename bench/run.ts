/**
 * `npm run bench`: measures intake throughput, memory for a large fax, send
 * pacing against the Heavy rate limit, send throughput of an extension pool,
 * and inbound latency, and prints one JSON document with the figures and the
 * targets they are measured against. Benchmarks report; they never fail on a
 * number (tests check behaviour).
 *
 * Run one part: `npm run bench -- intake` (intake | memory | pacing | pool | inbound | daemon).
 * FAXBRIDGE_BENCH_SMOKE=1 shrinks the pool and daemon parts to a few faxes
 * and seconds: proof that they run, not a measurement.
 */
import { cpus, totalmem } from "node:os";
import { benchDaemon } from "./daemon.js";
import { benchInbound } from "./inbound.js";
import { benchIntake } from "./intake.js";
import { benchMemory } from "./memory.js";
import { benchPacing } from "./pacing.js";
import { benchPool } from "./pool.js";

const SMOKE = (process.env["FAXBRIDGE_BENCH_SMOKE"] ?? "") !== "" && process.env["FAXBRIDGE_BENCH_SMOKE"] !== "0";

const PARTS: Record<string, () => Promise<unknown>> = {
  intake: async () => ({ ...(await benchIntake({ messages: 4000, connections: 8 })), target: "messagesPerSecond >= 1100 (Postfix on this machine); postgres: the same load on the PostgreSQL backend, reported beside it (skipped when no server is reachable)" }),
  memory: async () => ({ ...(await benchMemory({ attachmentBytes: 45 * 1024 * 1024 })), target: "growthBytes <= 64 MiB" }),
  pacing: async () => ({ ...(await benchPacing({ faxes: 40, heavyLimit: 10, windowSeconds: 6 })), target: "ratio >= 0.95 with http429 == 0" }),
  pool: async () => ({
    ...(await benchPool(SMOKE ? { heavyLimit: 2, windowSeconds: 2, windows: 1 } : { heavyLimit: 10, windowSeconds: 6, windows: 3 })),
    ...(SMOKE && { smoke: true }),
    target: "ratio >= 0.95 of k × heavyLimit for k = 1, 2, 4 with http429 == 0 (k > 1 needs RC_JWT pools, issue #11)",
  }),
  inbound: async () => ({ ...(await benchInbound({ faxes: 200 })), target: "webhook.p50Ms <= 300, rcCallsPerFax <= 3" }),
  daemon: async () => ({
    ...(await benchDaemon(
      SMOKE
        ? { rounds: 1, messages: 40, sustainedSeconds: 3, idleMails: 3, heavyLimit: 5, windowSeconds: 2 }
        : { rounds: 5, messages: 600, connections: 8, messageBytes: 100_000, sustainedSeconds: 300, idleMails: 20, heavyLimit: 10, windowSeconds: 60 },
    )),
    ...(SMOKE && { smoke: true }),
    target: "burst >= 1.0x Postfix (issue #15); sustained latencyP99Ms < 50 with faxesSent at the Heavy limit; idle dataTo250 < 5 ms, 250 -> fax POST < 25 ms (medians)",
  }),
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
