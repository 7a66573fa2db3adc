/**
 * Tunables: the fixed sizes, timeouts, intervals and caps the program uses
 * that are not settings (src/config/schema.ts holds those). One place, so a
 * reader sees every such number at once and a change is made here only.
 * Limits that RingCentral or a standard sets (cover text length, cover page
 * numbers, upload size, file names) live with the fax domain (src/fax/,
 * src/outbound/preflight.ts).
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const KIB = 1024;
const MIB = 1024 * KIB;

// ── Daemon lifecycle ────────────────────────────────────────────────────────
/** A shutdown (SIGTERM) finishes within this; then the process exits anyway. */
export const SHUTDOWN_DEADLINE_MS = 25 * SECOND;
/** How long the SMTP listener lets sessions finish during a daemon shutdown. */
export const SMTP_SHUTDOWN_MS = 10 * SECOND;
/** SMTP close() without a deadline of its own: after this, remaining clients get 421 and are disconnected. */
export const SMTP_CLOSE_DEADLINE_MS = 30 * SECOND;
/** `doctor` run from the console: each check's time limit. */
export const DOCTOR_TIMEOUT_MS = 15 * SECOND;

// ── HTTP ────────────────────────────────────────────────────────────────────
/** A whole HTTP request (uploads of up to smtp.maxMessageBytes included) must arrive within this. */
export const HTTP_REQUEST_TIMEOUT_MS = 10 * MINUTE;
/** The request headers must arrive within this (slow-loris). */
export const HTTP_HEADERS_TIMEOUT_MS = 10 * SECOND;
/** Each readiness check (/readyz) answers within this or counts as down. */
export const READINESS_CHECK_TIMEOUT_MS = 5 * SECOND;
/** A RingCentral call that succeeded this recently makes a readiness probe of RingCentral unnecessary. */
export const RC_RECENT_MS = 30 * SECOND;
/** How long an Idempotency-Key of the REST API is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * HOUR;
/** Thumbnail renderings (pdftoppm) running at once. */
export const THUMBNAILS_AT_ONCE = 2;

// ── Mail intake ─────────────────────────────────────────────────────────────
/** A message's header section is read up to this many bytes; a longer one counts as no usable headers. */
export const MAX_HEADER_BYTES = 256 * KIB;
/** Per-client counters (connection rate, AUTH failures) kept at most; the oldest are dropped beyond. */
export const ABUSE_MAX_TRACKED = 10_000;
/** The window of the hourly fax and page quotas. */
export const QUOTA_WINDOW_MS = HOUR;
/** Spool writes are made in chunks of this size. */
export const SPOOL_WRITE_CHUNK_BYTES = 256 * KIB;
/** Threads writing spool files when the config does not say. */
export const SPOOL_WRITER_THREADS = 4;
/** Spare write buffers the spool keeps for reuse. */
export const SPOOL_FREE_SLOTS = 16;

// ── Parsing and sending ─────────────────────────────────────────────────────
/** HTML bodies longer than this are not converted to text (the cover text is cut far sooner anyway). */
export const HTML_CONVERT_MAX_CHARS = 8 * MIB;
/** Longest a scheduled fax may be put off (RingCentral documents no limit; HylaFAX uses a year). */
export const MAX_SCHEDULE_AHEAD_MS = 366 * 24 * HOUR;
/** Inline images at most this large … */
export const SIGNATURE_MAX_BYTES = 24 * KIB;
/** … and at most this wide … */
export const SIGNATURE_MAX_WIDTH = 400;
/** … and this high count as signature art (logos), left out of the fax. */
export const SIGNATURE_MAX_HEIGHT = 200;
/** Bytes of an image read to learn its size. */
export const IMAGE_HEAD_BYTES = 64 * KIB;
/** TIFF page counting stops here (a corrupt file could claim billions). */
export const MAX_TIFF_PAGES = 100_000;
/** The transmitted copy is attached to reports only up to this size. */
export const TRANSMITTED_COPY_MAX_BYTES = 10 * MIB;
/** `faxbridge queue cancel` waits this long for the worker to cancel a fax RingCentral holds. */
export const CANCEL_WAIT_MS = 15 * SECOND;

// ── Leases ──────────────────────────────────────────────────────────────────
/**
 * How long a claim on a job or a received fax holds before another instance
 * may take it over. Short, because the claim loop renews it every third of
 * this while the step runs (uploads included): a dead instance's work is
 * taken over within this plus one idle poll.
 */
export const LEASE_MS = 30 * SECOND;

// ── Operations ──────────────────────────────────────────────────────────────
/** Admin alerts of one kind: at most one mail per window, the rest as a digest. */
export const ALERT_WINDOW_MS = 15 * MINUTE;
/** Rows deleted per statement by the retention sweep. */
export const PURGE_BATCH = 500;
