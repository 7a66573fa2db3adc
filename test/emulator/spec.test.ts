import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsImport from "ajv-formats";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Emulator } from "../../src/emulator/index.js";
import { Client, filePart, inboundFax, jsonPart, MS_PATH, multipart, pdf, start, waitFor, webhookReceiver, type Hook } from "./helpers.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// RC_OPENAPI_SPEC points at the spec from elsewhere (e.g. a git worktree, whose ../shared is not the project's).
const SPEC = process.env["RC_OPENAPI_SPEC"] ?? path.resolve(repoRoot, "../shared/ringcentral/rc-public-openapi.yml");
const exists = existsSync(SPEC);

/**
 * Fields the emulator sends beyond the spec's schemas, on purpose:
 * real error bodies repeat errorCode/message/parameterName at the top level
 * (NOTES §g), permission errors repeat permissionName there too (as
 * RingCentral's InsufficientPermissions answers do), and notifications carry
 * ownerId (RingCentral's WebSocket and webhook samples) although
 * MessageEvent does not declare it.
 */
const DOCUMENTED_EXTRAS = new Set([
  "ApiErrorResponseModel.errorCode", "ApiErrorResponseModel.message", "ApiErrorResponseModel.parameterName",
  "ApiErrorResponseModel.permissionName",
  "ParameterizedErrorResponseModel.errorCode", "ParameterizedErrorResponseModel.message",
  "ParameterizedErrorResponseModel.parameterName", "MessageEvent.ownerId",
]);

type Json = Record<string, unknown>;

/** OpenAPI 3.0 → JSON Schema for ajv: `nullable` becomes a type union; `#/components/schemas/X` refs stay resolvable. */
function convert(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(convert);
  if (typeof node !== "object" || node === null) return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === "example" || k === "examples" || k === "discriminator" || k === "xml" || k.startsWith("x-")) continue;
    out[k] = convert(v);
  }
  if (out["nullable"] === true) {
    delete out["nullable"];
    if (typeof out["type"] === "string") out["type"] = [out["type"], "null"];
  }
  // readOnly/writeOnly are annotations only.
  return out;
}

const addFormats = addFormatsImport as unknown as (ajv: Ajv) => Ajv;

describe.skipIf(!exists)("emulator responses conform to the RingCentral OpenAPI spec", () => {
  let ajv: Ajv;
  let schemas: Json;
  let responses: Json;
  let emu: Emulator;
  let client: Client;
  let hook: Hook;
  const cache = new Map<string, ValidateFunction>();

  beforeAll(async () => {
    const doc = parse(readFileSync(SPEC, "utf8")) as { components: { schemas: Json; responses: Json } };
    schemas = doc.components.schemas;
    responses = doc.components.responses;
    ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
    addFormats(ajv);
    ajv.addSchema({ $id: "rc", components: { schemas: convert(schemas) } });
    emu = await start({ faxTimings: { queuedMs: 20, pageMs: 20 } });
    client = await Client.create(emu);
    hook = await webhookReceiver();
  }, 60_000);
  afterAll(async () => {
    await emu?.close();
    await hook?.close();
  });

  function validator(name: string): ValidateFunction {
    let v = cache.get(name);
    if (!v) {
      expect(schemas[name], `schema ${name} exists in the spec`).toBeDefined();
      v = ajv.compile({ $ref: `rc#/components/schemas/${name}` });
      cache.set(name, v);
    }
    return v;
  }

  function conforms(name: string, body: unknown): void {
    const v = validator(name);
    const ok = v(body);
    expect(ok ? [] : v.errors, `${name}: ${JSON.stringify(body).slice(0, 300)}`).toEqual([]);
    // The spec's objects are open (no additionalProperties: false); also insist on no field the spec does not name.
    const extra = unknownProperties(schemas, { $ref: `#/components/schemas/${name}` }, body, name).filter((p) => !DOCUMENTED_EXTRAS.has(p));
    expect(extra).toEqual([]);
  }

  it("the validator really rejects wrong bodies", () => {
    expect(validator("FaxResponse")({ id: "not-a-number", messageStatus: "Done" })).toBe(false);
    expect(unknownProperties(schemas, { $ref: "#/components/schemas/FaxResponse" }, { attachments: [{ fileName: "x" }] }, "FaxResponse")).toEqual([
      "FaxResponse.attachments[0].fileName",
    ]);
  });

  it("TokenInfo and WsTokenResponse", async () => {
    const res = await fetch(`${emu.url}/restapi/oauth/token`, {
      method: "POST",
      headers: { Authorization: `Basic ${Buffer.from("a:b").toString("base64")}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x",
    });
    conforms("TokenInfo", await res.json());
    conforms("WsTokenResponse", (await client.json("/restapi/oauth/wstoken", { method: "POST" })).body);
  });

  it("FaxResponse, GetMessageInfoResponse, GetSingleMessageInfoResponse, GetMessageList, GetMessageSyncResponse", async () => {
    const m = multipart([jsonPart({ to: [{ phoneNumber: "+15550000001", name: "X" }], coverIndex: 2, coverPageText: "t" }), filePart("attachment", "a.pdf", "application/pdf", pdf(1))]);
    const sent = await client.sendMultipart(m.body, m.boundary);
    conforms("FaxResponse", sent.body);
    const id = String(sent.body["id"]);
    await waitFor(async () => ((await client.json(`${MS_PATH}/${id}`)).body["messageStatus"] === "SendingFailed" ? true : undefined));
    await inboundFax(emu, pdf(2));
    const one = await client.json(`${MS_PATH}/${id}`);
    conforms("GetSingleMessageInfoResponse", one.body);
    const list = await client.json(`${MS_PATH}?perPage=1`);
    conforms("GetMessageList", list.body);
    const sync = await client.json("/restapi/v1.0/account/~/extension/~/message-sync?syncType=FSync");
    conforms("GetMessageSyncResponse", sync.body);
    const token = (sync.body["syncInfo"] as Json)["syncToken"] as string;
    await client.fetch(`${MS_PATH}/${id}`, { method: "DELETE" });
    const isync = await client.json(`/restapi/v1.0/account/~/extension/~/message-sync?syncType=ISync&syncToken=${encodeURIComponent(token)}`);
    conforms("GetMessageSyncResponse", isync.body);
    conforms("ListFaxCoverPagesResponse", (await client.json("/restapi/v1.0/dictionary/fax-cover-page")).body);
  });

  it("SubscriptionInfo, SubscriptionListResource, MessageEvent", async () => {
    const sub = await client.json("/restapi/v1.0/subscription", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ eventFilters: ["/restapi/v1.0/account/~/extension/~/message-store", "/bogus"], deliveryMode: { transportType: "WebHook", address: hook.url }, expiresIn: 600 }),
    });
    conforms("SubscriptionInfo", sub.body);
    expect(sub.body["disabledFilters"]).toEqual([expect.objectContaining({ filter: "/bogus" })]);
    conforms("SubscriptionListResource", (await client.json("/restapi/v1.0/subscription")).body);
    await inboundFax(emu, pdf(1));
    const note = await waitFor(() => hook.requests.find((r) => r.body.includes("subscriptionId")));
    conforms("MessageEvent", JSON.parse(note.body));
  });

  it("error bodies: ApiErrorResponseModel, ParameterizedErrorResponseModel and the OAuth 400", async () => {
    const notFound = await client.json(`${MS_PATH}/12345`);
    conforms("ApiErrorResponseModel", notFound.body);
    const invalid = await client.json(`${MS_PATH}?direction=Sideways`);
    conforms("ParameterizedErrorResponseModel", invalid.body);
    const m = multipart([jsonPart({ to: [{ phoneNumber: "+14155550100" }] }), filePart("attachment", "a.zip", "application/zip", "PK")]);
    conforms("ApiErrorResponseModel", (await client.sendMultipart(m.body, m.boundary)).body);
    // CMN-103 (unparsable JSON), CMN-120 (unknown URI), SUB-505 after 30 subscriptions, InsufficientPermissions.
    conforms("ApiErrorResponseModel", (await client.json("/restapi/v1.0/subscription", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{" })).body);
    conforms("ApiErrorResponseModel", (await client.json("/restapi/v1.0/nothing-here")).body);
    const createSub = () =>
      client.json("/restapi/v1.0/subscription", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ eventFilters: ["/restapi/v1.0/account/~/extension/~/message-store"], deliveryMode: { transportType: "WebHook", address: hook.url } }),
      });
    let over = await createSub();
    while (over.status === 200) over = await createSub();
    expect(over.body["errorCode"]).toBe("SUB-505");
    conforms("ApiErrorResponseModel", over.body);
    const limited = await start({ permissions: ["Faxes"] });
    try {
      const denied = await (await Client.create(limited)).json(MS_PATH);
      expect(denied.status).toBe(403);
      conforms("ApiErrorResponseModel", denied.body);
      expect(denied.body).toHaveProperty("permissionName", "ReadMessages");
    } finally {
      await limited.close();
    }
    const oauth = await fetch(`${emu.url}/restapi/oauth/token`, {
      method: "POST",
      headers: { Authorization: `Basic ${Buffer.from("a:b").toString("base64")}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: "grant_type=password&username=u&password=p",
    });
    expect(oauth.status).toBe(400);
    const schema = ((responses["OauthInvalidRequest"] as Json)["content"] as Record<string, { schema: unknown }>)["application/json"]?.schema;
    const v = ajv.compile({ ...(convert(rewriteRefs(schema)) as Json) });
    const body = await oauth.json();
    expect(v(body) ? [] : v.errors).toEqual([]);
  });
});

function rewriteRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (typeof node !== "object" || node === null) return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    out[k] = k === "$ref" && typeof v === "string" ? v.replace("#/components/schemas/", "rc#/components/schemas/") : rewriteRefs(v);
  }
  return out;
}

/** Property names in `body` that the schema (refs, allOf and anyOf merged) does not declare. */
function unknownProperties(schemas: Json, schema: unknown, body: unknown, where: string): string[] {
  const props = new Map<string, unknown>();
  let items: unknown;
  let open = false;
  const collect = (node: unknown): void => {
    if (typeof node !== "object" || node === null) return;
    const n = node as Json;
    if (typeof n["$ref"] === "string") {
      collect(schemas[(n["$ref"]).replace("#/components/schemas/", "")]);
      return;
    }
    for (const key of ["allOf", "anyOf", "oneOf"]) if (Array.isArray(n[key])) for (const sub of n[key] as unknown[]) collect(sub);
    if (n["properties"]) for (const [k, v] of Object.entries(n["properties"] as Json)) props.set(k, v);
    if (n["additionalProperties"] !== undefined && n["additionalProperties"] !== false) open = true;
    if (n["items"]) items = n["items"];
  };
  collect(schema);
  const out: string[] = [];
  if (Array.isArray(body)) {
    if (items) body.forEach((b, i) => out.push(...unknownProperties(schemas, items, b, `${where}[${i}]`)));
    return out;
  }
  if (typeof body !== "object" || body === null || props.size === 0) return out;
  for (const [k, v] of Object.entries(body as Json)) {
    const sub = props.get(k);
    if (sub === undefined) {
      if (!open) out.push(`${where}.${k}`);
    } else {
      out.push(...unknownProperties(schemas, sub, v, `${where}.${k}`));
    }
  }
  return out;
}
