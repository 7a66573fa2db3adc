/**
 * Inbound delivery keeps short leases alive like the outbound worker (issue
 * 11): a delivery whose lease another instance took over while this one
 * stalled is aborted in the middle of its download, and mails nothing; the
 * fax stays with its new holder, no attempt counted.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { InboundStore } from "../../src/store/ports.js";
import { openTestStores, type TestStores } from "../helpers/stores.js";
import { waitFor } from "../helpers/wait.js";
import { Harness } from "./harness.js";

const EXT = "200000001";

let h: Harness | undefined;
let other: TestStores | undefined;

afterEach(async () => {
  await h?.close();
  await other?.close();
  h = undefined;
  other = undefined;
});

describe("inbound delivery leases", () => {
  it("aborts a delivery whose lease another instance took over mid-download: no mail, the fax stays with the new holder", async () => {
    const x = await new Harness().start();
    h = x;
    const b = await openTestStores(x.dir.path, { owner: "instance-b", groupCommit: "inline" });
    other = b;
    // This instance stalls (its renewals and claims hang until the test lets them through) while RingCentral is slow to serve the document.
    let stalled = false;
    let unstall: () => void = () => undefined;
    const stall = new Promise<void>((r) => (unstall = r));
    const store = x.store;
    x.store = new Proxy(store, {
      get(target, prop) {
        // A stalled process neither renews nor claims.
        if (prop === "renewLease" || prop === "claimDue") {
          const fn = (target[prop] as (...args: unknown[]) => Promise<unknown>).bind(target);
          return async (...args: unknown[]) => {
            if (stalled) await stall;
            return fn(...args);
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as InboundStore;
    await x.control("POST", "/emulator/faults", { kind: "latency", path: "/content/", latencyMs: 4000, count: 1 });
    const svc = x.service({ leaseMs: 600 });
    await svc.start();
    const fax = await x.inject();
    await svc.syncNow();
    const row = await waitFor(async () => {
      const f = await store.findByRcId(EXT, fax.id);
      return f?.leaseOwner === store.owner ? f : undefined;
    }, 5000, "this instance to claim the fax");
    stalled = true;
    const taken = await waitFor(async () => {
      const got = await b.inbound.claimDue({ limit: 1, leaseMs: 60_000, now: Date.now() });
      return got.length > 0 ? got : undefined;
    }, 10_000, "instance b to take the fax over once the lease ran out");
    expect(taken.map((f) => f.id)).toEqual([row.id]);
    unstall();
    await waitFor(() => x.events("inbound.lease_lost").length === 1, 5000, "the delivery to learn it lost the fax");
    await svc.stop();
    expect(x.mailsFor(fax.id)).toHaveLength(0);
    expect(x.events("inbound.deferred")).toHaveLength(0);
    expect(await b.inbound.get(row.id)).toMatchObject({ state: "discovered", leaseOwner: "instance-b", attempts: 0 });
  });
});
