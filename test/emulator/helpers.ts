import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import { waitFor as waitForShared } from "../helpers/wait.js";

export const FAX_PATH = "/restapi/v1.0/account/~/extension/~/fax";
/** The shared poller with this suite's 5 s default timeout. */
export const waitFor = <T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5000): Promise<T> => waitForShared(fn, timeoutMs);

export const MS_PATH = "/restapi/v1.0/account/~/extension/~/message-store";

export function basic(id = "client-id", secret = "client-secret"): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
}

export async function tokenRequest(emu: Emulator, form: Record<string, string>, auth = basic()): Promise<Response> {
  return fetch(`${emu.url}/restapi/oauth/token`, {
    method: "POST",
    headers: { Authorization: auth, "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
}

export async function login(emu: Emulator, jwt = "jwt-assertion"): Promise<{ access_token: string; refresh_token: string }> {
  const res = await tokenRequest(emu, { grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: jwt });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { access_token: string; refresh_token: string };
}

export class Client {
  readonly emu: Emulator;
  token: string;
  constructor(emu: Emulator, token: string) {
    this.emu = emu;
    this.token = token;
  }
  static async create(emu: Emulator): Promise<Client> {
    return new Client(emu, (await login(emu)).access_token);
  }
  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${this.token}`);
    const url = path.startsWith("http") ? path : `${this.emu.url}${path}`;
    return fetch(url, { ...init, headers });
  }
  async json<T = Record<string, unknown>>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T; headers: Headers }> {
    const res = await this.fetch(path, init);
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
  }
  sendMultipart(body: Buffer, boundary: string, kind = "form-data"): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    return this.json(FAX_PATH, { method: "POST", headers: { "Content-Type": `multipart/${kind}; boundary=${boundary}` }, body });
  }
}

export interface Part {
  headers: Record<string, string>;
  body: Buffer | string;
}

export function multipart(parts: Part[], boundary = `b-${randomBytes(6).toString("hex")}`): { body: Buffer; boundary: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const head = Object.entries(p.headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    chunks.push(Buffer.from(`--${boundary}\r\n${head}\r\n`), Buffer.isBuffer(p.body) ? p.body : Buffer.from(p.body), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), boundary };
}

export function filePart(name: string, filename: string | undefined, contentType: string, body: Buffer | string): Part {
  const fn = filename === undefined ? "" : `; filename="${filename}"`;
  return { headers: { "Content-Disposition": `form-data; name="${name}"${fn}`, "Content-Type": contentType }, body };
}

export function jsonPart(value: unknown, name = "json"): Part {
  return {
    headers: { "Content-Disposition": `form-data; name="${name}"; filename="request.json"`, "Content-Type": "application/json" },
    body: JSON.stringify(value),
  };
}

export function sha256(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A tiny two-page PDF-looking document (the emulator counts `/Type /Page` objects). */
export function pdf(pages = 2, pad = 0): Buffer {
  const objs = Array.from({ length: pages }, (_, i) => `${i + 3} 0 obj << /Type /Page /Parent 2 0 R >> endobj\n`).join("");
  return Buffer.concat([
    Buffer.from(`%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Count ${pages} >> endobj\n${objs}`),
    randomBytes(pad),
    Buffer.from("\n%%EOF\n"),
  ]);
}

export interface Hook {
  url: string;
  requests: { headers: http.IncomingHttpHeaders; body: string }[];
  /** How to answer: the handshake echo by default, or a custom responder. */
  respond: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;
  close(): Promise<void>;
}

export async function webhookReceiver(): Promise<Hook> {
  const hook: Hook = {
    url: "",
    requests: [],
    respond: (req, res) => {
      const token = req.headers["validation-token"];
      res.writeHead(200, typeof token === "string" ? { "Validation-Token": token, "Content-Type": "application/json" } : {});
      res.end();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      hook.requests.push({ headers: req.headers, body });
      hook.respond(req, res, body);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return hook;
}

export async function inboundFax(emu: Emulator, body: Buffer, from = "+14155550123"): Promise<Record<string, unknown>> {
  const res = await fetch(`${emu.url}/emulator/inbound-faxes?from=${encodeURIComponent(from)}&to=%2B16505550100`, {
    method: "POST",
    headers: { "Content-Type": "application/pdf" },
    body,
  });
  if (res.status !== 200) throw new Error(`inbound fax failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

/**
 * An emulator for these tests. Tests here poll the REST API for state, so the Light and Medium
 * limits are raised unless a test sets its own (the rate-limit tests do); polling the real limits
 * (Light: 50 a minute) would meet a 429 instead of the state a test waits for.
 */
export async function start(opts: EmulatorOptions = {}): Promise<Emulator> {
  return startEmulator({ faxTimings: { queuedMs: 30, pageMs: 30 }, ...opts, limits: { Light: 1000, Medium: 1000, ...opts.limits } });
}
