import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { Logger } from "../log.js";
import { DocumentWriter } from "./files.js";
import { countTiffPages } from "./render.js";
import { newNumericId, type MessageStore, type StoredMessage } from "./store.js";

/** The document types RingCentral stores received faxes in (the extension's fax file format setting). */
export const INBOUND_TYPES: Readonly<Record<string, string>> = { "application/pdf": "pdf", "image/tiff": "tif" };

export interface ReceiveDeps {
  store: MessageStore;
  filesDir: string;
  log: Logger;
}

/**
 * An inbound fax as the control API creates it: the body (PDF or TIFF)
 * streamed to disk, one RenderedDocument of that type, pages counted from
 * the document (PDF page objects, TIFF IFDs).
 */
export async function receiveFax(deps: ReceiveDeps, body: Readable, from: string, to: string, contentType: string): Promise<StoredMessage> {
  const ext = INBOUND_TYPES[contentType];
  if (ext === undefined) throw new TypeError(`unsupported inbound fax type ${contentType}`);
  const pdf = contentType === "application/pdf";
  const writer = new DocumentWriter(deps.filesDir, pdf);
  try {
    for await (const chunk of body) await writer.write(chunk as Buffer);
  } catch (err) {
    writer.abort();
    await rm(writer.path, { force: true });
    throw err;
  }
  const done = await writer.finish();
  const pages = Math.max(1, pdf ? done.pages : ((await countTiffPages(writer.path)) ?? 1));
  const now = Date.now();
  const id = newNumericId();
  const msg: StoredMessage = {
    id,
    type: "Fax",
    direction: "Inbound",
    from: { phoneNumber: from },
    to: [{ recipientId: "1", phoneNumber: to, messageStatus: "Received", name: deps.store.owner.name }],
    creationTime: now,
    lastModifiedTime: now,
    readStatus: "Unread",
    availability: "Alive",
    priority: "Normal",
    faxResolution: "High",
    faxPageCount: pages,
    documentPages: pages,
    subject: from,
    fixedStatus: "Received",
    attachments: [{
      id,
      type: "RenderedDocument",
      contentType,
      fileName: `fax-${id}.${ext}`,
      size: done.size,
      sha256: done.sha256,
      path: writer.path,
    }],
  };
  deps.store.add(msg);
  deps.log.info({ event: "emulator.fax.received", messageId: id, extensionId: deps.store.owner.extensionId, contentType, pages }, "inbound fax created");
  return msg;
}
