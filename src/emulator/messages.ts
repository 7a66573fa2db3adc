import { createReadStream } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { invalidParam, notFound, parseDateParam, rcError, readJson, resolvedPath, sendEmpty } from "./http.js";
import {
  messageJson, singleMessageJson, type Availability, type Direction, type MessageStore, type ReadStatus,
  type StoredMessage,
} from "./store.js";

const MESSAGE_TYPES = ["Fax", "SMS", "VoiceMail", "Pager"] as const;
const DIRECTIONS = ["Inbound", "Outbound"] as const;
const AVAILABILITIES = ["Alive", "Deleted", "Purged"] as const;
const READ_STATUSES = ["Read", "Unread"] as const;

export function enumList<T extends string>(q: URLSearchParams, name: string, allowed: readonly T[]): T[] | undefined {
  const values = q.getAll(name).flatMap((v) => v.split(",")).filter((v) => v !== "");
  if (values.length === 0) return undefined;
  for (const v of values) if (!(allowed as readonly string[]).includes(v)) throw invalidParam(name, v);
  return values as T[];
}

function intParam(q: URLSearchParams, name: string, dflt: number, min: number): number {
  const raw = q.get(name);
  if (raw === null || raw === "") return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw invalidParam(name, raw);
  return n;
}

export interface MessageFilter {
  messageType?: string[] | undefined;
  direction?: Direction[] | undefined;
  availability?: Availability[] | undefined;
  readStatus?: ReadStatus[] | undefined;
  dateFrom?: number;
  dateTo?: number;
}

export function matches(m: StoredMessage, f: MessageFilter): boolean {
  if (f.messageType && !f.messageType.includes(m.type)) return false;
  if (f.direction && !f.direction.includes(m.direction)) return false;
  if (f.availability && !f.availability.includes(m.availability)) return false;
  if (f.readStatus && !f.readStatus.includes(m.readStatus)) return false;
  if (f.dateFrom !== undefined && m.creationTime < f.dateFrom) return false;
  if (f.dateTo !== undefined && m.creationTime > f.dateTo) return false;
  return true;
}

/** Newest first, as RingCentral lists them. */
export function newestFirst(a: StoredMessage, b: StoredMessage): number {
  return b.creationTime - a.creationTime || b.id - a.id;
}

/** GET …/message-store (listMessages). */
export function listMessages(store: MessageStore, url: URL, baseUrl: string): Record<string, unknown> {
  const q = url.searchParams;
  const dateTo = parseDateParam("dateTo", q.get("dateTo")) ?? Date.now();
  const dateFrom = parseDateParam("dateFrom", q.get("dateFrom")) ?? dateTo - 24 * 3600 * 1000;
  const filter: MessageFilter = {
    messageType: enumList(q, "messageType", MESSAGE_TYPES),
    direction: enumList(q, "direction", DIRECTIONS),
    availability: enumList(q, "availability", AVAILABILITIES) ?? ["Alive"],
    readStatus: enumList(q, "readStatus", READ_STATUSES),
    dateFrom,
    dateTo,
  };
  const page = intParam(q, "page", 1, 1);
  const perPage = Math.min(1000, intParam(q, "perPage", 100, 1));
  const all = store.all().filter((m) => matches(m, filter)).sort(newestFirst);
  const totalPages = Math.max(1, Math.ceil(all.length / perPage));
  const start = (page - 1) * perPage;
  const records = all.slice(start, start + perPage).map((m) => messageJson(m, baseUrl));
  const path = resolvedPath(url.pathname, store.owner.extensionId);
  const pageUri = (n: number): { uri: string } => {
    const u = new URL(path + url.search, baseUrl);
    u.searchParams.set("page", String(n));
    u.searchParams.set("perPage", String(perPage));
    return { uri: u.toString() };
  };
  const navigation: Record<string, { uri: string }> = { firstPage: pageUri(1), lastPage: pageUri(totalPages) };
  if (page < totalPages) navigation["nextPage"] = pageUri(page + 1);
  if (page > 1) navigation["previousPage"] = pageUri(Math.min(page - 1, totalPages));
  const paging: Record<string, number> = { page, perPage, totalPages, totalElements: all.length };
  if (records.length > 0) {
    paging["pageStart"] = start;
    paging["pageEnd"] = start + records.length - 1;
  }
  return { uri: new URL(path + url.search, baseUrl).toString(), records, paging, navigation };
}

export function findMessage(store: MessageStore, id: string): StoredMessage {
  const msg = /^\d+$/.test(id) ? store.get(Number(id)) : undefined;
  if (!msg || msg.availability === "Purged") throw notFound("messageId", id);
  return msg;
}

export function readMessage(store: MessageStore, id: string, baseUrl: string): Record<string, unknown> {
  return singleMessageJson(findMessage(store, id), baseUrl);
}

/** PUT (readStatus required) and PATCH (readStatus and/or availability). */
export async function updateMessage(
  store: MessageStore,
  id: string,
  req: IncomingMessage,
  baseUrl: string,
  patch: boolean,
): Promise<Record<string, unknown>> {
  const msg = findMessage(store, id);
  const body = await readJson(req);
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalidParam("readStatus");
  const b = body as Record<string, unknown>;
  const readStatus = b["readStatus"];
  const availability = b["availability"];
  if (readStatus !== undefined || !patch) {
    if (readStatus !== "Read" && readStatus !== "Unread") throw invalidParam("readStatus", readStatus);
  }
  if (patch && availability !== undefined && availability !== "Alive" && availability !== "Deleted" && availability !== "Purged") {
    throw invalidParam("availability", availability);
  }
  store.update(msg, (m) => {
    if (readStatus === "Read" || readStatus === "Unread") m.readStatus = readStatus;
    if (patch && (availability === "Alive" || availability === "Deleted" || availability === "Purged")) m.availability = availability;
  });
  return messageJson(msg, baseUrl);
}

/** DELETE: Alive → Deleted, Deleted → Purged; `purge=true` purges at once. */
export function deleteMessage(store: MessageStore, id: string, url: URL, res: ServerResponse): void {
  const msg = findMessage(store, id);
  const purge = url.searchParams.get("purge") === "true";
  store.update(msg, (m) => {
    m.availability = purge || m.availability === "Deleted" ? "Purged" : "Deleted";
  });
  sendEmpty(res, 204);
}

/** GET …/content/{attachmentId}: streams the file; supports `Range: bytes=`. */
export async function readContent(
  store: MessageStore,
  id: string,
  attachmentId: string,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const msg = findMessage(store, id);
  const att = msg.attachments.find((a) => String(a.id) === attachmentId);
  if (!att) throw notFound("attachmentId", attachmentId);
  const headers: Record<string, string> = { "Content-Type": att.contentType, "Accept-Ranges": "bytes" };
  const disposition = url.searchParams.get("contentDisposition");
  if (disposition === "Inline" || disposition === "Attachment") {
    const name = url.searchParams.get("contentDispositionFilename") ?? att.fileName;
    headers["Content-Disposition"] = `${disposition.toLowerCase()}; filename="${name.replace(/["\\\r\n]/g, "_")}"`;
  } else if (disposition !== null) {
    throw invalidParam("contentDisposition", disposition);
  }
  let start = 0;
  let end = att.size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range !== undefined) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    let ok = m !== null && (m[1] !== "" || m[2] !== "");
    if (m && ok) {
      if (m[1] === "") {
        const suffix = Number(m[2]);
        start = Math.max(0, att.size - suffix);
        ok = suffix > 0;
      } else {
        start = Number(m[1]);
        if (m[2] !== "") end = Math.min(end, Number(m[2]));
      }
      ok = ok && start <= end && start < att.size;
    }
    if (!ok) {
      throw rcError(416, "CMN-107", "Requested Range Not Satisfiable", {}, { "Content-Range": `bytes */${att.size}` });
    }
    status = 206;
    headers["Content-Range"] = `bytes ${start}-${end}/${att.size}`;
  }
  headers["Content-Length"] = String(att.size === 0 ? 0 : end - start + 1);
  res.writeHead(status, headers);
  if (att.size === 0) {
    res.end();
    return;
  }
  await pipeline(createReadStream(att.path, { start, end }), res);
}

