/**
 * What the worker keeps in a job's `faxRequest` column: the fax request and
 * documents once parsed, the mail's threading and loop-safety headers (also
 * for refused mail, so the notice can be threaded or suppressed), and the
 * progress of polling and reporting. Validated with zod when read back.
 */
import { z } from "zod";
import type { FaxRequest, MailMeta } from "../fax/model.js";
import { isDocumentKey } from "../store/ports.js";

export const mailMetaSchema = z.object({
  messageId: z.string().optional(),
  subject: z.string().optional(),
  from: z.string().optional(),
  references: z.array(z.string()).default([]),
  autoSubmitted: z.string().optional(),
  precedence: z.string().optional(),
  xAutoResponseSuppress: z.string().optional(),
  isReport: z.boolean().default(false),
});
export type { MailMeta } from "../fax/model.js";

/** A document of the job: `key` names it in the document store (`work/<jobId>/<file>`), never a local path. */
const documentSchema = z.object({
  key: z.string().refine(isDocumentKey, "not a document key"),
  filename: z.string(),
  originalFilename: z.string().optional(),
  contentType: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
});
export type StoredDocument = z.infer<typeof documentSchema>;

const requestSchema = z.object({
  to: z.array(z.object({ phoneNumber: z.string(), name: z.string().optional() })),
  faxResolution: z.enum(["High", "Low"]),
  coverIndex: z.number().int().optional(),
  coverPageText: z.string().optional(),
  sendTime: z.string().optional(),
  isoCode: z.string().optional(),
});

/** True when A and B are the same type: the stored shapes are the model's (src/fax/model.ts), checked at compile time. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const storedShapesMatchModel: [Same<z.infer<typeof mailMetaSchema>, MailMeta>, Same<z.infer<typeof requestSchema>, FaxRequest>] = [true, true];
void storedShapesMatchModel;

export const jobDataSchema = z.object({
  v: z.literal(1),
  meta: mailMetaSchema,
  request: requestSchema.optional(),
  documents: z.array(documentSchema).default([]),
  skipped: z.array(z.object({ filename: z.string(), reason: z.string() })).default([]),
  forwardOf: z.string().optional(),
  refusal: z.object({ rule: z.string(), message: z.string(), filename: z.string().optional() }).optional(),
  /** RingCentral's advice text for a permanent API failure (the short reason is in errorText). */
  failureAdvice: z.string().optional(),
  /** When RingCentral accepted the fax (epoch ms). */
  submittedAt: z.number().optional(),
  polls: z.number().int().nonnegative().default(0),
  pages: z.number().int().optional(),
  /** Pages counted before sending (src/outbound/pages.ts); undefined when RingCentral's count is charged. */
  countedPages: z.number().int().optional(),
  /** Pages × recipients charged against the hourly page quotas. */
  chargedPages: z.number().int().optional(),
  /** RingCentral's page count has been charged for what was not counted before sending. */
  pagesSettled: z.boolean().optional(),
  completedAt: z.number().optional(),
  /** Status polling gave up (fax.statusTimeoutHours) or the fax vanished from the message store. */
  statusProblem: z.string().optional(),
  /** `faxbridge queue cancel` of a scheduled fax RingCentral holds: the worker deletes it, then records the outcome. */
  cancel: z
    .object({ requestedAt: z.number(), outcome: z.enum(["cancelled", "too-late"]).optional(), reason: z.string().optional() })
    .optional(),
  /** Redials of busy / no-answer recipients (src/outbound/redial.ts). */
  redial: z
    .object({
      /** The first fax's RingCentral message id: every redial resends it (originalMessageId, no new upload). */
      originalMessageId: z.string(),
      /** Redials made so far (the index into fax.redial). */
      round: z.number().int().nonnegative(),
      /** Attempts made per recipient (E.164 → count). */
      attempts: z.record(z.string(), z.number().int().positive()),
      /** The recipients the current attempt goes to. */
      pending: z.array(z.string()),
      /** Final statuses of the recipients not in the current attempt. */
      settled: z.array(z.object({ e164: z.string(), status: z.string(), faxErrorCode: z.string().optional() })),
      /** RingCentral message ids of the attempts made before the current one (reconciliation never adopts them). */
      messageIds: z.array(z.string()).default([]),
      /** Why a recipient was not redialled (e.g. the page quota), by E.164. */
      notes: z.record(z.string(), z.string()).default({}),
    })
    .optional(),
  acceptedNotice: z.enum(["sent", "suppressed", "failed"]).optional(),
  report: z
    .object({
      outcome: z.enum(["sent", "suppressed", "failed"]),
      at: z.number(),
      detail: z.string().optional(),
    })
    .optional(),
});
export type JobData = z.infer<typeof jobDataSchema>;

export function emptyJobData(meta: MailMeta): JobData {
  return { v: 1, meta, documents: [], skipped: [], polls: 0 };
}

/** The job's data, or undefined when there is none (or it is not ours: then it is logged by the caller). */
export function readJobData(value: unknown): { ok: true; data: JobData | undefined } | { ok: false; error: string } {
  if (value === null || value === undefined) return { ok: true, data: undefined };
  const parsed = jobDataSchema.safeParse(value);
  if (!parsed.success) return { ok: false, error: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") };
  return { ok: true, data: parsed.data };
}
