import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { Logger } from "../log.js";
import {
  ACCOUNT_ID, DEFAULT_SUBSCRIPTION_TTL_S, EXTENSION_ID, MAX_SUBSCRIPTIONS, MAX_WEBHOOK_TTL_S, WEBHOOK_MAX_RESPONSE_BYTES,
  WEBHOOK_TIMEOUT_MS,
} from "./constants.js";
import { invalidParam, isoTime, rcError } from "./http.js";
import type { ChangeKind, StoredMessage } from "./store.js";

export type DeliveryMode =
  | { transportType: "WebHook"; address: string; verificationToken?: string }
  | { transportType: "WebSocket"; connectionId: string };

export interface DeliveryLogEntry {
  uuid: string;
  at: string;
  ok: boolean;
  status?: number;
  error?: string;
}

export interface Subscription {
  id: string;
  /** The extension that created it: only its message-store events reach it, only its token sees it. */
  ownerId: string;
  eventFilters: string[];
  disabledFilters: { filter: string; reason: string; message: string }[];
  expiresIn: number;
  creationTime: number;
  expirationTime: number;
  status: "Active" | "Blacklisted";
  deliveryMode: DeliveryMode;
  blacklistedData?: { blacklistedAt: string; reason: string };
  consecutiveFailures: number;
  deliveries: DeliveryLogEntry[];
}

interface ParsedFilter {
  filter: string;
  event: string;
  type?: string;
  direction?: string;
}

const FILTER_RE = /^\/restapi\/v1\.0\/account\/(~|\d+)\/extension\/(~|\d+)\/message-store(?:\?(.*))?$/;

export type WsSender = (body: Record<string, unknown>) => void;

interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
}

/** POSTs to a webhook address with a deadline, measuring the response (headers + body) size. */
function post(address: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const url = new URL(address);
    const lib = url.protocol === "https:" ? https : http;
    const req = lib.request(url, { method: "POST", headers: { ...headers, "Content-Length": String(Buffer.byteLength(body)) }, timeout: timeoutMs });
    const timer = setTimeout(() => req.destroy(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on("response", (res) => {
      let bytes = 0;
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        bytes += (res.rawHeaders[i] ?? "").length + (res.rawHeaders[i + 1] ?? "").length + 4;
      }
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes });
      });
      res.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.end(body);
  });
}

export interface SubscriptionDeps {
  log: Logger;
  blacklistAfter: number;
}

/** Subscriptions (WebHook and WebSocket) and delivery of message-store events to them. */
export class SubscriptionService {
  private readonly subs = new Map<string, Subscription>();
  private readonly wsSenders = new Map<string, WsSender>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly deps: SubscriptionDeps;

  constructor(deps: SubscriptionDeps) {
    this.deps = deps;
  }

  uri(baseUrl: string, id: string): string {
    return `${baseUrl}/restapi/v1.0/subscription/${id}`;
  }

  json(sub: Subscription, baseUrl: string): Record<string, unknown> {
    const deliveryMode: Record<string, unknown> =
      sub.deliveryMode.transportType === "WebHook"
        ? { transportType: "WebHook", address: sub.deliveryMode.address, encryption: false }
        : { transportType: "WebSocket" };
    const out: Record<string, unknown> = {
      uri: this.uri(baseUrl, sub.id),
      id: sub.id,
      eventFilters: sub.eventFilters,
      disabledFilters: sub.disabledFilters,
      expirationTime: isoTime(sub.expirationTime),
      expiresIn: Math.max(1, Math.round((sub.expirationTime - Date.now()) / 1000)),
      status: sub.status,
      creationTime: isoTime(sub.creationTime),
      deliveryMode,
    };
    if (sub.blacklistedData) out["blacklistedData"] = sub.blacklistedData;
    return out;
  }

  /** Validates CreateSubscriptionRequest for extension `ownerId`; for WebHook runs the Validation-Token handshake first. */
  async create(body: unknown, ownerId: string = EXTENSION_ID, wsConnectionId?: string): Promise<Subscription> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalidParam("eventFilters");
    const b = body as Record<string, unknown>;
    const { valid, disabled } = this.checkFilters(b["eventFilters"], ownerId);
    const expiresIn = this.checkExpiresIn(b["expiresIn"]);
    // RingCentral allows 30 subscriptions per extension and app; a leak must fail here before it fails there.
    const now0 = Date.now();
    const live = [...this.subs.values()].filter(
      (s) => s.ownerId === ownerId && s.expirationTime > now0 && !(wsConnectionId !== undefined && s.deliveryMode.transportType === "WebSocket" && s.deliveryMode.connectionId === wsConnectionId),
    );
    if (live.length >= MAX_SUBSCRIPTIONS) throw rcError(403, "SUB-505", "Subscriptions limit exceeded");
    const dm = b["deliveryMode"];
    if (typeof dm !== "object" || dm === null) throw invalidParam("deliveryMode");
    const d = dm as Record<string, unknown>;
    let deliveryMode: DeliveryMode;
    if (d["transportType"] === "WebHook") {
      const address = d["address"];
      if (typeof address !== "string" || !/^https?:\/\//.test(address) || !URL.canParse(address)) {
        throw invalidParam("deliveryMode.address", address);
      }
      const token = d["verificationToken"];
      if (token !== undefined && typeof token !== "string") throw invalidParam("deliveryMode.verificationToken");
      await this.handshake(address);
      deliveryMode = token === undefined ? { transportType: "WebHook", address } : { transportType: "WebHook", address, verificationToken: token };
    } else if (d["transportType"] === "WebSocket") {
      if (wsConnectionId === undefined) {
        throw rcError(400, "SUB-522", "WebSocket subscriptions can only be created over a WebSocket connection");
      }
      deliveryMode = { transportType: "WebSocket", connectionId: wsConnectionId };
    } else {
      throw invalidParam("deliveryMode.transportType", d["transportType"]);
    }
    const now = Date.now();
    const sub: Subscription = {
      id: randomUUID(),
      ownerId,
      eventFilters: valid.map((f) => f.event),
      disabledFilters: disabled,
      expiresIn,
      creationTime: now,
      expirationTime: now + expiresIn * 1000,
      status: "Active",
      deliveryMode,
      consecutiveFailures: 0,
      deliveries: [],
    };
    if (wsConnectionId !== undefined) {
      // One subscription per WebSocket connection: a new one replaces the old.
      for (const s of this.subs.values()) {
        if (s.deliveryMode.transportType === "WebSocket" && s.deliveryMode.connectionId === wsConnectionId) this.subs.delete(s.id);
      }
    }
    this.subs.set(sub.id, sub);
    this.deps.log.info({ event: "emulator.subscription.created", subscriptionId: sub.id, extensionId: ownerId, transport: deliveryMode.transportType }, "subscription created");
    return sub;
  }

  /**
   * Finds a live subscription: 404 CMN-102 if unknown (or, with `ownerId`,
   * another extension's), 404 SUB-507 once expired.
   */
  get(id: string, ownerId?: string): Subscription {
    const sub = this.subs.get(id);
    if (!sub || (ownerId !== undefined && sub.ownerId !== ownerId)) throw rcError(404, "CMN-102", "Resource for parameter [subscriptionId] is not found", { parameterName: "subscriptionId", parameterValue: id });
    if (sub.expirationTime <= Date.now()) {
      throw rcError(404, "SUB-507", `Subscription [${id}] was expired`, { parameterName: "subscriptionId", parameterValue: id });
    }
    return sub;
  }

  /** Live subscriptions, of one extension when `ownerId` is given. */
  list(ownerId?: string): Subscription[] {
    const now = Date.now();
    return [...this.subs.values()].filter((s) => s.expirationTime > now && (ownerId === undefined || s.ownerId === ownerId));
  }

  /** Every subscription including expired ones, for the control API. */
  everything(): Subscription[] {
    return [...this.subs.values()];
  }

  /** PUT: an empty body renews; otherwise replaces filters and/or expiresIn (and renews). */
  update(id: string, body: unknown, ownerId?: string): Subscription {
    const sub = this.get(id, ownerId);
    if (body !== undefined) {
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalidParam("eventFilters");
      const b = body as Record<string, unknown>;
      if (b["eventFilters"] !== undefined) {
        const { valid, disabled } = this.checkFilters(b["eventFilters"], sub.ownerId);
        sub.eventFilters = valid.map((f) => f.event);
        sub.disabledFilters = disabled;
      }
      if (b["expiresIn"] !== undefined) sub.expiresIn = this.checkExpiresIn(b["expiresIn"]);
    }
    return this.renew(id, ownerId);
  }

  renew(id: string, ownerId?: string): Subscription {
    const sub = this.get(id, ownerId);
    sub.expirationTime = Date.now() + sub.expiresIn * 1000;
    return sub;
  }

  delete(id: string, ownerId?: string): void {
    this.get(id, ownerId);
    this.subs.delete(id);
    this.deps.log.info({ event: "emulator.subscription.deleted", subscriptionId: id }, "subscription deleted");
  }

  blacklist(id: string, reason = "Webhook responses are failed"): Subscription {
    const sub = this.subs.get(id);
    if (!sub) throw rcError(404, "CMN-102", "Resource for parameter [subscriptionId] is not found", { parameterName: "subscriptionId" });
    sub.status = "Blacklisted";
    sub.blacklistedData = { blacklistedAt: isoTime(Date.now()), reason };
    this.deps.log.warn({ event: "emulator.subscription.blacklisted", subscriptionId: id }, "subscription blacklisted");
    return sub;
  }

  attachWebSocket(connectionId: string, send: WsSender): void {
    this.wsSenders.set(connectionId, send);
  }

  detachWebSocket(connectionId: string): void {
    this.wsSenders.delete(connectionId);
    for (const s of this.subs.values()) {
      if (s.deliveryMode.transportType === "WebSocket" && s.deliveryMode.connectionId === connectionId) this.subs.delete(s.id);
    }
  }

  /** A recovered WebSocket session: its subscription now delivers over the new connection. */
  rebindWebSocket(oldConnectionId: string, newConnectionId: string): void {
    for (const s of this.subs.values()) {
      if (s.deliveryMode.transportType === "WebSocket" && s.deliveryMode.connectionId === oldConnectionId) {
        s.deliveryMode = { transportType: "WebSocket", connectionId: newConnectionId };
      }
    }
  }

  /** A message was created or changed: notify every matching, active, unexpired subscription of its extension. */
  onMessageChange(msg: StoredMessage, kind: ChangeKind): void {
    const now = Date.now();
    const ownerId = msg.owner?.extensionId ?? EXTENSION_ID;
    for (const sub of this.subs.values()) {
      if (sub.status !== "Active" || sub.expirationTime <= now || sub.ownerId !== ownerId) continue;
      for (const filter of sub.eventFilters) {
        const parsed = parseFilter(filter, ownerId);
        if (!parsed) continue;
        if (parsed.type !== undefined && parsed.type !== msg.type) continue;
        if (parsed.direction !== undefined && parsed.direction !== msg.direction) continue;
        this.notify(sub, parsed.event, msg, kind);
        break;
      }
    }
  }

  private notify(sub: Subscription, event: string, msg: StoredMessage, kind: ChangeKind): void {
    const now = isoTime(Date.now());
    const change: Record<string, unknown> = { type: msg.type, newCount: kind === "new" ? 1 : 0, updatedCount: kind === "updated" ? 1 : 0 };
    if (kind === "new") change["newMessageIds"] = [msg.id];
    const notification = {
      uuid: randomUUID(),
      event,
      timestamp: now,
      subscriptionId: sub.id,
      ownerId: sub.ownerId,
      body: { extensionId: sub.ownerId, lastUpdated: isoTime(msg.lastModifiedTime), changes: [change], ownerId: sub.ownerId },
    };
    const mode = sub.deliveryMode;
    if (mode.transportType === "WebSocket") {
      this.wsSenders.get(mode.connectionId)?.(notification);
      return;
    }
    const p = this.deliver(sub, mode, notification).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async deliver(sub: Subscription, mode: Extract<DeliveryMode, { transportType: "WebHook" }>, n: { uuid: string }): Promise<void> {
    const headers: Record<string, string> = {
      "Content-Type": "application/json; charset=UTF-8",
      "User-Agent": "RingCentral-Webhook/8.3",
    };
    if (mode.verificationToken !== undefined) headers["Verification-Token"] = mode.verificationToken;
    const entry: DeliveryLogEntry = { uuid: n.uuid, at: isoTime(Date.now()), ok: false };
    try {
      const res = await post(mode.address, headers, JSON.stringify(n), WEBHOOK_TIMEOUT_MS);
      entry.status = res.status;
      entry.ok = res.status >= 200 && res.status < 300;
    } catch (err) {
      entry.error = err instanceof Error ? err.message : String(err);
    }
    sub.deliveries.push(entry);
    if (entry.ok) {
      sub.consecutiveFailures = 0;
      return;
    }
    sub.consecutiveFailures++;
    this.deps.log.warn({ event: "emulator.webhook.failed", subscriptionId: sub.id, status: entry.status, error: entry.error }, "webhook delivery failed");
    if (sub.status === "Active" && sub.consecutiveFailures >= this.deps.blacklistAfter) this.blacklist(sub.id);
  }

  /** Validation-Token handshake: 200, header echoed, within 3000 ms, response ≤ 1024 bytes; else SUB-525. */
  private async handshake(address: string): Promise<void> {
    const token = randomBytes(16).toString("hex");
    let ok = false;
    let reason: string;
    try {
      const res = await post(address, { "Validation-Token": token, "Content-Type": "application/json", "User-Agent": "RingCentral-Webhook/8.3" }, "", WEBHOOK_TIMEOUT_MS);
      ok = res.status === 200 && res.headers["validation-token"] === token && res.bytes <= WEBHOOK_MAX_RESPONSE_BYTES;
      reason = `status ${res.status}, ${res.bytes} bytes`;
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
    }
    if (!ok) {
      this.deps.log.warn({ event: "emulator.webhook.handshake_failed", reason }, "webhook handshake failed");
      throw rcError(400, "SUB-525", "WebHook server response is invalid");
    }
  }

  private checkFilters(value: unknown, ownerId: string): { valid: ParsedFilter[]; disabled: Subscription["disabledFilters"] } {
    if (!Array.isArray(value) || value.length === 0 || !value.every((f) => typeof f === "string" && f !== "")) {
      throw invalidParam("eventFilters");
    }
    const valid: ParsedFilter[] = [];
    const disabled: Subscription["disabledFilters"] = [];
    for (const f of value as string[]) {
      const parsed = parseFilter(f, ownerId);
      if (parsed) valid.push(parsed);
      else disabled.push({ filter: f, reason: "Invalid", message: "Event filter is not supported" });
    }
    if (valid.length === 0) throw rcError(400, "SUB-508", "Invalid event filters");
    return { valid, disabled };
  }

  private checkExpiresIn(value: unknown): number {
    if (value === undefined) return DEFAULT_SUBSCRIPTION_TTL_S;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw invalidParam("expiresIn", value);
    return Math.min(value, MAX_WEBHOOK_TTL_S);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }
}

/** A message-store event filter of extension `ownerId` (`~` or its id; another extension's is not supported for it). */
export function parseFilter(filter: string, ownerId: string = EXTENSION_ID): ParsedFilter | undefined {
  const m = FILTER_RE.exec(filter);
  if (!m) return undefined;
  if (m[1] !== "~" && m[1] !== ACCOUNT_ID) return undefined;
  if (m[2] !== "~" && m[2] !== ownerId) return undefined;
  const q = new URLSearchParams(m[3] ?? "");
  for (const key of q.keys()) if (key !== "type" && key !== "direction") return undefined;
  const out: ParsedFilter = {
    filter,
    event: `/restapi/v1.0/account/${ACCOUNT_ID}/extension/${ownerId}/message-store${m[3] ? `?${m[3]}` : ""}`,
  };
  const type = q.get("type");
  const direction = q.get("direction");
  if (type !== null) {
    if (!["Fax", "SMS", "VoiceMail", "Pager"].includes(type)) return undefined;
    out.type = type;
  }
  if (direction !== null) {
    if (direction !== "Inbound" && direction !== "Outbound") return undefined;
    out.direction = direction;
  }
  return out;
}
