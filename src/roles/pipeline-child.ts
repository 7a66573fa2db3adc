/**
 * The pipeline process of `faxbridge run --role all`, started by
 * ./supervisor.ts with an IPC channel. It waits for its configuration (the
 * parent validated it), runs ./worker.ts on a loopback listener, and follows
 * the parent: wakes on its messages, stops when told, and exits at once when
 * the channel closes (the parent stopped or was killed: a process that would
 * outlive its daemon could race the next one for the data directory).
 */
import { errorMessage } from "../errors.js";
import { createLogger } from "../log.js";
import type { FromPipeline, ToPipeline } from "./supervisor.js";
import type { WorkerRole } from "./worker.js";

/** Exit code when the parent is gone. */
const ORPHANED = 70;

function send(msg: FromPipeline): void {
  if (process.connected) process.send?.(msg);
}

if (process.send === undefined) {
  process.stderr.write("faxbridge pipeline-child: run by `faxbridge run --role all`, not directly\n");
  process.exit(2);
}

process.on("disconnect", () => process.exit(ORPHANED));
// A terminal's Ctrl-C or a service manager's SIGTERM reaches the whole process group: the parent decides the order.
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => undefined);

let role: WorkerRole | undefined;
let starting: Promise<unknown> | undefined;

process.on("message", (raw) => {
  const msg = raw as ToPipeline;
  switch (msg.t) {
    case "start":
      starting = (async () => {
        const logger = createLogger({ level: msg.config.log.level, base: { role: "pipeline" } });
        try {
          const { startWorkerRole } = await import("./worker.js");
          // The parent holds the data directory; this process releases the leases a dead pipeline left.
          role = await startWorkerRole(msg.config, { logger, rc: msg.rc, listen: { host: "127.0.0.1", port: 0 }, lock: false });
          send({ t: "ready", httpPort: role.http.port });
        } catch (err) {
          send({ t: "failed", error: errorMessage(err) });
          process.exit(1);
        }
      })();
      return;
    case "wake":
      role?.wake();
      return;
    case "wakeInbound":
      role?.wakeInbound();
      return;
    case "metrics":
      void (role?.metrics.registry.getMetricsAsJSON() ?? Promise.resolve([])).then(
        (data) => send({ t: "metrics", id: msg.id, data }),
        () => send({ t: "metrics", id: msg.id, data: [] }),
      );
      return;
    case "stop":
      void (async () => {
        await starting;
        await role?.close("parent");
        process.exit(0);
      })();
      return;
  }
});
