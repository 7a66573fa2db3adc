import { describe, expect, it } from "vitest";
import { classify, describeRcError, RC_ERROR_TEXT } from "../../src/outbound/classify.js";
import { RcApiError, RcNetworkError, RcProtocolError } from "../../src/rc/errors.js";

function apiError(status: number, errorCode?: string, extra: { retryAfterMs?: number; parameterName?: string } = {}): RcApiError {
  return new RcApiError({
    status,
    errorCode,
    serverMessage: "x",
    operation: "createFaxMessage",
    group: "Heavy",
    retryAfterMs: extra.retryAfterMs,
    parameterName: extra.parameterName,
  });
}

describe("classify", () => {
  const cases: { name: string; err: unknown; action: "retry" | "fail"; code: string; reason: RegExp; maybeSent: boolean; retryAfterMs?: number }[] = [
    { name: "429 with Retry-After", err: apiError(429, "CMN-301", { retryAfterMs: 7000 }), action: "retry", code: "CMN-301", reason: /rate limit/, maybeSent: false, retryAfterMs: 7000 },
    { name: "429 without code", err: apiError(429), action: "retry", code: "HTTP-429", reason: /rate limit/, maybeSent: false },
    { name: "503", err: apiError(503), action: "retry", code: "HTTP-503", reason: /server error \(HTTP 503\)/, maybeSent: true },
    { name: "500 MSG-352", err: apiError(500, "MSG-352"), action: "retry", code: "MSG-352", reason: /server error/, maybeSent: true },
    { name: "401 after re-login", err: apiError(401, "OAU-149"), action: "retry", code: "OAU-149", reason: /credentials/, maybeSent: false },
    { name: "408", err: apiError(408), action: "retry", code: "HTTP-408", reason: /timeout/, maybeSent: true },
    { name: "MSG-348 unsupported type", err: apiError(415, "MSG-348"), action: "fail", code: "MSG-348", reason: /^unsupported attachment type$/, maybeSent: false },
    { name: "MSG-337 too large", err: apiError(400, "MSG-337"), action: "fail", code: "MSG-337", reason: /attachment too large/, maybeSent: false },
    { name: "CMN-101 on the number", err: apiError(400, "CMN-101", { parameterName: "to[0].phoneNumber" }), action: "fail", code: "CMN-101", reason: /invalid fax number/, maybeSent: false },
    { name: "CMN-101 elsewhere", err: apiError(400, "CMN-101", { parameterName: "coverIndex" }), action: "fail", code: "CMN-101", reason: /invalid value for coverIndex/, maybeSent: false },
    { name: "MSG-340", err: apiError(403, "MSG-340"), action: "fail", code: "MSG-340", reason: /not available for this extension type/, maybeSent: false },
    { name: "MSG-341", err: apiError(403, "MSG-341"), action: "fail", code: "MSG-341", reason: /not allowed for this extension/, maybeSent: false },
    { name: "CMN-408", err: apiError(403, "CMN-408"), action: "fail", code: "CMN-408", reason: /permission missing/, maybeSent: false },
    { name: "MSG-343 resend not allowed", err: apiError(406, "MSG-343"), action: "fail", code: "MSG-343", reason: /cannot be resent/, maybeSent: false },
    { name: "unknown 4xx code", err: apiError(400, "XYZ-999"), action: "fail", code: "XYZ-999", reason: /refused the fax \(XYZ-999\)/, maybeSent: false },
    { name: "4xx without code", err: apiError(404), action: "fail", code: "HTTP-404", reason: /HTTP-404/, maybeSent: false },
    {
      name: "connection refused (nothing sent)",
      err: new RcNetworkError({ operation: "createFaxMessage", group: "Heavy", code: "ECONNREFUSED", detail: "refused", maybeProcessed: false }),
      action: "retry",
      code: "network",
      reason: /ECONNREFUSED/,
      maybeSent: false,
    },
    {
      name: "reset after the upload (maybe sent)",
      err: new RcNetworkError({ operation: "createFaxMessage", group: "Heavy", code: "ECONNRESET", detail: "reset", maybeProcessed: true }),
      action: "retry",
      code: "network",
      reason: /network error/,
      maybeSent: true,
    },
    { name: "2xx with bad body", err: new RcProtocolError({ operation: "createFaxMessage", status: 200, detail: "id: missing" }), action: "retry", code: "protocol", reason: /unexpected/, maybeSent: true },
    { name: "anything else", err: new TypeError("boom"), action: "retry", code: "internal", reason: /internal/, maybeSent: false },
  ];

  it.each(cases)("$name", (c) => {
    const got = classify(c.err);
    expect(got.kind).toBe(c.action === "retry" ? "transient" : "permanent");
    expect(got.code).toBe(c.code);
    expect(got.reason).toMatch(c.reason);
    expect(got.maybeSent).toBe(c.maybeSent);
    expect(got.retryAfterMs).toBe(c.retryAfterMs);
  });

  it("has a reason and advice for every code in the table", () => {
    const bad = Object.entries(RC_ERROR_TEXT).filter(([code, t]) => t.reason === "" || !/\.$/.test(t.advice) || describeRcError(code) !== t);
    expect(bad).toEqual([]);
  });
});
