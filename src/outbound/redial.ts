/**
 * Redial on busy / no answer (`fax.redial`): when a fax ends and some
 * recipients failed with a line-level faxErrorCode, those recipients — and
 * only those — get the same fax again after the next wait of the schedule,
 * resent with RingCentral's `originalMessageId` (no new upload). The sender
 * gets one report at the end, naming the attempts per recipient.
 *
 * State lives in the job data (`redial`), written in the same transition
 * that moves the job back to `parsed` with `nextAttemptAt` = the redial time,
 * so it survives kill -9 and restarts like any scheduled work. A job
 * cancelled with `faxbridge queue cancel` while it waits is no longer claimed.
 *
 * Each redial is charged against the hourly page quotas (pages × redialled
 * recipients, src/outbound/cost.ts) before it is scheduled; a redial over
 * the quota is not made and the report says why.
 */
import { isFailedStatus } from "../fax/status.js";
import type { OutboundJob, RecipientStatus } from "../store/outbound.js";
import { parseSchedule } from "../util/schedule.js";
import type { PageBudget } from "./cost.js";
import { faxErrorKind } from "./fax-errors.js";
import type { JobData } from "./job-data.js";

/** fax.redial as waits in ms; "" or "off" (an empty environment variable counts as unset, so "off" is how the env turns it off) = none. */
export function redialSchedule(text: string): readonly number[] {
  const t = text.trim();
  return t === "" || t.toLowerCase() === "off" ? [] : parseSchedule(t);
}

export type RedialState = NonNullable<JobData["redial"]>;

/** The recipients the job's current attempt goes to (all of them before any redial). */
export function attemptTargets(job: Pick<OutboundJob, "rcptTo">, data: JobData | undefined): string[] {
  return data?.redial !== undefined ? [...data.redial.pending] : job.rcptTo.map((r) => r.e164);
}

/** The statuses of the current attempt's recipients plus the settled ones, in the job's recipient order. */
export function mergeStatuses(job: Pick<OutboundJob, "rcptTo">, data: JobData | undefined, current: readonly RecipientStatus[]): RecipientStatus[] {
  const settled = data?.redial?.settled ?? [];
  return job.rcptTo.map((r) => {
    const now = current.find((s) => s.e164 === r.e164);
    if (now !== undefined) return now;
    const old = settled.find((s) => s.e164 === r.e164);
    return old !== undefined ? (old as RecipientStatus) : { e164: r.e164, status: "Unknown" };
  });
}

/** The resend of a redial: the first fax's id and the recipients (with their names) to send it to; undefined when not a redial. */
export function redialResend(data: JobData): { originalMessageId: string; to: { phoneNumber: string; name?: string }[] } | undefined {
  const r = data.redial;
  if (r === undefined || r.round === 0) return undefined;
  const digits = (n: string): string => n.replace(/\D/g, "");
  const wanted = new Set(r.pending.map(digits));
  const to = (data.request?.to ?? []).filter((t) => wanted.has(digits(t.phoneNumber))).map((t) => (t.name !== undefined ? { phoneNumber: t.phoneNumber, name: t.name } : { phoneNumber: t.phoneNumber }));
  return { originalMessageId: r.originalMessageId, to: to.length > 0 ? to : r.pending.map((phoneNumber) => ({ phoneNumber })) };
}

function earlierAttempts(state: RedialState, last: string | null): string[] {
  return last === null || state.messageIds.includes(last) ? [...state.messageIds] : [...state.messageIds, last];
}

/** A message of an earlier attempt of this job: never the fax a redial's interrupted submission created. */
export function isEarlierAttempt(data: JobData | undefined, rcMessageId: string): boolean {
  const r = data?.redial;
  return r !== undefined && r.round > 0 && (r.originalMessageId === rcMessageId || r.messageIds.includes(rcMessageId));
}

export type RedialPlan = { readonly redial: true; readonly data: JobData; readonly at: number; readonly numbers: string[] } | { readonly redial: false; readonly data: JobData };

export interface PlanInput {
  readonly schedule: readonly number[];
  readonly job: Pick<OutboundJob, "rcptTo" | "identity" | "rcMessageId">;
  readonly data: JobData;
  /** Every recipient's status (merged) now that the attempt is final. */
  readonly statuses: readonly RecipientStatus[];
  readonly pages: PageBudget;
  readonly now: number;
}

/** Decide whether to redial some recipients; the returned data carries the redial state either way. */
export async function planRedial(input: PlanInput): Promise<RedialPlan> {
  const { schedule, job, data, statuses, now } = input;
  if (schedule.length === 0 || data.cancel !== undefined) return { redial: false, data };
  const originalMessageId = data.redial?.originalMessageId ?? job.rcMessageId;
  if (originalMessageId === null) return { redial: false, data };
  const targets = new Set(attemptTargets(job, data));
  const failed = statuses.filter(
    (s) => targets.has(s.e164) && isFailedStatus(s.status) && faxErrorKind(s.faxErrorCode) === "transient",
  );
  if (failed.length === 0) return { redial: false, data };
  const state: RedialState = data.redial ?? {
    originalMessageId,
    round: 0,
    attempts: Object.fromEntries(job.rcptTo.map((r) => [r.e164, 1])),
    pending: job.rcptTo.map((r) => r.e164),
    settled: [],
    messageIds: [],
    notes: {},
  };
  const wait = schedule[state.round];
  if (wait === undefined) return { redial: false, data: { ...data, redial: state } };
  const numbers = failed.map((s) => s.e164);
  const pages = data.countedPages ?? data.pages;
  let charged = 0;
  if (pages !== undefined) {
    const verdict = await input.pages.assessKnown(job.identity, "redial", pages, numbers.length);
    if (!verdict.ok) {
      const notes = { ...state.notes };
      for (const n of numbers) notes[n] = `not redialled: ${verdict.refusal.message.replace(/;? send the email again then\.$/i, ".")}`;
      return { redial: false, data: { ...data, redial: { ...state, notes } } };
    }
    charged = verdict.charged;
  }
  const attempts = { ...state.attempts };
  for (const n of numbers) attempts[n] = (attempts[n] ?? 1) + 1;
  const settled = statuses.filter((s) => !numbers.includes(s.e164)).map((s) => ({ e164: s.e164, status: s.status, ...(s.faxErrorCode !== undefined && { faxErrorCode: s.faxErrorCode }) }));
  const next: JobData = {
    ...data,
    ...(charged > 0 && { chargedPages: (data.chargedPages ?? 0) + charged }),
    redial: { ...state, round: state.round + 1, attempts, pending: numbers, settled, messageIds: earlierAttempts(state, job.rcMessageId) },
  };
  return { redial: true, data: next, at: now + wait, numbers };
}

/** Per recipient: attempts made and why a redial was not made, for the report. */
export function redialAttempts(job: Pick<OutboundJob, "rcptTo">, data: JobData | undefined): { e164: string; attempts: number; note?: string }[] | undefined {
  const r = data?.redial;
  if (r === undefined) return undefined;
  return job.rcptTo.map((x) => {
    const note = r.notes[x.e164];
    return { e164: x.e164, attempts: r.attempts[x.e164] ?? 1, ...(note !== undefined && { note }) };
  });
}
