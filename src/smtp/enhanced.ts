import type { SMTPServer } from "smtp-server";
import { BAD_SENDER, OWN_ENHANCED_CODE, replyLine } from "../replies.js";

/**
 * Precise enhanced status codes. smtp-server 3.21 derives the enhanced code
 * of a hook's refusal from the basic code (550 → 5.1.1), so a policy refusal
 * cannot say 5.7.1 and a bad sender cannot say 5.1.7. An SmtpReply built
 * with `enhanced` carries its code at the start of its text; this wraps each
 * connection's `send` so such a text goes out as it is, without a second,
 * derived code in front. smtp-server's own syntax refusal of a sender
 * address (501 5.1.7) becomes the same `553 5.1.7` our policy answers for
 * any sender that is not exactly one mailbox, so clients see one answer.
 * Every other reply keeps smtp-server's behaviour.
 */


type Send = (code: number, data?: unknown, context?: unknown) => void;

export function usePreciseEnhancedCodes(server: SMTPServer): void {
  const connections = server.connections as Set<{ send: Send }>;
  const add = connections.add.bind(connections);
  connections.add = (connection) => {
    const send = connection.send.bind(connection);
    connection.send = (code, data, context) => {
      // context false: smtp-server adds no enhanced code of its own.
      if (context === "SENDER_SYNTAX_ERROR") send(BAD_SENDER.code, replyLine(BAD_SENDER), false);
      else if (context === undefined && typeof data === "string" && OWN_ENHANCED_CODE.test(data)) send(code, data, false);
      else send(code, data, context);
    };
    return add(connection);
  };
}
