/**
 * The REST API's OpenAPI 3.1 document, as data. Served at
 * /api/v1/openapi.json; test/web/api.test.ts validates real responses against
 * these schemas, so the document cannot drift from what the server says.
 */

const problem = {
  type: "object",
  required: ["type", "title", "status", "detail"],
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string", description: "What went wrong, in the same words an SMTP client would be given." },
    smtpCode: { type: "integer", description: "The SMTP reply code the same refusal gets over SMTP." },
  },
} as const;

const fax = {
  type: "object",
  required: ["id", "state", "stateText", "sender", "submittedBy", "receivedAt", "updatedAt", "pages", "documents", "recipients", "error", "rcMessageId"],
  properties: {
    id: { type: "string" },
    state: { enum: ["received", "parsed", "submitting", "submitted", "final", "notified", "failed", "cancelled"] },
    stateText: { type: "string" },
    sender: { type: "string", description: "Where the report goes." },
    submittedBy: { type: ["string", "null"] },
    receivedAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
    pages: { type: ["integer", "null"] },
    documents: { type: "array", items: { type: "object", required: ["filename", "size"], properties: { filename: { type: "string" }, size: { type: "integer" } } } },
    recipients: {
      type: "array",
      items: {
        type: "object",
        required: ["number", "status", "error"],
        properties: { number: { type: "string" }, status: { type: "string" }, error: { type: ["string", "null"] } },
      },
    },
    error: { type: ["string", "null"] },
    rcMessageId: { type: ["string", "null"] },
  },
} as const;

const inbound = {
  type: "object",
  required: ["id", "state", "from", "fromName", "to", "pages", "receivedAt", "mailTo", "deliveredAt", "error"],
  properties: {
    id: { type: "string" },
    state: { enum: ["discovered", "delivered", "dead"] },
    from: { type: "string" },
    fromName: { type: ["string", "null"] },
    to: { type: "array", items: { type: "string" } },
    pages: { type: ["integer", "null"] },
    receivedAt: { type: "string" },
    mailTo: { type: "array", items: { type: "string" } },
    deliveredAt: { type: ["string", "null"], format: "date-time" },
    error: { type: ["string", "null"] },
  },
} as const;

const accepted = {
  type: "object",
  required: ["id", "state", "recipients", "location"],
  properties: { id: { type: "string" }, state: { const: "received" }, recipients: { type: "array", items: { type: "string" } }, location: { type: "string" } },
} as const;

const list = (ref: string) => ({
  type: "object",
  required: ["items", "next"],
  properties: { items: { type: "array", items: { $ref: ref } }, next: { type: ["string", "null"], description: "Pass as `after` for the next page." } },
});

const problemResponse = (description: string) => ({ description, content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } } });
const json = (description: string, ref: string) => ({ description, content: { "application/json": { schema: { $ref: ref } } } });
const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } } as const;
const common = { "401": problemResponse("No or unknown bearer token"), "429": problemResponse("Too many requests or failed logins") };

export const OPENAPI = {
  openapi: "3.1.0",
  info: {
    title: "faxbridge API",
    version: "1",
    description: "Submit faxes with the same durability, policy, quotas and reports as mail; follow them; read received faxes.",
  },
  servers: [{ url: "/" }],
  security: [{ bearer: [] }],
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A token from api.tokens (hashed with `faxbridge hash-password`)." } },
    schemas: { Problem: problem, Fax: fax, FaxList: list("#/components/schemas/Fax"), Accepted: accepted, Inbound: inbound, InboundList: list("#/components/schemas/Inbound") },
  },
  paths: {
    "/api/v1/faxes": {
      post: {
        operationId: "submitFax",
        summary: "Queue a fax (202 once it is durably stored)",
        parameters: [{ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 255 }, description: "The same key and body within 24 h returns the first answer." }],
        requestBody: {
          required: true,
          content: {
            "multipart/form-data": {
              schema: {
                type: "object",
                required: ["to"],
                properties: {
                  to: { type: "array", items: { type: "string" }, description: "Fax numbers (repeat the field), E.164 or national; address options as in mail (+15551234567/res=low)." },
                  file: { type: "array", items: { type: "string", contentMediaType: "application/octet-stream" } },
                  coverText: { type: "string" },
                  resolution: { enum: ["high", "low"] },
                  sendTime: { type: "string", format: "date-time" },
                  notify: { type: "string", format: "email" },
                },
              },
            },
          },
        },
        responses: {
          "202": { ...json("Accepted and queued", "#/components/schemas/Accepted"), headers: { Location: { schema: { type: "string" } } } },
          "400": problemResponse("Malformed request"),
          "403": problemResponse("Not allowed for this sender"),
          "409": problemResponse("The same Idempotency-Key is still being processed"),
          "413": problemResponse("Too large"),
          "415": problemResponse("Not multipart/form-data"),
          "422": problemResponse("Refused, as SMTP would refuse it (or an Idempotency-Key reused with another body)"),
          "503": problemResponse("Try again later"),
          "507": problemResponse("Out of storage"),
          ...common,
        },
      },
      get: {
        operationId: "listFaxes",
        summary: "Faxes this token sent, newest last (keyset paging)",
        parameters: [
          { name: "state", in: "query", schema: { type: "string" }, description: "Comma-separated states." },
          { name: "after", in: "query", schema: { type: "string" } },
          { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 200 } },
        ],
        responses: { "200": json("A page", "#/components/schemas/FaxList"), "400": problemResponse("Bad parameter"), ...common },
      },
    },
    "/api/v1/faxes/{id}": {
      get: {
        operationId: "getFax",
        parameters: [idParam],
        responses: { "200": json("The fax", "#/components/schemas/Fax"), "404": problemResponse("No such fax (or not yours)"), ...common },
      },
    },
    "/api/v1/faxes/{id}/cancel": {
      post: {
        operationId: "cancelFax",
        parameters: [idParam],
        responses: { "200": json("Cancelled", "#/components/schemas/Fax"), "404": problemResponse("No such fax"), "409": problemResponse("Not cancellable now"), ...common },
      },
    },
    "/api/v1/faxes/{id}/resend": {
      post: {
        operationId: "resendFax",
        parameters: [idParam],
        requestBody: {
          required: false,
          content: { "application/json": { schema: { type: "object", properties: { to: { type: "array", items: { type: "string" } } } } } },
        },
        responses: {
          "202": { ...json("Queued as a new fax", "#/components/schemas/Accepted"), headers: { Location: { schema: { type: "string" } } } },
          "404": problemResponse("No such fax"),
          "409": problemResponse("Never reached RingCentral, nothing to resend"),
          "422": problemResponse("Refused"),
          ...common,
        },
      },
    },
    "/api/v1/inbound": {
      get: {
        operationId: "listInbound",
        summary: "Received faxes routed to this token's addresses",
        parameters: [
          { name: "state", in: "query", schema: { type: "string" } },
          { name: "after", in: "query", schema: { type: "string" } },
          { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 200 } },
        ],
        responses: { "200": json("A page", "#/components/schemas/InboundList"), "400": problemResponse("Bad parameter"), ...common },
      },
    },
    "/api/v1/inbound/{id}": {
      get: { operationId: "getInbound", parameters: [idParam], responses: { "200": json("The received fax", "#/components/schemas/Inbound"), "404": problemResponse("No such fax"), ...common } },
    },
    "/api/v1/inbound/{id}/document": {
      get: {
        operationId: "getInboundDocument",
        parameters: [idParam],
        responses: {
          "200": { description: "The document (streamed)", content: { "application/pdf": { schema: { type: "string", contentMediaType: "application/pdf" } } } },
          "404": problemResponse("No such fax"),
          "502": problemResponse("RingCentral could not be reached"),
          ...common,
        },
      },
    },
    "/api/v1/inbound/{id}/redeliver": {
      post: {
        operationId: "redeliverInbound",
        parameters: [idParam],
        responses: { "202": json("Queued for delivery", "#/components/schemas/Inbound"), "404": problemResponse("No such fax"), "409": problemResponse("Not now"), ...common },
      },
    },
  },
} as const;
