/**
 * `POST /webhook/ringcentral`: RingCentral's WebHook notifications.
 *
 * - Creation handshake: a request with `Validation-Token` and no body is
 *   answered 200 with the header echoed and an empty JSON body (well under
 *   RingCentral's 1024-byte / 3 s limits).
 * - Every delivery must carry our verification token. RingCentral's docs
 *   disagree on the header name (NOTES §e), so `Verification-Token` and
 *   `Validation-Token` are both accepted; the compare is constant-time.
 *   Missing → 401, wrong → 403; nothing is triggered.
 * - The body is capped (413), must be JSON (415/400) and is validated with zod.
 * - The answer is 200 at once. The notification only *triggers* a sync of the
 *   extension; the sync (with its committed cursor) is the durable path, and
 *   the periodic sync covers notifications that never arrive.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { BodyTooLarge, readBody, sendJson, type RouteHandler } from "../http/server.js";
import type { Logger } from "../log.js";

export const WEBHOOK_PATH = "/webhook/ringcentral";

const idLike = z.union([z.string(), z.number()]).transform((v) => String(v));

/** MessageEvent (message-store) per the spec; loose, only what we use is checked. */
export const messageEventSchema = z.looseObject({
  uuid: z.string().optional(),
  event: z.string().min(1),
  timestamp: z.string().optional(),
  subscriptionId: z.string().optional(),
  ownerId: idLike.optional(),
  body: z
    .looseObject({
      extensionId: idLike.optional(),
      lastUpdated: z.string().optional(),
      changes: z
        .array(
          z.looseObject({
            type: z.string(),
            newCount: z.number().optional(),
            updatedCount: z.number().optional(),
            newMessageIds: z.array(idLike).optional(),
          }),
        )
        .optional(),
    })
    .optional(),
});
export type MessageEvent = z.output<typeof messageEventSchema>;

/** True when the event may concern faxes (no change list, or a Fax change in it). */
export function concernsFax(ev: MessageEvent): boolean {
  const changes = ev.body?.changes;
  if (changes === undefined) return /message-store/.test(ev.event);
  return changes.some((c) => c.type === "Fax");
}

/** Constant-time string comparison (hashing first makes the lengths equal). */
export function tokensEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === "" ? undefined : s;
}

export interface WebhookHandlerDeps {
  /** The token deliveries must carry; undefined refuses every delivery. */
  readonly expectedToken: () => string | undefined;
  readonly maxBodyBytes: number;
  readonly logger: Logger;
  /** Called after the 200 for a verified, parsed event. Must not throw. */
  readonly onEvent: (event: MessageEvent) => void;
}

export function createWebhookHandler(deps: WebhookHandlerDeps): RouteHandler {
  const log = deps.logger;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const validation = headerValue(req, "validation-token");
    const verification = headerValue(req, "verification-token");

    let body: Buffer;
    try {
      body = await readBody(req, deps.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        log.warn({ event: "webhook.refused", reason: "too_large", limit: deps.maxBodyBytes }, "webhook body too large");
        sendJson(res, 413, { error: "body too large" });
        return;
      }
      throw err;
    }

    // The creation handshake: Validation-Token and nothing else.
    if (validation !== undefined && verification === undefined && body.toString("utf8").trim() === "") {
      sendJson(res, 200, {}, { "Validation-Token": validation });
      log.info({ event: "webhook.validated" }, "webhook validation handshake answered");
      return;
    }

    const presented = verification ?? validation;
    const expected = deps.expectedToken();
    if (presented === undefined) {
      log.warn({ event: "webhook.refused", reason: "no_token" }, "webhook delivery without a verification token refused");
      sendJson(res, 401, { error: "verification token required" });
      return;
    }
    if (expected === undefined || expected === "" || !tokensEqual(presented, expected)) {
      log.warn({ event: "webhook.refused", reason: "bad_token" }, "webhook delivery with a wrong verification token refused");
      sendJson(res, 403, { error: "verification token mismatch" });
      return;
    }

    const contentType = (headerValue(req, "content-type") ?? "application/json").split(";")[0]?.trim().toLowerCase();
    if (contentType !== "application/json") {
      log.warn({ event: "webhook.refused", reason: "content_type", contentType }, "webhook delivery is not JSON");
      sendJson(res, 415, { error: "expected application/json" });
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      log.warn({ event: "webhook.refused", reason: "unparsable" }, "webhook body is not JSON");
      sendJson(res, 400, { error: "invalid JSON" });
      return;
    }
    const parsed = messageEventSchema.safeParse(json);
    if (!parsed.success) {
      log.warn({ event: "webhook.refused", reason: "schema", issues: parsed.error.issues.length }, "webhook body is not a notification");
      sendJson(res, 400, { error: "not a RingCentral notification" });
      return;
    }
    sendJson(res, 200, {});
    const ev = parsed.data;
    log.debug({ event: "webhook.received", uuid: ev.uuid, subscriptionId: ev.subscriptionId, extensionId: ev.body?.extensionId }, "webhook notification");
    deps.onEvent(ev);
  };
}
