import { request, type Dispatcher } from "undici";

/** A fault the emulator injects (POST /emulator/faults; see src/emulator/faults.ts). */
export interface FaultSpec {
  group?: string;
  path?: string;
  count: number;
  kind: "latency" | "status" | "reset" | "429";
  status?: number;
  retryAfter?: number;
  latencyMs?: number;
}

/** GET /emulator/calls: what the emulator answered so far. */
export interface CallsSnapshot {
  total: number;
  byGroup: Record<string, number>;
  byRoute: Record<string, number>;
  byStatus: Record<string, number>;
  byRouteStatus: Record<string, Record<string, number>>;
}

/**
 * The RingCentral emulator's control API (`/emulator/*`, unmetered: watching
 * state through it costs no rate-limit budget), for tests.
 */
export class EmulatorControl {
  readonly #url: () => string;
  readonly #dispatcher: Dispatcher | undefined;

  /** `url`: the emulator's base URL, or a function giving it (for a harness that starts the emulator later). */
  constructor(url: string | (() => string), opts: { dispatcher?: Dispatcher } = {}) {
    this.#url = typeof url === "string" ? () => url : url;
    this.#dispatcher = opts.dispatcher;
  }

  /** One control call; a Buffer body is sent as is (as `contentType`), anything else as JSON. Throws on a status of 300 or more. */
  async request<T = unknown>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown, contentType?: string): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body), "utf8");
    const res = await request(this.#url() + path, {
      method,
      ...(this.#dispatcher !== undefined && { dispatcher: this.#dispatcher }),
      headers: payload === undefined ? {} : { "content-type": contentType ?? (Buffer.isBuffer(body) ? "application/octet-stream" : "application/json") },
      body: payload ?? null,
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${path}: HTTP ${res.statusCode} ${text}`);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  /** Faxes sent to the emulator, oldest first. */
  sentFaxes<T = unknown>(): Promise<T[]> {
    return this.request<T[]>("GET", "/emulator/sent-faxes");
  }

  calls(): Promise<CallsSnapshot> {
    return this.request<CallsSnapshot>("GET", "/emulator/calls");
  }

  async fault(f: FaultSpec): Promise<void> {
    await this.request("POST", "/emulator/faults", f);
  }

  async clearFaults(): Promise<void> {
    await this.request("DELETE", "/emulator/faults");
  }

  /** A received fax (a PDF, or a TIFF with `contentType: "image/tiff"`) from `from` to `to`; the message RingCentral would list. */
  injectInbound(opts: { body: Buffer; from?: string; to?: string; contentType?: string }): Promise<{ id: number | string; creationTime: string }> {
    const q = new URLSearchParams({ from: opts.from ?? "+15557654321", ...(opts.to !== undefined && { to: opts.to }) });
    return this.request("POST", `/emulator/inbound-faxes?${q.toString()}`, opts.body, opts.contentType ?? "application/pdf");
  }
}
