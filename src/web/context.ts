import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { AuditSink } from "../ops/audit.js";
import type { MessageApi, PacingApi } from "../rc/api.js";
import type { Spool } from "../spool/spool.js";
import type { InboundStore, OutboundStore } from "../store/ports.js";
import type { IntakeDeps } from "./intake.js";
import type { WebStore } from "../store/ports.js";

/** Everything the API and console routes need, handed in by the composition root. */
export interface WebContext {
  readonly config: Readonly<Config>;
  readonly logger: Logger;
  readonly outbound: OutboundStore;
  readonly inbound: InboundStore;
  readonly spool: Spool;
  readonly web: WebStore;
  readonly audit: AuditSink;
  readonly client: Pick<MessageApi, "downloadContent"> & PacingApi;
  readonly intake: IntakeDeps;
  /** <dataDir>/inbound: received faxes' documents, one directory per fax. */
  readonly inboundDir: string;
  /** <dataDir>/thumbs: first-page thumbnails of received faxes. */
  readonly thumbDir: string;
  /** <dataDir>/uploads: uploads being streamed in. */
  readonly uploadDir: string;
  /** Key for session cookies and signed links. */
  readonly key: Buffer;
  /** `faxbridge queue retry` for one job (its rules live in src/outbound/operator.ts); rejects with the reason it cannot. */
  readonly retry: (id: string) => Promise<{ message: string }>;
  /** Wake the outbound worker (a cancel of a scheduled fax it must carry out at RingCentral). */
  readonly wakeOutbound: () => void;
  /** Wake inbound delivery after a redeliver. */
  readonly wakeInbound: () => void;
  /** Readiness checks (the same the /readyz endpoint runs), for the Status page. */
  readonly checks: () => Promise<Record<string, string>>;
  /** `faxbridge doctor`'s checks (they log in to RingCentral: run on request only). */
  readonly doctor: () => Promise<readonly { name: string; status: string; message: string; fix?: string }[]>;
  readonly now: () => number;
}
