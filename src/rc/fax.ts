/** RingCentral fax calls: send, resend/forward, cover-page dictionary. */
import fs from "node:fs";
import type { Rest } from "./endpoints.js";
import { jsonBody, type RequestBody } from "./http-util.js";
import { buildFaxBody, type FaxDocument, type FaxLayout, type FaxRecipient, type SendFaxRequest } from "./multipart.js";
import { paginate } from "./pagination.js";
import { coverPageListSchema, faxResponseSchema, type FaxResponse } from "./types.js";

export interface ResendFaxRequest {
  originalMessageId: string;
  to?: FaxRecipient[];
  sendTime?: string;
  /** The extension that sent the original (routing in an extension pool; not sent to RingCentral). */
  extensionId?: string | undefined;
}

export class RcFax {
  private readonly rest: Rest;
  private readonly layout: FaxLayout | undefined;

  constructor(rest: Rest, layout: FaxLayout | undefined) {
    this.rest = rest;
    this.layout = layout;
  }

  /** Send a new fax. Never retried here (except once after a 401, which RingCentral did not process). */
  async sendFax(req: SendFaxRequest, documents: FaxDocument[], opts: { signal?: AbortSignal } = {}): Promise<FaxResponse> {
    if (req.to.length === 0) throw new TypeError("sendFax: at least one recipient is required");
    if (documents.length === 0) throw new TypeError("sendFax: at least one document is required");
    // stat before asking for a rate-limit slot, so a missing file costs no request
    const docs = await Promise.all(documents.map(async (d) => (d.size !== undefined ? d : { ...d, size: (await fs.promises.stat(d.path)).size })));
    return this.postFax(async () => {
      const built = await buildFaxBody(req, docs, this.layout);
      return { body: built.body, contentType: built.contentType, contentLength: built.contentLength, destroy: built.destroy };
    }, opts.signal);
  }

  /** Resend/forward an existing fax by id (application/json to the fax endpoint). Never retried here. */
  async resendFax(req: ResendFaxRequest): Promise<FaxResponse> {
    const body: Record<string, unknown> = { originalMessageId: req.originalMessageId };
    if (req.to !== undefined) body["to"] = req.to;
    if (req.sendTime !== undefined) body["sendTime"] = req.sendTime;
    return this.postFax(() => jsonBody(body));
  }

  async listCoverPages(): Promise<{ id: string; name: string }[]> {
    const first = this.rest.urls.spec("listFaxCoverPages", { query: new URLSearchParams({ perPage: "100" }) }).url;
    const out: { id: string; name: string }[] = [];
    for await (const r of paginate(this.rest, "listFaxCoverPages", first, coverPageListSchema)) out.push({ id: r.id, name: r.name });
    return out;
  }

  /** POST to the fax endpoint (send and resend): Heavy group, never retried except once after a 401. */
  private postFax(body: () => Promise<RequestBody> | RequestBody, signal?: AbortSignal): Promise<FaxResponse> {
    return this.rest.json("createFaxMessage", faxResponseSchema, { body, signal });
  }
}
