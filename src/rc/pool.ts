/**
 * The extension pool: several RingCentral sessions (one per JWT of RC_JWT),
 * each with its own token, its own rate limiters and its own 429 holds.
 *
 * - A send goes to the member with a free Heavy slot (most free first, round
 *   robin among equals); a held member does not hold the others.
 * - Everything about an existing message goes to the member that owns it: the
 *   extension id a send reported (FaxResponse.extensionId, which the pool sets
 *   to the sending member) routes to that member's own session ("~"). "~" is
 *   the first member; a message it does not have (404) is looked for in the others.
 * - With one JWT the pool passes every call through unchanged.
 */
import type { Logger } from "../log.js";
import type { PoolApi, RingCentralApi } from "./api.js";
import { RcApiError } from "./errors.js";
import type { ResendFaxRequest } from "./fax.js";
import { RATE_GROUPS, type RateGroup } from "./groups.js";
import type { GroupState } from "./limiter.js";
import type { DownloadedContent, ListMessagesQuery, SyncQuery } from "./messages.js";
import type { FaxDocument, SendFaxRequest } from "./multipart.js";
import type { CreateSubscriptionRequest } from "./subscriptions.js";
import type { FaxResponse, MessageInfo, MessageSyncResult, SubscriptionInfo, WsToken } from "./types.js";

/** One session of the pool (RingCentralClient). */
export type RcMember = RingCentralApi & {
  close(): Promise<void>;
  releaseHeldWaits(): void;
};

export interface RcPoolOptions {
  logger: Logger;
  now?: () => number;
  /** How long a member whose credentials were refused gets no sends while others can take them (default 5 min). */
  sickMs?: number;
}

interface Route {
  member: RcMember;
  index: number;
  /** The extension to name in the URL: "~" for the member's own. */
  ext: string;
  /** "~" asked for: look in the other members when the first has no such message. */
  search: boolean;
}

const MEDIA_EXTENSION = /\/extension\/(\d+)\//;

/** The member does not have the message (404), or may not read another extension's (403 CMN-408). */
function isNotFound(err: unknown): boolean {
  return err instanceof RcApiError && (err.status === 404 || (err.status === 403 && err.errorCode === "CMN-408"));
}

/** RingCentral answered that it did not take the fax: over the rate limit, or this member may not send. */
function notTaken(err: unknown): boolean {
  return err instanceof RcApiError && (err.status === 429 || isAuthRefused(err));
}

/** RingCentral refused this member's credentials (login refused) or its right to send (401/403). */
function isAuthRefused(err: unknown): boolean {
  return err instanceof RcApiError && (err.status === 401 || err.status === 403 || (err.operation === "getToken" && err.status === 400));
}

export class RcPool implements RingCentralApi, PoolApi {
  readonly members: readonly RcMember[];
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly sickMs: number;
  /** Sends handed to each member and not settled yet. */
  private readonly pending: number[];
  /** Per member: no sends before this (epoch ms) while another member can take them. */
  private readonly sickUntil: number[];
  private next = 0;
  private identifying: Promise<void> | undefined;

  constructor(members: readonly RcMember[], opts: RcPoolOptions) {
    if (members.length === 0) throw new TypeError("RcPool: at least one member is required");
    this.members = members;
    this.log = opts.logger.child({ module: "rc-pool" });
    this.now = opts.now ?? Date.now;
    this.sickMs = opts.sickMs ?? 5 * 60_000;
    this.pending = members.map(() => 0);
    this.sickUntil = members.map(() => 0);
  }

  get size(): number {
    return this.members.length;
  }

  private get primary(): RcMember {
    return this.members[0] as RcMember;
  }

  async otherMemberIds(): Promise<string[]> {
    if (this.members.length === 1) return [];
    await this.identify();
    const first = this.primary.ownerId;
    const ids = this.members.slice(1).map((m) => m.ownerId);
    return [...new Set(ids.filter((id): id is string => id !== undefined && id !== first))];
  }

  memberSession(extensionId: string): RcMember | undefined {
    return this.members.find((m) => m.ownerId === extensionId);
  }

  /** The extension id of each member (undefined until it logged in). */
  memberIds(): (string | undefined)[] {
    return this.members.map((m) => m.ownerId);
  }

  // ------------------------------------------------------------------ sending

  /**
   * The member a send goes to now: a healthy member with a free Heavy slot
   * (the most free, less the sends already handed to it; round robin among
   * equals), else a healthy one that is not held, else the one whose hold ends first.
   */
  pickForSend(exclude: ReadonlySet<number> = new Set()): number {
    const n = this.members.length;
    if (n === 1) return 0;
    const now = this.now();
    let best = 0;
    let bestKey: [number, number] = [Infinity, Infinity];
    for (let k = 0; k < n; k++) {
      const i = (this.next + k) % n;
      if (exclude.has(i)) continue;
      const st = (this.members[i] as RcMember).rateLimitState().Heavy;
      const pending = this.pending[i] ?? 0;
      const free = st.remaining - Math.max(pending, st.waiting);
      const sick = (this.sickUntil[i] ?? 0) > now;
      const held = st.heldUntil > now;
      // lower is better: [tier, value]
      const key: [number, number] = sick ? [3, pending] : held ? [2, st.heldUntil] : free > 0 ? [0, -free] : [1, Math.max(pending, st.waiting)];
      if (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) {
        best = i;
        bestKey = key;
      }
    }
    this.next = (best + 1) % n;
    return best;
  }

  /**
   * Send through the member with a free Heavy slot. An answer that says
   * RingCentral did not take the fax (429, refused credentials) moves the send
   * to another member that is free now, at most once per member: a held
   * member does not stall the job.
   */
  async sendFax(req: SendFaxRequest, documents: FaxDocument[], opts: { signal?: AbortSignal } = {}): Promise<FaxResponse> {
    if (this.members.length === 1) return this.primary.sendFax(req, documents, opts);
    const tried = new Set<number>();
    for (;;) {
      const i = this.pickForSend(tried);
      tried.add(i);
      try {
        return await this.tagged(i, () => (this.members[i] as RcMember).sendFax(req, documents, opts));
      } catch (err) {
        const next = notTaken(err) && !opts.signal?.aborted ? this.freeMember(tried) : undefined;
        if (next === undefined) throw err;
        this.log.info(
          { event: "rc.pool.send_moved", from: i + 1, to: next + 1, status: err instanceof RcApiError ? err.status : undefined },
          `pool extension ${i + 1} could not take the fax now; sending it through extension ${next + 1}`,
        );
      }
    }
  }

  /** A member not yet tried that is healthy, not held and has a free Heavy slot. */
  private freeMember(tried: ReadonlySet<number>): number | undefined {
    const now = this.now();
    for (const [i, m] of this.members.entries()) {
      if (tried.has(i) || (this.sickUntil[i] ?? 0) > now) continue;
      const st = m.rateLimitState().Heavy;
      if (st.heldUntil <= now && st.remaining - Math.max(this.pending[i] ?? 0, st.waiting) > 0) return i;
    }
    return undefined;
  }

  /** Resend through the member that owns the original: req.extensionId's, else the one whose message store has it. */
  async resendFax(req: ResendFaxRequest): Promise<FaxResponse> {
    if (this.members.length === 1) return this.primary.resendFax(req);
    let index = (await this.route(req.extensionId)).index;
    if (req.extensionId === undefined) index = await this.ownerOf(req.originalMessageId);
    return this.tagged(index, () => (this.members[index] as RcMember).resendFax(req));
  }

  /** The member whose message store has the message (the first when none has: its error then says why). */
  private async ownerOf(messageId: string): Promise<number> {
    for (const [i, m] of this.members.entries()) {
      try {
        await m.getMessage(messageId);
        return i;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return 0;
  }

  private async tagged(i: number, send: () => Promise<FaxResponse>): Promise<FaxResponse> {
    const member = this.members[i] as RcMember;
    this.pending[i] = (this.pending[i] ?? 0) + 1;
    try {
      const res = await send();
      this.sickUntil[i] = 0;
      const ext = member.ownerId ?? res.extensionId;
      return ext !== undefined ? { ...res, extensionId: ext } : res;
    } catch (err) {
      if (isAuthRefused(err)) {
        this.sickUntil[i] = this.now() + this.sickMs;
        this.log.warn({ event: "rc.pool.member_refused", member: i + 1, extension: member.ownerId }, `pool extension ${i + 1}: RingCentral refused its credentials; sends go to the others for now`);
      }
      throw err;
    } finally {
      this.pending[i] = (this.pending[i] ?? 1) - 1;
    }
  }

  listCoverPages(): Promise<{ id: string; name: string }[]> {
    return this.primary.listCoverPages();
  }

  // ------------------------------------------------------------------ routing

  /** Which member handles a call about `extensionId` (a member's id, "~", or another extension). */
  async route(extensionId: string | undefined): Promise<Route> {
    const ext = extensionId ?? "~";
    if (ext === "~") return { member: this.primary, index: 0, ext: "~", search: this.members.length > 1 };
    let i = this.members.findIndex((m) => m.ownerId === ext);
    if (i < 0 && this.members.some((m) => m.ownerId === undefined)) {
      await this.identify();
      i = this.members.findIndex((m) => m.ownerId === ext);
    }
    if (i >= 0) return { member: this.members[i] as RcMember, index: i, ext: "~", search: false };
    return { member: this.primary, index: 0, ext, search: false };
  }

  /** Log every member in that is not yet (to learn its extension id); failures are left for its own calls to report. */
  private identify(): Promise<void> {
    this.identifying ??= Promise.all(
      this.members.map(async (m) => {
        if (m.ownerId !== undefined) return;
        try {
          await m.ensureAuthenticated();
        } catch {
          // the member's own calls report it
        }
      }),
    )
      .then(() => undefined)
      .finally(() => {
        this.identifying = undefined;
      });
    return this.identifying;
  }

  /** Run `fn` on the routed member; for "~", on a 404 try the other members in turn. */
  private async routed<T>(extensionId: string | undefined, fn: (member: RcMember, ext: string) => Promise<T>): Promise<T> {
    const r = await this.route(extensionId);
    try {
      return await fn(r.member, r.ext);
    } catch (err) {
      if (!r.search || !isNotFound(err)) throw err;
      for (const m of this.members.slice(1)) {
        try {
          return await fn(m, "~");
        } catch (again) {
          if (!isNotFound(again)) throw again;
        }
      }
      throw err;
    }
  }

  // ------------------------------------------------------------------ messages

  getMessage(messageId: string, extensionId?: string): Promise<MessageInfo> {
    return this.routed(extensionId, (m, ext) => m.getMessage(messageId, ext));
  }

  /** For "~" with several members: the messages of every member, each tagged with its extension id. */
  async *listMessages(query: ListMessagesQuery, extensionId?: string): AsyncIterable<MessageInfo> {
    const r = await this.route(extensionId);
    if (!r.search) {
      yield* r.member.listMessages(query, r.ext);
      return;
    }
    for (const m of this.members) {
      for await (const msg of m.listMessages(query, "~")) {
        const owner = m.ownerId;
        yield owner !== undefined && msg.extensionId === undefined ? { ...msg, extensionId: owner } : msg;
      }
    }
  }

  async syncMessages(q: SyncQuery, extensionId?: string): Promise<MessageSyncResult> {
    const r = await this.route(extensionId);
    return r.member.syncMessages(q, r.ext);
  }

  /** Media URLs name the extension that owns the message: its member fetches it. */
  async downloadContent(uri: string, opts: { signal?: AbortSignal } = {}): Promise<DownloadedContent> {
    if (this.members.length === 1) return this.primary.downloadContent(uri, opts);
    // a URI naming no member's extension: the first member, then the others when it may not read it
    const ext = MEDIA_EXTENSION.exec(uri)?.[1];
    const r = await this.route(ext);
    if (r.index !== 0 || ext !== undefined && this.members.some((m) => m.ownerId === ext)) return r.member.downloadContent(uri, opts);
    return this.routed(undefined, (m) => m.downloadContent(uri, opts));
  }

  deleteMessage(messageId: string, opts: { purge?: boolean; extensionId?: string } = {}): Promise<void> {
    return this.routed(opts.extensionId, (m, ext) => m.deleteMessage(messageId, { ...opts, extensionId: ext }));
  }

  setReadStatus(messageId: string, readStatus: "Read" | "Unread", extensionId?: string): Promise<void> {
    return this.routed(extensionId, (m, ext) => m.setReadStatus(messageId, readStatus, ext));
  }

  // ------------------------------------------------------------------ subscriptions, WebSocket, session (first member)

  createSubscription(req: CreateSubscriptionRequest): Promise<SubscriptionInfo> {
    return this.primary.createSubscription(req);
  }

  getSubscription(id: string): Promise<SubscriptionInfo> {
    return this.primary.getSubscription(id);
  }

  renewSubscription(id: string): Promise<SubscriptionInfo> {
    return this.primary.renewSubscription(id);
  }

  deleteSubscription(id: string): Promise<void> {
    return this.primary.deleteSubscription(id);
  }

  getWsToken(): Promise<WsToken> {
    return this.primary.getWsToken();
  }

  login(): Promise<void> {
    return this.primary.login();
  }

  /** Every member holds a valid token (readiness: the first failure rejects). */
  async ensureAuthenticated(): Promise<void> {
    await Promise.all(this.members.map((m) => m.ensureAuthenticated()));
  }

  get ownerId(): string | undefined {
    return this.primary.ownerId;
  }

  get scopes(): readonly string[] | undefined {
    return this.primary.scopes;
  }

  // ------------------------------------------------------------------ pacing, lifecycle

  /**
   * The pool's pacing as one: a group's free slots are those of the members
   * not held; the group is held only while every member is (until the first opens).
   */
  rateLimitState(): Record<RateGroup, GroupState> {
    if (this.members.length === 1) return this.primary.rateLimitState();
    const now = this.now();
    const states = this.members.map((m) => m.rateLimitState());
    const out = {} as Record<RateGroup, GroupState>;
    for (const g of RATE_GROUPS) {
      const all = states.map((s) => s[g]);
      const open = all.filter((s) => s.heldUntil <= now);
      out[g] = {
        limit: all.reduce((a, s) => a + s.limit, 0),
        remaining: open.reduce((a, s) => a + s.remaining, 0),
        windowSeconds: Math.max(...all.map((s) => s.windowSeconds)),
        heldUntil: open.length > 0 ? 0 : Math.min(...all.map((s) => s.heldUntil)),
        waiting: all.reduce((a, s) => a + s.waiting, 0),
      };
    }
    return out;
  }

  /** Each member's own pacing, with its extension id (metrics label). */
  memberStates(): { member: number; extension: string | undefined; state: Record<RateGroup, GroupState> }[] {
    return this.members.map((m, i) => ({ member: i + 1, extension: m.ownerId, state: m.rateLimitState() }));
  }

  releaseHeldWaits(): void {
    for (const m of this.members) m.releaseHeldWaits();
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.close()));
  }
}
