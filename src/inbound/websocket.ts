/**
 * RingCentral WebSocket notifications, for installations without a public
 * webhook URL: `POST /restapi/oauth/wstoken` → connect to `uri?access_token=…`
 * → on ConnectionDetails send a ClientRequest creating the subscription →
 * ServerNotification frames trigger a sync. Frames are JSON arrays
 * `[header, body?]`.
 *
 * We send a Heartbeat every `heartbeatMs`; a connection silent for two
 * heartbeats is dropped. Any close or error reconnects with backoff, and every
 * (re)subscription triggers a sync, because notifications may have been
 * missed while disconnected. Session recovery via the `wsc` token is not used:
 * the sync makes it unnecessary.
 */
import type { AlertSink } from "../ops/alerts.js";
import { randomUUID } from "node:crypto";
import { WebSocket, type RawData } from "ws";
import { z } from "zod";
import type { Logger } from "../log.js";
import type { WsTokenApi } from "../rc/api.js";
import { messageEventSchema, type MessageEvent } from "./webhook.js";

export type WsClient = WsTokenApi;

const headerSchema = z.looseObject({
  type: z.string(),
  messageId: z.string().optional(),
  status: z.number().optional(),
});

export interface WsNotificationsDeps {
  /** Told when RingCentral refuses the subscription (mail.adminTo). */
  readonly alerts?: AlertSink;
  readonly client: WsClient;
  readonly logger: Logger;
  readonly eventFilters: readonly string[];
  /** A verified notification arrived. */
  readonly onNotification: (event: MessageEvent) => void;
  /** The subscription is (again) in place: catch up with a sync. */
  readonly onSubscribed: () => void;
  readonly heartbeatMs: number;
  /** Reconnect delays, ms; the last one repeats. */
  readonly backoffMs: readonly number[];
  /** How long to wait for the subscription's answer before giving up a connection attempt. */
  readonly connectTimeoutMs: number;
}

export class WsNotifications {
  readonly #deps: WsNotificationsDeps;
  readonly #log: Logger;
  #ws: WebSocket | undefined;
  #stopped = true;
  #failures = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #lastFrameAt = 0;
  #subscribed = false;
  #firstAttempt: { resolve: () => void } | undefined;

  constructor(deps: WsNotificationsDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
  }

  get subscribed(): boolean {
    return this.#subscribed;
  }

  /** Connect; resolves once the first attempt has subscribed or failed (never rejects). */
  start(): Promise<void> {
    this.#stopped = false;
    const first = new Promise<void>((resolve) => {
      this.#firstAttempt = { resolve };
    });
    this.#connect();
    return first;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#settleFirst();
    for (const t of [this.#reconnectTimer, this.#heartbeatTimer, this.#connectTimer]) if (t) clearTimeout(t);
    const ws = this.#ws;
    this.#ws = undefined;
    this.#subscribed = false;
    if (ws === undefined || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000);
      ws.once("close", () => {
        clearTimeout(force);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, "shutdown");
    });
  }

  #settleFirst(): void {
    this.#firstAttempt?.resolve();
    this.#firstAttempt = undefined;
  }

  #connect(): void {
    if (this.#stopped) return;
    this.#open().catch((err: unknown) => {
      this.#log.warn({ event: "ws.connect_failed", err, attempt: this.#failures + 1 }, "WebSocket connection failed");
      this.#scheduleReconnect();
    });
  }

  async #open(): Promise<void> {
    const token = await this.#deps.client.getWsToken();
    if (this.#stopped) return;
    const url = new URL(token.uri);
    url.searchParams.set("access_token", token.wsAccessToken);
    const ws = new WebSocket(url);
    this.#ws = ws;
    this.#lastFrameAt = Date.now();
    this.#connectTimer = setTimeout(() => {
      if (!this.#subscribed && this.#ws === ws) {
        this.#log.warn({ event: "ws.subscribe_timeout" }, "no subscription answer on the WebSocket in time");
        ws.terminate();
      }
    }, this.#deps.connectTimeoutMs);
    this.#connectTimer.unref();
    let subscribeId: string | undefined;

    ws.on("message", (data: RawData) => {
      this.#lastFrameAt = Date.now();
      let frame: unknown;
      try {
        frame = JSON.parse(Buffer.isBuffer(data) ? data.toString("utf8") : String(data));
      } catch {
        this.#log.warn({ event: "ws.bad_frame" }, "unparsable WebSocket frame ignored");
        return;
      }
      if (!Array.isArray(frame)) {
        this.#log.warn({ event: "ws.bad_frame" }, "WebSocket frame is not an array; ignored");
        return;
      }
      const header = headerSchema.safeParse(frame[0]);
      if (!header.success) {
        this.#log.warn({ event: "ws.bad_frame" }, "WebSocket frame without a header; ignored");
        return;
      }
      const h = header.data;
      switch (h.type) {
        case "ConnectionDetails": {
          this.#log.info({ event: "ws.connected" }, "WebSocket connected");
          subscribeId = randomUUID();
          ws.send(
            JSON.stringify([
              { type: "ClientRequest", messageId: subscribeId, method: "POST", path: "/restapi/v1.0/subscription/" },
              { eventFilters: [...this.#deps.eventFilters], deliveryMode: { transportType: "WebSocket" } },
            ]),
          );
          break;
        }
        case "ClientRequest": {
          if (h.messageId !== subscribeId) break;
          if (h.status === 200) {
            this.#subscribed = true;
            this.#failures = 0;
            if (this.#connectTimer) clearTimeout(this.#connectTimer);
            const sub = z.looseObject({ id: z.string() }).safeParse(frame[1]);
            this.#log.info({ event: "ws.subscribed", subscriptionId: sub.success ? sub.data.id : undefined }, "WebSocket subscription created");
            this.#startHeartbeat(ws);
            this.#settleFirst();
            this.#deps.onSubscribed();
          } else {
            this.#log.error({ event: "ws.subscribe_failed", status: h.status, body: frame[1] }, "WebSocket subscription refused");
            this.#deps.alerts?.({ kind: "subscription_lost", summary: "RingCentral refused the WebSocket notification subscription", details: { status: h.status } });
            ws.close(1000, "subscription refused");
          }
          break;
        }
        case "ServerNotification": {
          const ev = messageEventSchema.safeParse(frame[1]);
          if (!ev.success) {
            this.#log.warn({ event: "ws.bad_notification" }, "WebSocket notification ignored (not a message event)");
            break;
          }
          this.#log.debug({ event: "ws.notification", uuid: ev.data.uuid }, "WebSocket notification");
          this.#deps.onNotification(ev.data);
          break;
        }
        case "Heartbeat":
          break;
        case "Error":
          this.#log.warn({ event: "ws.error_frame", status: h.status, body: frame[1] }, "WebSocket gateway error");
          break;
        default:
          this.#log.debug({ event: "ws.unknown_frame", type: h.type }, "unknown WebSocket frame ignored");
      }
    });
    ws.on("error", (err) => {
      this.#log.warn({ event: "ws.error", err }, "WebSocket error");
    });
    ws.on("close", (code, reason) => {
      if (this.#connectTimer) clearTimeout(this.#connectTimer);
      if (this.#heartbeatTimer) clearTimeout(this.#heartbeatTimer);
      const wasSubscribed = this.#subscribed;
      if (this.#ws === ws) {
        this.#ws = undefined;
        this.#subscribed = false;
      }
      if (this.#stopped) return;
      this.#log.warn({ event: "ws.closed", code, reason: reason.toString("utf8"), wasSubscribed }, "WebSocket closed; reconnecting");
      this.#scheduleReconnect();
    });
  }

  #startHeartbeat(ws: WebSocket): void {
    const beat = (): void => {
      if (this.#ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.#lastFrameAt > 2 * this.#deps.heartbeatMs) {
        this.#log.warn({ event: "ws.stale" }, "WebSocket silent for two heartbeats; reconnecting");
        ws.terminate();
        return;
      }
      ws.send(JSON.stringify([{ type: "Heartbeat", messageId: randomUUID() }]));
      this.#heartbeatTimer = setTimeout(beat, this.#deps.heartbeatMs);
      this.#heartbeatTimer.unref();
    };
    this.#heartbeatTimer = setTimeout(beat, this.#deps.heartbeatMs);
    this.#heartbeatTimer.unref();
  }

  #scheduleReconnect(): void {
    this.#settleFirst();
    if (this.#stopped) return;
    const schedule = this.#deps.backoffMs;
    const base = schedule[Math.min(this.#failures, schedule.length - 1)] ?? 5000;
    this.#failures++;
    const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
    this.#reconnectTimer.unref();
    this.#log.info({ event: "ws.reconnect_scheduled", inMs: delay, attempt: this.#failures }, "WebSocket reconnect scheduled");
  }
}
