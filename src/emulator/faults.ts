import type { Group } from "./ratelimit.js";

export interface Fault {
  group?: Group;
  path?: string;
  /** Only calls made with this extension's token (checked once the token is known). */
  extensionId?: string;
  count: number;
  kind: "latency" | "status" | "reset" | "429";
  latencyMs?: number;
  status?: number;
  retryAfter?: number;
}

/** Faults injected through POST /emulator/faults, each applied to the next `count` matching API calls. */
export class FaultBook {
  private readonly faults: Fault[] = [];

  add(f: Fault): void {
    this.faults.push({ ...f });
  }

  /**
   * The first fault matching this call, with its remaining count decremented.
   * Without `extensionId` (before the caller is known) only faults for any
   * extension match; with it, only faults for that extension.
   */
  take(group: Group, path: string, extensionId?: string): Fault | undefined {
    const i = this.faults.findIndex(
      (f) => f.extensionId === extensionId && (f.group === undefined || f.group === group) && (f.path === undefined || path.includes(f.path)),
    );
    if (i < 0) return undefined;
    const f = this.faults[i];
    if (!f) return undefined;
    f.count--;
    if (f.count <= 0) this.faults.splice(i, 1);
    return f;
  }

  clear(): void {
    this.faults.length = 0;
  }
}

/** Calls of one extension (made with its token). */
export interface ExtensionCalls {
  total: number;
  byGroup: Record<string, number>;
  byStatus: Record<string, number>;
  byGroupStatus: Record<string, Record<string, number>>;
}

/** Counts of RingCentral API calls by group, by `METHOD template`, by status and by the calling extension. */
export class CallCounter {
  total = 0;
  byGroup: Record<string, number> = {};
  byRoute: Record<string, number> = {};
  byStatus: Record<string, number> = {};
  byRouteStatus: Record<string, Record<string, number>> = {};
  byExtension: Record<string, ExtensionCalls> = {};

  record(group: Group, route: string, status: string, extensionId?: string): void {
    this.total++;
    this.byGroup[group] = (this.byGroup[group] ?? 0) + 1;
    this.byRoute[route] = (this.byRoute[route] ?? 0) + 1;
    this.byStatus[status] = (this.byStatus[status] ?? 0) + 1;
    const rs = (this.byRouteStatus[route] ??= {});
    rs[status] = (rs[status] ?? 0) + 1;
    if (extensionId === undefined) return;
    const e = (this.byExtension[extensionId] ??= { total: 0, byGroup: {}, byStatus: {}, byGroupStatus: {} });
    e.total++;
    e.byGroup[group] = (e.byGroup[group] ?? 0) + 1;
    e.byStatus[status] = (e.byStatus[status] ?? 0) + 1;
    const gs = (e.byGroupStatus[group] ??= {});
    gs[status] = (gs[status] ?? 0) + 1;
  }

  reset(): void {
    this.total = 0;
    this.byGroup = {};
    this.byRoute = {};
    this.byStatus = {};
    this.byRouteStatus = {};
    this.byExtension = {};
  }

  snapshot(): Record<string, unknown> {
    return {
      total: this.total, byGroup: this.byGroup, byRoute: this.byRoute, byStatus: this.byStatus, byRouteStatus: this.byRouteStatus,
      byExtension: this.byExtension,
    };
  }
}
