import type { SMTPServer, SMTPServerSession } from "smtp-server";
import { REPLIES, replyLine } from "../replies.js";

/**
 * What smtp-server 3.21 does not let its hooks do, done per connection
 * (exact enhanced codes are src/smtp/enhanced.ts):
 *
 * - Sessions that make no progress. Every command line counts, except a
 *   recipient the server accepted (those are bounded by smtp.maxRecipients);
 *   an accepted message or a successful AUTH resets the count. Over the limit
 *   the client gets `421 4.7.0` and is disconnected, so NOOP/RSET/VRFY loops
 *   cannot hold connection slots.
 * - AUTH where it is not offered. A session that may not log in in clear has
 *   AUTH taken out of its EHLO (session.disabledCommands); a client that sends
 *   AUTH anyway gets the explicit 538 of `authRefusal` rather than smtp-server's
 *   "500 command not recognized".
 *
 * It hooks in through the `add` of the server's public `connections` set and each
 * connection's `send`/`_onCommand` (pinned to smtp-server 3.21 by the tests
 * in test/smtp/edge.test.ts, which check the exact reply lines).
 */

export interface SessionGuardOptions {
  /** Commands allowed without progress; 0 = no limit. */
  readonly maxCommandsWithoutProgress: number;
  /** For an AUTH command: the 538 reply text when this session may not log in, else undefined. */
  readonly authRefusal: (session: SMTPServerSession) => string | undefined;
  /** Called when a session is closed for making no progress (logging, metrics). */
  readonly onNoProgress?: (session: SMTPServerSession, commands: number) => void;
}

export interface SessionGuard {
  /**
   * The session made progress: an accepted recipient is not counted; an
   * accepted message or a login starts the count over.
   */
  progress(session: SMTPServerSession, kind: "recipient" | "message" | "login"): void;
}

/** The parts of smtp-server's SMTPConnection this module uses. */
interface Connection {
  session: SMTPServerSession;
  send(code: number, data?: string | string[] | null, context?: string | false): void;
  _onCommand(command: Buffer, callback?: () => void): void;
}

const AUTH_COMMAND = /^AUTH(?:\s|$)/i;

export function guardSessions(server: SMTPServer, opts: SessionGuardOptions): SessionGuard {
  const counts = new WeakMap<object, { n: number }>();

  function guard(c: Connection): void {
    const state = { n: 0 };
    counts.set(c.session, state);

    const onCommand = c._onCommand.bind(c);
    c._onCommand = (command, callback) => {
      state.n++;
      if (opts.maxCommandsWithoutProgress > 0 && state.n > opts.maxCommandsWithoutProgress) {
        opts.onNoProgress?.(c.session, state.n - 1);
        // As smtp-server does for its own 421s: the reply closes the connection, no further command is read.
        c.send(421, replyLine(REPLIES.noProgress()), false);
        return;
      }
      if (AUTH_COMMAND.test(command.toString("latin1"))) {
        const refusal = opts.authRefusal(c.session);
        if (refusal !== undefined) {
          c.send(538, `5.7.0 ${refusal}`, false);
          setImmediate(() => callback?.());
          return;
        }
      }
      onCommand(command, callback);
    };
  }

  // Chained onto the set's own add (not a replacement set), so other per-connection wrappers compose with this one.
  const connections = server.connections as Set<unknown>;
  const add = connections.add.bind(connections);
  connections.add = (connection: unknown) => {
    guard(connection as Connection);
    return add(connection);
  };

  return {
    progress(session, kind) {
      const state = counts.get(session);
      if (state === undefined) return;
      state.n = kind === "recipient" ? Math.max(0, state.n - 1) : 0;
    },
  };
}
