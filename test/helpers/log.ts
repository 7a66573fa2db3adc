import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/log.js";

/** One JSON log line as the daemon's logger writes it. */
export interface LogLine {
  level: string;
  event?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface LogCapture {
  /** Where the raw chunks go (one pino line each), when the test reads text. */
  readonly raw?: string[];
  /** Where the parsed lines go; a line that is not JSON is kept as `{ level: "raw", msg }`. */
  readonly lines?: LogLine[];
}

/**
 * The daemon's logger (its redaction and format), writing into arrays the
 * test reads instead of stdout.
 */
export function capturingLogger(level: string, into: LogCapture): Logger {
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = chunk.toString("utf8");
      into.raw?.push(text);
      if (into.lines !== undefined) {
        for (const line of text.split("\n")) {
          if (line.trim() === "") continue;
          try {
            into.lines.push(JSON.parse(line) as LogLine);
          } catch {
            into.lines.push({ level: "raw", msg: line });
          }
        }
      }
      cb();
    },
  });
  return createLogger({ level, destination });
}
