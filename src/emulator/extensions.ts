import { createHash } from "node:crypto";
import { extensionInfo, MAX_EXTENSIONS, type ExtensionInfo } from "./constants.js";
import type { FaxService } from "./fax.js";
import type { MessageStore } from "./store.js";
import type { SyncService } from "./sync.js";

/** One extension of the emulated account: who it is and its own message store, fax sender and message-sync. */
export interface Extension {
  readonly info: ExtensionInfo;
  readonly store: MessageStore;
  readonly fax: FaxService;
  readonly sync: SyncService;
}

export interface ExtensionRegistryOptions {
  /** Strict credentials: only registered JWTs log in (others answer OAU-140); otherwise each new JWT gets a new extension. */
  strict: boolean;
  /** Builds an extension's store, fax service and sync (the emulator wires them to subscriptions). */
  create: (info: ExtensionInfo) => Extension;
}

/** A JWT is kept only as a digest: the map never holds the credential itself. */
function digest(jwt: string): string {
  return createHash("sha256").update(jwt).digest("hex");
}

/**
 * The account's extensions. Each distinct JWT logs in as its own extension,
 * as on RingCentral a JWT credential belongs to one user: the first JWT as
 * extension 200000001 (the one that exists from the start, so faxes can be
 * injected before anyone logs in), the next new one as 200000002, and so on.
 */
export class ExtensionRegistry {
  private readonly list: Extension[] = [];
  private readonly byJwt = new Map<string, Extension>();
  private readonly opts: ExtensionRegistryOptions;
  /** Whether the first extension has a JWT yet. */
  private firstBound = false;

  constructor(opts: ExtensionRegistryOptions) {
    this.opts = opts;
    this.list.push(opts.create(extensionInfo(1)));
  }

  /** Extension 200000001, where control calls without an extension go. */
  get first(): Extension {
    const e = this.list[0];
    if (e === undefined) throw new Error("no extension");
    return e;
  }

  all(): readonly Extension[] {
    return this.list;
  }

  byId(extensionId: string): Extension | undefined {
    return this.list.find((e) => e.info.extensionId === extensionId);
  }

  byFaxNumber(phoneNumber: string): Extension | undefined {
    return this.list.find((e) => e.info.faxNumber === phoneNumber);
  }

  /** Whether some JWT logs in as this extension. */
  hasLogin(ext: Extension): boolean {
    return ext !== this.first || this.firstBound;
  }

  /** The id of the extension a JWT logs in as (a new JWT: the one it would get), without binding it; undefined if refused. */
  peek(jwt: string): string | undefined {
    const known = this.byJwt.get(digest(jwt));
    if (known !== undefined) return known.info.extensionId;
    if (this.opts.strict) return undefined;
    if (!this.firstBound) return this.first.info.extensionId;
    return this.list.length < MAX_EXTENSIONS ? extensionInfo(this.list.length + 1).extensionId : undefined;
  }

  /**
   * The extension a JWT assertion logs in as: a known JWT its own; a new one
   * (not strict) the next extension; undefined when strict and unknown.
   */
  forJwt(jwt: string): Extension | undefined {
    const known = this.byJwt.get(digest(jwt));
    if (known !== undefined || this.opts.strict) return known;
    return this.register(jwt);
  }

  /** Binds a JWT to an extension (its own if known, else the next one); undefined beyond MAX_EXTENSIONS. */
  register(jwt: string): Extension | undefined {
    const key = digest(jwt);
    const known = this.byJwt.get(key);
    if (known !== undefined) return known;
    let ext: Extension;
    if (!this.firstBound) {
      this.firstBound = true;
      ext = this.first;
    } else {
      if (this.list.length >= MAX_EXTENSIONS) return undefined;
      ext = this.opts.create(extensionInfo(this.list.length + 1));
      this.list.push(ext);
    }
    this.byJwt.set(key, ext);
    return ext;
  }
}
