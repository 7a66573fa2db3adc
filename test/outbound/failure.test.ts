import { describe, expect, it } from "vitest";
import { failureOf } from "../../src/failure.js";
import { classifyDeliveryError } from "../../src/inbound/deliver.js";
import { MailDeliveryError } from "../../src/mail/transport.js";
import { classify } from "../../src/outbound/classify.js";
import { faxErrorKind } from "../../src/outbound/fax-errors.js";
import { RcApiError } from "../../src/rc/errors.js";

const api = (status: number): RcApiError => new RcApiError({ status, errorCode: undefined, serverMessage: undefined, operation: "x", group: "Heavy", retryAfterMs: undefined });

describe("one transient/permanent discriminant", () => {
  it("mail delivery errors carry their verdict, and anything unforeseen counts as transient", () => {
    expect(failureOf(new MailDeliveryError("x", true, 451)).kind).toBe("transient");
    expect(failureOf(new MailDeliveryError("x", false, 554)).kind).toBe("permanent");
    expect(new MailDeliveryError("x", false, 554).temporary).toBe(false);
    expect(failureOf(new Error("ENOSPC")).kind).toBe("transient");
    expect(failureOf(new Error("ENOSPC"), "permanent").kind).toBe("permanent");
  });

  it("a line problem at the far end is transient (a redial may get through), a wrong number is not", () => {
    expect(["LineBusy", "NoAnswer", "AllLinesInUse", "TooManyCallsPerLine", "CallerHungUp", "CallFailed"].map(faxErrorKind)).toEqual(Array(6).fill("transient"));
    expect(["InvalidNumber", "NoFaxMachine", "NotEnoughCredits", "RenderingFailed", "", undefined].map(faxErrorKind)).toEqual(Array(6).fill("permanent"));
  });

  it("fax submissions and inbound deliveries answer with the same kinds", () => {
    expect([classify(api(503)).kind, classifyDeliveryError(api(503)).kind]).toEqual(["transient", "transient"]);
    expect([classify(api(400)).kind, classifyDeliveryError(api(400)).kind]).toEqual(["permanent", "permanent"]);
  });
});
