import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "../log.js";

/**
 * The audit log: one JSON line per fax sent or received, for compliance and
 * SIEM ingestion. It records who, to whom, when, pages, outcome and ids —
 * never document contents, cover text or subjects.
 */
export type AuditRecord =
  | {
      readonly type: "fax.outbound";
      readonly queueId: string;
      readonly rcMessageId: string | null;
      /** Envelope sender ("" for <>). */
      readonly sender: string;
      readonly client: { readonly ip: string; readonly user?: string };
      readonly recipients: readonly { readonly number: string; readonly status: string; readonly faxErrorCode?: string }[];
      readonly pages: number | null;
      readonly documents: number;
      /** "final" when RingCentral reported a final status, "failed" when it never went out. */
      readonly outcome: "final" | "failed";
      readonly errorCode: string | null;
      readonly receivedAt: string;
      readonly report: string;
    }
  | {
      readonly type: "fax.inbound";
      readonly id: string;
      readonly rcMessageId: string;
      readonly extension: string;
      readonly from: string;
      readonly to: readonly string[];
      readonly pages: number | null;
      readonly mailTo: readonly string[];
      readonly outcome: "delivered" | "dead";
      readonly error: string | null;
      readonly receivedAt: string;
    }
  | {
      /** A received fax opened through the web console, the API or a mailed link (src/web/). */
      readonly type: "web.access";
      readonly action: "document.read" | "link.open" | "link.refused";
      readonly faxId: string;
      /** api:<token name>, web:<username>, or "link" for a one-time link. */
      readonly actor: string;
      readonly client: string;
      readonly via: "api" | "console" | "link";
      readonly reason?: string;
    };

export interface AuditSink {
  record(rec: AuditRecord): void;
  close(): Promise<void>;
}

/** Appends to a file (mode 0600); a write error is logged, never thrown into the fax path. */
export class AuditLog implements AuditSink {
  readonly #stream: WriteStream;

  private constructor(stream: WriteStream, log: Logger) {
    this.#stream = stream;
    stream.on("error", (err) => log.error({ event: "audit.write_failed", err }, "cannot write the audit log"));
  }

  static async open(file: string, log: Logger): Promise<AuditLog> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const stream = createWriteStream(file, { flags: "a", mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve());
      stream.once("error", reject);
    });
    return new AuditLog(stream, log.child({ component: "audit" }));
  }

  record(rec: AuditRecord): void {
    this.#stream.write(`${JSON.stringify({ time: new Date().toISOString(), ...rec })}\n`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#stream.end(() => resolve()));
  }
}

/** For library use and tests that do not care about the audit trail. */
export const noAudit: AuditSink = {
  record: () => undefined,
  close: () => Promise.resolve(),
};
