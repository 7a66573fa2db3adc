/**
 * The transmitted copy for the sender report, like a fax machine's
 * confirmation page (`fax.reportTransmittedCopy`): the fax as RingCentral
 * rendered and sent it (the outbound message's content), either whole (`all`)
 * or only its first page (`first-page`, cut out with pdf-lib; a TIFF is
 * attached whole). Best effort: any failure leaves the report without it.
 */
import type { Readable } from "node:stream";
import { PDFDocument } from "pdf-lib";
import type { MessageApi } from "../rc/api.js";

export type TransmittedCopyMode = "none" | "first-page" | "all";
export type TransmittedApi = Pick<MessageApi, "getMessage" | "downloadContent">;

/** Larger rendered faxes are not attached (mail servers refuse big mail). */
export const TRANSMITTED_COPY_MAX_BYTES = 10 * 1024 * 1024;

export interface TransmittedCopy {
  filename: string;
  content: Buffer;
  contentType: string;
}

/** The copy to attach, or undefined when the mode is none or the fax has no content; throws on RingCentral failures. */
export async function fetchTransmittedCopy(client: TransmittedApi, rcMessageId: string, mode: TransmittedCopyMode, extensionId?: string): Promise<TransmittedCopy | undefined> {
  if (mode === "none") return undefined;
  const msg = await client.getMessage(rcMessageId, extensionId);
  const att = msg.attachments?.find((a) => a.type === "RenderedDocument") ?? msg.attachments?.[0];
  if (att === undefined) return undefined;
  const res = await client.downloadContent(att.uri);
  const bytes = await readCapped(res.body, TRANSMITTED_COPY_MAX_BYTES);
  if (bytes === undefined) return undefined;
  const type = (res.contentType.split(";")[0] ?? "").trim().toLowerCase();
  if (type === "application/pdf") {
    if (mode === "all") return { filename: "transmitted-fax.pdf", content: bytes, contentType: type };
    const src = await PDFDocument.load(bytes, { updateMetadata: false });
    const out = await PDFDocument.create();
    const [page] = await out.copyPages(src, [0]);
    if (page === undefined) return undefined;
    out.addPage(page);
    return { filename: "transmitted-fax-page-1.pdf", content: Buffer.from(await out.save()), contentType: type };
  }
  if (type === "image/tiff") return { filename: "transmitted-fax.tif", content: bytes, contentType: type };
  return undefined;
}

async function readCapped(body: Readable, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += (chunk as Buffer).length;
    if (n > max) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
