/**
 * The DocumentStore contract (src/store/ports.ts), run against every backend
 * in test/store/backends.ts: streamed in and out, durable keys, no paths.
 */
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DocumentError, isDocumentKey, mailKey, workKey, workPrefix, type DocumentStore } from "../../../src/store/ports.js";
import { newId } from "../../../src/util/ids.js";
import { BACKENDS, backendTitle, type BackendData } from "../backends.js";

/** `size` bytes of a repeatable pattern, produced in 64 KiB chunks as it is read (never whole in memory). */
function generated(size: number, seed = 7): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(65_536, size - sent);
      const chunk = Buffer.alloc(n);
      for (let i = 0; i < n; i++) chunk[i] = (sent + i * seed) & 0xff;
      sent += n;
      this.push(chunk);
    },
  });
}

async function digest(r: Readable): Promise<{ sha: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const c of r) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha: h.digest("hex"), size };
}

for (const backend of BACKENDS) {
  const { title, skip } = await backendTitle(backend, "DocumentStore contract");
  describe.skipIf(skip)(`${title}`, () => {
    let data: BackendData;
    let docs: DocumentStore;
    let other: DocumentStore;

    beforeEach(async () => {
      data = await backend.create();
      docs = (await data.instance()).documents;
      other = (await data.instance()).documents;
    });
    afterEach(async () => {
      await data.cleanup();
    });

    it("round-trips a multi-megabyte document, streamed both ways, readable by another instance", async () => {
      const key = mailKey(newId());
      const size = 12 * 1024 * 1024 + 123;
      const want = await digest(generated(size));
      expect(await docs.put(key, generated(size), { maxBytes: 20 * 1024 * 1024 })).toEqual({ key, size });
      expect(await other.stat(key)).toEqual({ size });
      expect(await digest(await other.open(key))).toEqual(want);
      const local = await other.localFile(key);
      try {
        expect(createHash("sha256").update(await readFile(local.path)).digest("hex")).toBe(want.sha);
      } finally {
        await local.done();
      }
    });

    it("refuses a document over maxBytes, keeps nothing, and still reads the input to its end", async () => {
      const key = mailKey(newId());
      const input = new PassThrough();
      let ended = false;
      input.on("end", () => (ended = true));
      generated(300_000).pipe(input);
      const err = await docs.put(key, input, { maxBytes: 100_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DocumentError);
      expect(err).toMatchObject({ kind: "too_big" });
      expect(ended).toBe(true);
      expect(await docs.stat(key)).toBeUndefined();
      expect(await docs.list("msg")).toEqual([]);
      expect(await docs.sweepPartial()).toBe(0);
    });

    it("reports an input that broke off as aborted, keeping nothing", async () => {
      const key = mailKey(newId());
      const input = new PassThrough();
      const pending = docs.put(key, input);
      input.write(Buffer.alloc(1000, 97));
      input.destroy();
      await expect(pending).rejects.toMatchObject({ kind: "aborted" });
      expect(await docs.stat(key)).toBeUndefined();
    });

    it("keeps a job's documents under its work prefix and removes them with it", async () => {
      const id = newId();
      await docs.put(mailKey(id), Readable.from([Buffer.from("raw mail")]));
      const dir = await docs.workDir(id);
      await writeFile(join(dir, "a.pdf"), "%PDF-1.4 a");
      await docs.put(`${workPrefix(id)}/b.txt`, Readable.from([Buffer.from("text b")]));
      expect(await docs.list(workPrefix(id))).toEqual(["a.pdf", "b.txt"]);
      expect(await docs.list("work")).toEqual([id]);
      expect(await docs.list("msg")).toEqual([`${id}.eml`]);
      expect((await digest(await other.open(`${workPrefix(id)}/b.txt`))).size).toBe(6);
      await docs.remove(workPrefix(id));
      await docs.remove(mailKey(id));
      await docs.remove(mailKey(id)); // missing is fine
      expect(await docs.list("work")).toEqual([]);
      expect(await docs.stat(mailKey(id))).toBeUndefined();
      await expect(docs.open(mailKey(id))).rejects.toMatchObject({ kind: "missing" });
    });

    it("stores what was extracted into a job's workDir under its keys, for every instance, and lends it back as local files", async () => {
      const id = newId();
      const dir = await docs.workDir(id);
      await writeFile(join(dir, "000-a.pdf"), "%PDF-1.4 a");
      await writeFile(join(dir, "001-Rechnung März.txt"), "text b");
      await docs.storeWorkDir(id);
      expect(await other.list(workPrefix(id))).toEqual(["000-a.pdf", "001-Rechnung März.txt"]);
      expect(await other.stat(workKey(id, "001-Rechnung März.txt"))).toEqual({ size: 6 });
      const local = await other.localFile(workKey(id, "000-a.pdf"));
      expect(await readFile(local.path, "utf8")).toBe("%PDF-1.4 a");
      await local.done();
      await other.remove(workPrefix(id));
      expect(await docs.stat(workKey(id, "000-a.pdf"))).toBeUndefined();
      expect(await docs.list("work")).toEqual([]);
    });

    it("refuses keys that are paths, not keys", async () => {
      for (const bad of ["/etc/passwd", "../x", "msg/../../x", "msg//x", "", "msg/a\\b", "work/x/\u0000.pdf", "./msg", "msg/"]) {
        expect([bad, isDocumentKey(bad)]).toEqual([bad, false]);
        await expect(docs.put(bad, Readable.from([Buffer.from("x")]))).rejects.toMatchObject({ kind: "invalid_key" });
        await expect(docs.open(bad)).rejects.toMatchObject({ kind: "invalid_key" });
      }
      expect(isDocumentKey(mailKey(newId()))).toBe(true);
      expect(isDocumentKey(`${workPrefix(newId())}/001-Rechnung März (2).pdf`)).toBe(true);
    });
  });
}
