import type { Rest } from "./endpoints.js";
import { wsTokenSchema, type WsToken } from "./types.js";

/** The WebSocket token (POST /restapi/oauth/wstoken) for the WebSocket notification transport. */
export class RcWsToken {
  private readonly rest: Rest;

  constructor(rest: Rest) {
    this.rest = rest;
  }

  async getWsToken(): Promise<WsToken> {
    return this.rest.json("authWsToken", wsTokenSchema);
  }
}
