import type { FastifyInstance } from "fastify";
import type { WebContext } from "./context.js";

export function registerConsole(app: FastifyInstance, ctx: WebContext): void {
  void app;
  void ctx;
}
