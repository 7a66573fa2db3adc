/**
 * The QuotaStore contract (src/store/ports.ts), run against every backend in
 * test/store/backends.ts: a take is one atomic check-and-record across
 * instances on the same data, a release gives it back, a seed happens once.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { QuotaStore } from "../../../src/store/ports.js";
import { BACKENDS, backendTitle, type BackendData } from "../backends.js";

const HOUR = 3_600_000;

for (const backend of BACKENDS) {
  const { title, skip } = await backendTitle(backend, "QuotaStore contract");
  describe.skipIf(skip)(`${title}`, () => {
    let data: BackendData;
    let a: QuotaStore;
    let b: QuotaStore;

    beforeEach(async () => {
      data = await backend.create();
      a = (await data.instance()).quota;
      b = (await data.instance()).quota;
    });
    afterEach(async () => {
      await data.cleanup();
    });

    it("takes while usage fits, refuses with the limit and when it frees up, and records nothing when refused", async () => {
      const t0 = 10 * HOUR;
      expect(await a.take([{ key: "fax:s", limit: 3 }], 2, t0, HOUR)).toMatchObject({ ok: true });
      expect(await b.take([{ key: "fax:s", limit: 3 }], 1, t0 + 1000, HOUR)).toMatchObject({ ok: true });
      // Another instance sees both takes.
      expect(await b.take([{ key: "fax:s", limit: 3 }, { key: "fax:*", limit: 100 }], 1, t0 + 2000, HOUR)).toEqual({ ok: false, key: "fax:s", limit: 3, freeAt: t0 + HOUR });
      expect(await a.check([{ key: "fax:*", limit: 1 }], 1, t0 + 2000, HOUR)).toMatchObject({ ok: true });
      // Out of the window, it fits again.
      expect(await a.take([{ key: "fax:s", limit: 3 }], 2, t0 + HOUR, HOUR)).toMatchObject({ ok: true });
    });

    it("a refused limit anywhere refuses the whole take; a release gives every key back", async () => {
      const t = 20 * HOUR;
      const first = await a.take([{ key: "fax:x", limit: 5 }, { key: "fax:*", limit: 2 }], 2, t, HOUR);
      expect(first.ok).toBe(true);
      expect(await b.take([{ key: "fax:y", limit: 5 }, { key: "fax:*", limit: 2 }], 1, t, HOUR)).toMatchObject({ ok: false, key: "fax:*", limit: 2 });
      expect(await b.check([{ key: "fax:y", limit: 1 }], 1, t, HOUR)).toMatchObject({ ok: true });
      if (first.ok) await b.release(first.id);
      expect(await b.take([{ key: "fax:y", limit: 5 }, { key: "fax:*", limit: 2 }], 2, t, HOUR)).toMatchObject({ ok: true });
      await a.release("unknown");
    });

    it("two instances racing 40 takes against a limit of 10: exactly 10 succeed", async () => {
      const t = 30 * HOUR;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).take([{ key: "fax:race", limit: 10 }, { key: "fax:*", limit: 1000 }], 1, t + i, HOUR)),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(await a.check([{ key: "fax:race", limit: 10 }], 1, t + 100, HOUR)).toMatchObject({ ok: false, limit: 10 });
    });

    it("records limits of 0 without checking them", async () => {
      const t = 40 * HOUR;
      expect(await a.take([{ key: "pages:z", limit: 0 }], 50, t, HOUR)).toMatchObject({ ok: true });
      expect(await a.check([{ key: "pages:z", limit: 50 }], 1, t, HOUR)).toMatchObject({ ok: false, freeAt: t + HOUR });
    });

    it("seeds a scope once, whichever instance comes first", async () => {
      const t = 50 * HOUR;
      const entries = [{ keys: ["fax:s", "fax:*"], at: t - 1000, n: 2 }];
      const seeded = await Promise.all([a.seed("fax", entries), b.seed("fax", entries)]);
      expect(seeded.sort()).toEqual([false, true]);
      expect(await a.check([{ key: "fax:s", limit: 2 }], 1, t, HOUR)).toMatchObject({ ok: false });
      expect(await a.check([{ key: "fax:s", limit: 3 }], 1, t, HOUR)).toMatchObject({ ok: true });
      expect(await b.seed("pages", [])).toBe(true);
    });

    it("purges entries older than a point in time", async () => {
      await a.take([{ key: "k", limit: 0 }], 1, 1000, HOUR);
      await a.take([{ key: "k", limit: 0 }], 1, 5000, HOUR);
      expect(await b.purge(2000)).toBe(1);
      expect(await a.check([{ key: "k", limit: 1 }], 1, 6000, HOUR)).toMatchObject({ ok: false });
    });
  });
}
