/**
 * A job's documents in the document store (src/store/ports.ts): stored by
 * key once extracted, checked before a send, and lent out as local files for
 * the code that needs a path (the multipart upload, report attachments),
 * always given back, whatever happens meanwhile.
 */
import { basename } from "node:path";
import type { FaxDocumentFile } from "../../fax/model.js";
import { workKey } from "../../store/ports.js";
import type { StoredDocument } from "../job-data.js";
import type { StepContext } from "./context.js";

/**
 * Make the documents just extracted into the job's workDir durable in the
 * document store: from here on the job names them by key, so any instance
 * can send, report and clean them up.
 */
export async function storeDocuments(ctx: StepContext, jobId: string, files: readonly FaxDocumentFile[]): Promise<StoredDocument[]> {
  await ctx.deps.spool.documents.storeWorkDir(jobId);
  return files.map((f) => ({
    key: workKey(jobId, basename(f.path)),
    filename: f.filename,
    ...(f.originalFilename !== undefined && { originalFilename: f.originalFilename }),
    contentType: f.contentType,
    size: f.size,
    sha256: f.sha256,
  }));
}

/** True when every document is in the store with the size it was extracted with. */
export async function documentsPresent(ctx: StepContext, documents: readonly StoredDocument[]): Promise<boolean> {
  try {
    for (const d of documents) if ((await ctx.deps.spool.documents.stat(d.key))?.size !== d.size) return false;
    return true;
  } catch {
    // Unreadable: the caller extracts them again from the raw message.
    return false;
  }
}

/** A document lent out as a local file. */
export type LocalDocument = StoredDocument & { readonly path: string };

/**
 * Run `fn` with local files holding the documents (the file backend lends
 * the documents themselves; a database backend streams temporary copies) and
 * give every one back afterwards: on success, on errors, and when the step
 * is abandoned (lease lost) by throwing out of `fn`.
 */
export async function withLocalDocuments<T>(
  ctx: StepContext,
  documents: readonly StoredDocument[],
  fn: (local: LocalDocument[]) => Promise<T>,
  /** Given: a document that cannot be lent is left out (and this is told why) instead of failing the whole call. */
  unavailable?: (doc: StoredDocument, err: unknown) => void,
): Promise<T> {
  const lent: { done(): Promise<void> }[] = [];
  try {
    const local: LocalDocument[] = [];
    for (const d of documents) {
      let file;
      try {
        file = await ctx.deps.spool.documents.localFile(d.key);
      } catch (err) {
        if (unavailable === undefined) throw err;
        unavailable(d, err);
        continue;
      }
      lent.push(file);
      local.push({ ...d, path: file.path });
    }
    return await fn(local);
  } finally {
    for (const file of lent) {
      await file.done().catch((err: unknown) => ctx.log.warn({ event: "documents.release_failed", err }, "could not remove a temporary copy of a document"));
    }
  }
}
