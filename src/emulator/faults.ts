import type { Group } from "./ratelimit.js";

export interface Fault {
  group?: Group;
  path?: string;
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

  /** The first fault matching this call, with its remaining count decremented. */
  take(group: Group, path: string): Fault | undefined {
    const i = this.faults.findIndex((f) => (f.group === undefined || f.group === group) && (f.path === undefined || path.includes(f.path)));
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

/** Counts of RingCentral API calls by group, by `METHOD template` and by status. */
export class CallCounter {
  total = 0;
  byGroup: Record<string, number> = {};
  byRoute: Record<string, number> = {};
  byStatus: Record<string, number> = {};
  byRouteStatus: Record<string, Record<string, number>> = {};

  record(group: Group, route: string, status: string): void {
    this.total++;
    this.byGroup[group] = (this.byGroup[group] ?? 0) + 1;
    this.byRoute[route] = (this.byRoute[route] ?? 0) + 1;
    this.byStatus[status] = (this.byStatus[status] ?? 0) + 1;
    const rs = (this.byRouteStatus[route] ??= {});
    rs[status] = (rs[status] ?? 0) + 1;
  }

  reset(): void {
    this.total = 0;
    this.byGroup = {};
    this.byRoute = {};
    this.byStatus = {};
    this.byRouteStatus = {};
  }

  snapshot(): Record<string, unknown> {
    return { total: this.total, byGroup: this.byGroup, byRoute: this.byRoute, byStatus: this.byStatus, byRouteStatus: this.byRouteStatus };
  }
}
