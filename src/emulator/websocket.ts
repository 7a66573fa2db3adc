import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import type { Logger } from "../log.js";
import type { AuthStore } from "./auth.js";
import { ApiFailure, isoTime, rcError } from "./http.js";
import type { SubscriptionService } from "./subscriptions.js";

/** A closed connection kept for session recovery: its subscription stays, notifications are buffered. */
interface Parked {
  connectionId: string;
  sessionId: string;
  wsc: { token: string; sequence: number };
  buffer: Record<string, unknown>[];
  overflow: boolean;
  timer: NodeJS.Timeout;
}

/** ConnectionDetails values (RingCentral's WebSocket guide). */
const RECOVERY_BUFFER_SIZE = 100;
const RECOVERY_TIMEOUT_S = 180;

/**
 * RingCentral's WebSocket gateway: every frame is a JSON array `[header, body?]`.
 * Header types: ConnectionDetails, ClientRequest (answers echo the request's
 * messageId and carry `status`), ServerNotification, Heartbeat, Error. Each
 * server header carries `wsc: {token, sequence}`.
 *
 * Session recovery as the guide describes it: when a connection closes, its
 * subscription is kept for `recoveryTimeout` seconds and up to
 * `recoveryBufferSize` notifications are buffered. A new connection (same
 * login) with `?wsc=<token>` gets ConnectionDetails with `recoveryState:
 * "Successful"`, the same subscription and the missed notifications in
 * order; too late, a full buffer or an unknown token give `recoveryState:
 * "Failed"` and a fresh session (the client must subscribe again).
 */
export class WebSocketGateway {
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly deps: { auth: AuthStore; subs: SubscriptionService; log: Logger; baseUrl: () => string };
  private readonly parked = new Map<string, Parked>();
  private closing = false;

  constructor(deps: { auth: AuthStore; subs: SubscriptionService; log: Logger; baseUrl: () => string }) {
    this.deps = deps;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const url = new URL(req.url ?? "/", "http://localhost");
    let wsc = { token: randomBytes(16).toString("base64url"), sequence: 0 };
    const connectionId = randomUUID();
    const send = (header: Record<string, unknown>, body?: unknown): void => {
      wsc.sequence++;
      const frame: unknown[] = [{ ...header, headers: { RCRequestId: randomUUID(), ...(header["headers"] as object | undefined) }, wsc: { ...wsc } }];
      if (body !== undefined) frame.push(body);
      ws.send(JSON.stringify(frame));
    };
    const session = this.deps.auth.consumeWsToken(url.searchParams.get("access_token") ?? "");
    if (!session) {
      send({ type: "Error", messageId: randomUUID(), status: 401 }, { errorCode: "WSG-401", message: "Invalid or expired WebSocket access token" });
      ws.close(1008, "unauthorized");
      return;
    }
    const log = this.deps.log.child({ wsConnectionId: connectionId });
    const asked = url.searchParams.get("wsc");
    let recovered: Parked | undefined;
    if (asked !== null) {
      const p = this.parked.get(asked);
      if (p !== undefined) {
        this.parked.delete(asked);
        clearTimeout(p.timer);
        if (!p.overflow && p.sessionId === session.id) {
          recovered = p;
          wsc = p.wsc;
          this.deps.subs.rebindWebSocket(p.connectionId, connectionId);
        }
        this.deps.subs.detachWebSocket(p.connectionId);
      }
    }
    log.info({ event: "emulator.ws.connected", recovery: asked === null ? undefined : recovered ? "Successful" : "Failed" }, "websocket connected");
    const details: Record<string, unknown> = {
      creationTime: isoTime(Date.now()),
      maxConnectionsPerSession: 5,
      recoveryBufferSize: RECOVERY_BUFFER_SIZE,
      recoveryTimeout: RECOVERY_TIMEOUT_S,
      idleTimeout: 900,
      absoluteTimeout: 86400,
      maxActiveRequests: 10,
    };
    if (asked !== null) details["recoveryState"] = recovered ? "Successful" : "Failed";
    send({ type: "ConnectionDetails", messageId: randomUUID(), status: 200 }, details);
    const notify = (notification: Record<string, unknown>): void => {
      send({ type: "ServerNotification", messageId: String(notification["uuid"]), status: 200 }, notification);
    };
    for (const n of recovered?.buffer ?? []) notify(n);
    this.deps.subs.attachWebSocket(connectionId, notify);
    ws.on("message", (data: RawData) => {
      this.onFrame(data, send, connectionId, session.ownerId).catch((err: unknown) => {
        log.error({ event: "emulator.ws.frame_failed", err }, "websocket frame failed");
      });
    });
    ws.on("close", () => {
      this.park(connectionId, session.id, wsc);
      log.info({ event: "emulator.ws.closed" }, "websocket closed");
    });
  }

  /** Keeps a closed connection's subscription for recovery, buffering what it misses. */
  private park(connectionId: string, sessionId: string, wsc: { token: string; sequence: number }): void {
    if (this.closing) return;
    const p: Parked = {
      connectionId,
      sessionId,
      wsc,
      buffer: [],
      overflow: false,
      timer: setTimeout(() => {
        this.parked.delete(wsc.token);
        this.deps.subs.detachWebSocket(connectionId);
      }, RECOVERY_TIMEOUT_S * 1000),
    };
    p.timer.unref();
    this.parked.set(wsc.token, p);
    this.deps.subs.attachWebSocket(connectionId, (n) => {
      if (p.buffer.length < RECOVERY_BUFFER_SIZE) p.buffer.push(n);
      else p.overflow = true;
    });
  }

  private async onFrame(
    data: RawData,
    send: (header: Record<string, unknown>, body?: unknown) => void,
    connectionId: string,
    ownerId: string,
  ): Promise<void> {
    let frame: unknown;
    try {
      frame = JSON.parse(Buffer.isBuffer(data) ? data.toString("utf8") : String(data)) as unknown;
    } catch {
      send({ type: "Error", messageId: randomUUID(), status: 400 }, { errorCode: "WSG-400", message: "Unparsable message" });
      return;
    }
    if (!Array.isArray(frame) || typeof frame[0] !== "object" || frame[0] === null) {
      send({ type: "Error", messageId: randomUUID(), status: 400 }, { errorCode: "WSG-400", message: "Message must be a JSON array" });
      return;
    }
    const header = frame[0] as Record<string, unknown>;
    const messageId = typeof header["messageId"] === "string" ? header["messageId"] : randomUUID();
    if (header["type"] === "Heartbeat") {
      send({ type: "Heartbeat", messageId, status: 200 });
      return;
    }
    if (header["type"] !== "ClientRequest") {
      send({ type: "Error", messageId, status: 400 }, { errorCode: "WSG-400", message: "Unsupported message type" });
      return;
    }
    const method = String(header["method"] ?? "GET").toUpperCase();
    const path = String(header["path"] ?? "").replace(/\/+$/, "");
    const reply = (status: number, body?: unknown): void =>
      send({ type: "ClientRequest", messageId, status, headers: { "Content-Type": "application/json" } }, body);
    try {
      const base = this.deps.baseUrl();
      const subMatch = /^\/restapi\/v1\.0\/subscription\/([^/]+)$/.exec(path);
      if (method === "POST" && path === "/restapi/v1.0/subscription") {
        const sub = await this.deps.subs.create(frame[1], ownerId, connectionId);
        reply(200, this.deps.subs.json(sub, base));
      } else if (subMatch && method === "GET") {
        reply(200, this.deps.subs.json(this.deps.subs.get(subMatch[1] ?? "", ownerId), base));
      } else if (subMatch && method === "PUT") {
        reply(200, this.deps.subs.json(this.deps.subs.update(subMatch[1] ?? "", frame[1], ownerId), base));
      } else if (subMatch && method === "DELETE") {
        this.deps.subs.delete(subMatch[1] ?? "", ownerId);
        reply(204);
      } else {
        throw rcError(404, "CMN-102", "Resource for parameter [path] is not found", { parameterName: "path", parameterValue: path });
      }
    } catch (err) {
      if (err instanceof ApiFailure) reply(err.status, err.body);
      else throw err;
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.parked.values()) clearTimeout(p.timer);
    this.parked.clear();
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
