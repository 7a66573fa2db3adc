import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { FAX_ERROR_CODES, RECIPIENT_FINAL_STATUSES, type FaxOutcome } from "./constants.js";
import type { FaxService } from "./fax.js";
import { INBOUND_TYPES, receiveFax } from "./inbound.js";
import type { CallCounter, FaultBook } from "./faults.js";
import { ApiFailure, invalidParam, mediaType, readJson, sendJson, sendEmpty } from "./http.js";
import type { Logger } from "../log.js";
import { aggregateStatus, messageJson, type MessageStore } from "./store.js";
import type { SubscriptionService } from "./subscriptions.js";
import type { SyncService } from "./sync.js";

const E164 = /^\+[1-9]\d{6,14}$/;

const FaultSchema = z.object({
  group: z.enum(["Light", "Medium", "Heavy", "Auth"]).optional(),
  path: z.string().min(1).optional(),
  count: z.number().int().min(1),
  kind: z.enum(["latency", "status", "reset", "429"]),
  latencyMs: z.number().int().min(0).optional(),
  status: z.number().int().min(100).max(599).optional(),
  retryAfter: z.number().int().min(0).optional(),
});

/** Per-recipient final statuses by number; a failure needs a faxErrorCode from the spec's FaxErrorCodeEnum. */
const OutcomeSchema = z
  .strictObject({ messageStatus: z.enum(RECIPIENT_FINAL_STATUSES), faxErrorCode: z.enum(FAX_ERROR_CODES as [string, ...string[]]).optional() })
  .refine((o) => (o.messageStatus === "SendingFailed" || o.messageStatus === "DeliveryFailed") === (o.faxErrorCode !== undefined), {
    message: "faxErrorCode is required for SendingFailed/DeliveryFailed and not allowed otherwise",
  });
/** One outcome per number, or a sequence: one entry per fax to that number, the last repeating. */
const OutcomesSchema = z.record(z.string().regex(E164), z.union([OutcomeSchema, z.array(OutcomeSchema).min(1).max(100)]));

export interface ControlDeps {
  store: MessageStore;
  fax: FaxService;
  sync: SyncService;
  subs: SubscriptionService;
  faults: FaultBook;
  calls: CallCounter;
  filesDir: string;
  log: Logger;
  setOutcomes: (o: Record<string, FaxOutcome | FaxOutcome[]>) => void;
  baseUrl: () => string;
  ownFaxNumber: string;
}

function bad(message: string): ApiFailure {
  return new ApiFailure(400, { errorCode: "EMU-400", message, errors: [{ errorCode: "EMU-400", message }] });
}

/** The emulator's own control API under /emulator (not RingCentral's). Returns false when no route matched. */
export async function handleControl(deps: ControlDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const method = req.method ?? "GET";
  const path = url.pathname.replace(/\/+$/, "");
  const blacklist = /^\/emulator\/subscriptions\/([^/]+)\/blacklist$/.exec(path);

  if (method === "POST" && path === "/emulator/inbound-faxes") {
    const from = url.searchParams.get("from") ?? "";
    const to = url.searchParams.get("to") ?? deps.ownFaxNumber;
    if (!E164.test(from)) throw invalidParam("from", from);
    if (!E164.test(to)) throw invalidParam("to", to);
    const type = mediaType(req.headers["content-type"]);
    if (INBOUND_TYPES[type] === undefined) throw bad("Content-Type must be application/pdf or image/tiff");
    const msg = await receiveFax({ store: deps.store, filesDir: deps.filesDir, log: deps.log }, req, from, to, type);
    sendJson(res, 200, messageJson(msg, deps.baseUrl()));
  } else if (method === "GET" && path === "/emulator/sent-faxes") {
    // With each fax's live state, so tests can watch it here instead of polling the metered REST API.
    sendJson(
      res,
      200,
      deps.fax.sent.map((f) => {
        const msg = deps.store.get(Number(f.id));
        return {
          ...f,
          messageStatus: msg ? aggregateStatus(msg) : null,
          availability: msg?.availability ?? null,
          recipients: msg ? msg.to.map((r) => ({ phoneNumber: r.phoneNumber, messageStatus: r.messageStatus, ...(r.faxErrorCode !== undefined && { faxErrorCode: r.faxErrorCode }) })) : [],
        };
      }),
    );
  } else if (method === "POST" && path === "/emulator/faults") {
    const parsed = FaultSchema.safeParse(await readJson(req));
    if (!parsed.success) throw bad(`invalid fault: ${parsed.error.message}`);
    const f = parsed.data;
    deps.faults.add({
      count: f.count,
      kind: f.kind,
      ...(f.group !== undefined ? { group: f.group } : {}),
      ...(f.path !== undefined ? { path: f.path } : {}),
      ...(f.latencyMs !== undefined ? { latencyMs: f.latencyMs } : {}),
      ...(f.status !== undefined ? { status: f.status } : {}),
      ...(f.retryAfter !== undefined ? { retryAfter: f.retryAfter } : {}),
    });
    sendEmpty(res, 204);
  } else if (method === "DELETE" && path === "/emulator/faults") {
    deps.faults.clear();
    sendEmpty(res, 204);
  } else if (method === "GET" && path === "/emulator/calls") {
    sendJson(res, 200, deps.calls.snapshot());
  } else if (method === "POST" && path === "/emulator/calls/reset") {
    deps.calls.reset();
    sendEmpty(res, 204);
  } else if (method === "POST" && path === "/emulator/sync/invalidate") {
    deps.sync.invalidateAll();
    sendEmpty(res, 204);
  } else if (method === "POST" && blacklist) {
    const sub = deps.subs.blacklist(decodeURIComponent(blacklist[1] ?? ""));
    sendJson(res, 200, deps.subs.json(sub, deps.baseUrl()));
  } else if (method === "PUT" && path === "/emulator/fax-outcomes") {
    const parsed = OutcomesSchema.safeParse(await readJson(req));
    if (!parsed.success) throw bad(`invalid outcomes: ${parsed.error.message}`);
    const one = (o: z.infer<typeof OutcomeSchema>): FaxOutcome =>
      o.faxErrorCode === undefined ? { messageStatus: o.messageStatus } : { messageStatus: o.messageStatus, faxErrorCode: o.faxErrorCode };
    const outcomes: Record<string, FaxOutcome | FaxOutcome[]> = {};
    for (const [n, o] of Object.entries(parsed.data)) outcomes[n] = Array.isArray(o) ? o.map(one) : one(o);
    deps.setOutcomes(outcomes);
    sendEmpty(res, 204);
  } else if (method === "GET" && path === "/emulator/subscriptions") {
    const base = deps.baseUrl();
    sendJson(
      res,
      200,
      deps.subs.everything().map((s) => ({
        ...deps.subs.json(s, base),
        transportType: s.deliveryMode.transportType,
        consecutiveFailures: s.consecutiveFailures,
        deliveries: s.deliveries,
      })),
    );
  } else {
    return false;
  }
  return true;
}
