import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { FAX_ERROR_CODES, RECIPIENT_FINAL_STATUSES, type FaxOutcome } from "./constants.js";
import type { Extension, ExtensionRegistry } from "./extensions.js";
import type { SentFaxRecord } from "./fax.js";
import { INBOUND_TYPES, receiveFax } from "./inbound.js";
import type { CallCounter, FaultBook } from "./faults.js";
import { ApiFailure, invalidParam, mediaType, readJson, sendJson, sendEmpty } from "./http.js";
import type { Logger } from "../log.js";
import { aggregateStatus, messageJson } from "./store.js";
import type { SubscriptionService } from "./subscriptions.js";
import { newestFirst } from "./messages.js";

const E164 = /^\+[1-9]\d{6,14}$/;

const FaultSchema = z.object({
  group: z.enum(["Light", "Medium", "Heavy", "Auth"]).optional(),
  path: z.string().min(1).optional(),
  count: z.number().int().min(1),
  kind: z.enum(["latency", "status", "reset", "429"]),
  latencyMs: z.number().int().min(0).optional(),
  status: z.number().int().min(100).max(599).optional(),
  retryAfter: z.number().int().min(0).optional(),
  extensionId: z.string().regex(/^\d+$/).optional(),
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
  extensions: ExtensionRegistry;
  /** Every accepted send of every extension, in order. */
  sentFaxes: SentFaxRecord[];
  subs: SubscriptionService;
  faults: FaultBook;
  calls: CallCounter;
  filesDir: string;
  log: Logger;
  setOutcomes: (o: Record<string, FaxOutcome | FaxOutcome[]>) => void;
  baseUrl: () => string;
}

function bad(message: string): ApiFailure {
  return new ApiFailure(400, { errorCode: "EMU-400", message, errors: [{ errorCode: "EMU-400", message }] });
}

function unknownExtension(id: string): ApiFailure {
  const message = `no extension ${id} (GET /emulator/extensions lists them)`;
  return new ApiFailure(404, { errorCode: "EMU-404", message, errors: [{ errorCode: "EMU-404", message }] });
}

/** `?extensionId=` of a control call: that extension (404 EMU-404 if unknown), or undefined when absent. */
function extensionParam(deps: ControlDeps, url: URL): Extension | undefined {
  const id = url.searchParams.get("extensionId");
  if (id === null || id === "") return undefined;
  const ext = deps.extensions.byId(id);
  if (ext === undefined) throw unknownExtension(id);
  return ext;
}

/** What GET /emulator/extensions says about one extension. */
function extensionSummary(deps: ControlDeps, ext: Extension): Record<string, unknown> {
  const all = ext.store.all();
  return {
    ...ext.info,
    loggedIn: deps.extensions.hasLogin(ext),
    messages: {
      total: all.length,
      inbound: all.filter((m) => m.direction === "Inbound").length,
      outbound: all.filter((m) => m.direction === "Outbound").length,
    },
    subscriptions: deps.subs.list(ext.info.extensionId).length,
  };
}

/** The emulator's own control API under /emulator (not RingCentral's). Returns false when no route matched. */
export async function handleControl(deps: ControlDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const method = req.method ?? "GET";
  const path = url.pathname.replace(/\/+$/, "");
  const blacklist = /^\/emulator\/subscriptions\/([^/]+)\/blacklist$/.exec(path);
  const extPath = /^\/emulator\/extensions\/([^/]+)(\/messages)?$/.exec(path);

  if (method === "POST" && path === "/emulator/inbound-faxes") {
    const from = url.searchParams.get("from") ?? "";
    const toParam = url.searchParams.get("to");
    // The extension whose store receives it: ?extensionId=, else the one whose fax number was dialled, else the first.
    const ext = extensionParam(deps, url) ?? (toParam !== null ? deps.extensions.byFaxNumber(toParam) : undefined) ?? deps.extensions.first;
    const to = toParam ?? ext.info.faxNumber;
    if (!E164.test(from)) throw invalidParam("from", from);
    if (!E164.test(to)) throw invalidParam("to", to);
    const type = mediaType(req.headers["content-type"]);
    if (INBOUND_TYPES[type] === undefined) throw bad("Content-Type must be application/pdf or image/tiff");
    const msg = await receiveFax({ store: ext.store, filesDir: deps.filesDir, log: deps.log }, req, from, to, type);
    sendJson(res, 200, messageJson(msg, deps.baseUrl()));
  } else if (method === "GET" && path === "/emulator/sent-faxes") {
    // With each fax's live state, so tests can watch it here instead of polling the metered REST API.
    const only = extensionParam(deps, url);
    sendJson(
      res,
      200,
      deps.sentFaxes.filter((f) => only === undefined || f.extensionId === only.info.extensionId).map((f) => {
        const msg = deps.extensions.byId(f.extensionId)?.store.get(Number(f.id));
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
      ...(f.extensionId !== undefined ? { extensionId: f.extensionId } : {}),
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
    const only = extensionParam(deps, url);
    for (const ext of only !== undefined ? [only] : deps.extensions.all()) ext.sync.invalidateAll();
    sendEmpty(res, 204);
  } else if (method === "GET" && path === "/emulator/extensions") {
    sendJson(res, 200, deps.extensions.all().map((e) => extensionSummary(deps, e)));
  } else if (method === "POST" && path === "/emulator/extensions") {
    const body = await readJson(req);
    const jwt = typeof body === "object" && body !== null ? (body as Record<string, unknown>)["jwt"] : undefined;
    if (typeof jwt !== "string" || jwt === "") throw bad('body must be {"jwt": "<the JWT that logs in as the extension>"}');
    const ext = deps.extensions.register(jwt);
    if (ext === undefined) throw bad("too many extensions");
    sendJson(res, 200, extensionSummary(deps, ext));
  } else if (method === "GET" && extPath) {
    const id = decodeURIComponent(extPath[1] ?? "");
    const ext = deps.extensions.byId(id);
    if (ext === undefined) throw unknownExtension(id);
    const base = deps.baseUrl();
    // Every message of its store, deleted and purged ones too, newest first.
    if (extPath[2] !== undefined) sendJson(res, 200, ext.store.all().sort(newestFirst).map((m) => messageJson(m, base)));
    else sendJson(res, 200, extensionSummary(deps, ext));
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
        extensionId: s.ownerId,
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
