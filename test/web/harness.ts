import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsImport from "ajv-formats";
import { startDaemon, type Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { Metrics } from "../../src/metrics.js";
import { hashPassword } from "../../src/smtp/password.js";
import { OPENAPI } from "../../src/web/openapi.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { tempDir } from "../helpers/tmp.js";
import { renderablePdf as renderPdf } from "../helpers/pdf.js";
import { capturingLogger } from "../helpers/log.js";
import { EmulatorControl } from "../helpers/emulator-control.js";
import { sandboxEnv } from "../helpers/config.js";

export const PDF = Buffer.from("%PDF-1.4\n1 0 obj<</Type /Page>>endobj\ntrailer<<>>\n%%EOF\n");

/** A well-formed one-page PDF that real renderers draw: for thumbnails. */
export const renderablePdf = (text = "Referral: J. Doe"): Buffer => renderPdf(text);

export const TOKENS = { ehr: "ehr-token-0123456789abcdef", billing: "billing-token-fedcba9876543210" } as const;
export const PASSWORDS = { admin: "admin-pass-1234", alice: "alice-pass-1234", bob: "bob-pass-1234" } as const;

let hashes: Promise<Record<string, string>> | undefined;
function allHashes(): Promise<Record<string, string>> {
  hashes ??= (async () => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...TOKENS, ...PASSWORDS })) out[k] = await hashPassword(v);
    return out;
  })();
  return hashes;
}

/** A daemon in process (sandbox mode, built-in emulator), with API tokens and console users, its log lines collected. */
export class WebHarness {
  readonly dir = tempDir("faxbridge-web-");
  readonly logs: string[] = [];
  sink!: SmtpSink;
  daemon!: Daemon;

  async start(env: Record<string, string> = {}): Promise<this> {
    const h = await allHashes();
    this.sink = await new SmtpSink().start();
    const config = loadConfig({
      env: sandboxEnv(this.dir.path, {
        FAXBRIDGE_MAIL_URL: this.sink.url,
        FAXBRIDGE_FAX_STATUS_POLL_SCHEDULE: "1s",
        FAXBRIDGE_INBOUND_NOTIFICATIONS: "none",
        FAXBRIDGE_INBOUND_SYNC_INTERVAL_SECONDS: "2",
        FAXBRIDGE_INBOUND_TO: "frontdesk@example.com",
        FAXBRIDGE_INBOUND_ROUTES: JSON.stringify([{ to: "+16505550199", mailTo: ["billing@example.com"] }]),
        FAXBRIDGE_API_TOKENS: JSON.stringify([
          { name: "ehr", tokenHash: h.ehr, senders: ["ehr@example.com", "frontdesk@example.com"] },
          { name: "billing", tokenHash: h.billing, senders: ["billing@example.com"] },
        ]),
        FAXBRIDGE_WEB_USERS: JSON.stringify([
          { username: "admin", passwordHash: h.admin, role: "admin" },
          { username: "alice", passwordHash: h.alice, role: "user", senders: ["alice@example.com", "frontdesk@example.com"] },
          { username: "bob", passwordHash: h.bob, role: "user", senders: ["bob@example.com"] },
        ]),
        FAXBRIDGE_LOG_LEVEL: "debug",
        ...env,
      }),
    });
    this.daemon = await startDaemon(config, { logger: capturingLogger("debug", { raw: this.logs }), metrics: new Metrics({ defaultMetrics: false }) });
    return this;
  }

  get base(): string {
    return `http://127.0.0.1:${this.daemon.http.port}`;
  }

  get emulator(): string {
    return this.daemon.emulatorUrl ?? "";
  }

  sentAtEmulator(): Promise<unknown[]> {
    return new EmulatorControl(this.emulator).sentFaxes();
  }

  async injectInbound(to = "+16505550100", from = "+12125550123", body: Buffer = PDF): Promise<void> {
    await new EmulatorControl(this.emulator).injectInbound({ body, from, to });
  }

  async stop(): Promise<void> {
    await this.daemon?.close();
    await this.sink?.close();
    this.dir.cleanup();
  }
}

export function faxForm(fields: Record<string, string | string[]>, files: { name: string; body: Buffer | Blob; type?: string }[] = [{ name: "letter.pdf", body: PDF, type: "application/pdf" }]): FormData {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) form.append(k, x);
  for (const f of files) form.append("file", f.body instanceof Blob ? f.body : new Blob([f.body], { type: f.type ?? "application/pdf" }), f.name);
  return form;
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Validates real responses against the OpenAPI document's response schemas. */
export class OpenApiCheck {
  readonly #ajv = new Ajv2020({ strict: false, allErrors: true });

  constructor() {
    (addFormatsImport as unknown as (ajv: Ajv2020) => Ajv2020)(this.#ajv);
    this.#ajv.addSchema({ $id: "faxbridge-openapi", components: OPENAPI.components });
  }

  /** Assert `body` (already parsed) is what the document promises for this path, method and status. */
  check(path: string, method: string, status: number, contentType: string, body: unknown): void {
    const op = (OPENAPI.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>>)[path]?.[method];
    if (op === undefined) throw new Error(`${method} ${path} is not in the OpenAPI document`);
    const resp = op.responses[String(status)];
    if (resp === undefined) throw new Error(`${method} ${path} does not document status ${status}`);
    const media = contentType.split(";")[0]?.trim() ?? "";
    const schema = resp.content?.[media]?.schema;
    if (schema === undefined) throw new Error(`${method} ${path} ${status} does not document ${media}`);
    if (schema.$ref === undefined) return;
    const validate = this.#ajv.getSchema(`faxbridge-openapi${schema.$ref}`);
    if (validate === undefined) throw new Error(`no schema ${schema.$ref}`);
    if (validate(body) !== true) throw new Error(`${method} ${path} ${status}: the response does not match the document: ${JSON.stringify(validate.errors)}\n${JSON.stringify(body)}`);
  }
}
