import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * Every Prometheus metric faxbridge exports, on one registry per daemon (tests
 * create their own, so nothing is global). Label values come from closed sets
 * (reasons, states, groups, error codes), never from user input.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly mailsReceived = new Counter({
    name: "faxbridge_mails_received_total",
    help: "Mails accepted for faxing (250 sent).",
    registers: [this.registry],
  });
  readonly mailsRefused = new Counter({
    name: "faxbridge_mails_refused_total",
    help: "Mails or recipients refused at SMTP time, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly faxesSubmitted = new Counter({
    name: "faxbridge_faxes_submitted_total",
    help: "Faxes handed to RingCentral.",
    registers: [this.registry],
  });
  readonly faxesFinal = new Counter({
    name: "faxbridge_faxes_final_total",
    help: "Fax recipients that reached a final status, by status and RingCentral faxErrorCode.",
    labelNames: ["status", "error_code"] as const,
    registers: [this.registry],
  });
  readonly faxesFailed = new Counter({
    name: "faxbridge_faxes_failed_total",
    help: "Fax jobs failed before or during submission, by error code.",
    labelNames: ["error_code"] as const,
    registers: [this.registry],
  });
  /**
   * Whole-queue gauges (queue depth, oldest job) describe the shared database,
   * not this instance: with several instances only the reporter (the inbound
   * leader) exports them, so `sum()` over instances is not multiplied. The
   * others export no series for them, and `faxbridge_queue_reporter 0`.
   */
  readonly queueDepth = new Gauge({
    name: "faxbridge_queue_jobs",
    help: "Outbound jobs by state (the whole queue; exported by the reporting instance only, see faxbridge_queue_reporter).",
    labelNames: ["state"] as const,
    registers: [this.registry],
    collect: () => {
      if (!this.reportsQueue()) this.queueDepth.reset();
    },
  });
  readonly queueReporter = new Gauge({
    name: "faxbridge_queue_reporter",
    help: "1 on the instance that exports the whole-queue gauges (the inbound leader with several instances; always 1 with one), 0 on the others.",
    registers: [this.registry],
    collect: () => {
      this.queueReporter.set(this.reportsQueue() ? 1 : 0);
    },
  });
  readonly inboundDelivered = new Counter({
    name: "faxbridge_inbound_faxes_delivered_total",
    help: "Received faxes mailed to their mailboxes.",
    registers: [this.registry],
  });
  readonly inboundFailed = new Counter({
    name: "faxbridge_inbound_faxes_dead_total",
    help: "Received faxes that could not be delivered after every retry (dead letters).",
    registers: [this.registry],
  });
  readonly rcCalls = new Counter({
    name: "faxbridge_ringcentral_calls_total",
    help: "RingCentral API calls by rate-limit group, operation and HTTP status.",
    labelNames: ["group", "operation", "status", "extension"] as const,
    registers: [this.registry],
  });
  readonly rc429 = new Counter({
    name: "faxbridge_ringcentral_rate_limited_total",
    help: "RingCentral 429 answers by group and pool extension.",
    labelNames: ["group", "extension"] as const,
    registers: [this.registry],
  });
  readonly rcRemaining = new Gauge({
    name: "faxbridge_ringcentral_rate_limit_remaining",
    help: "Requests left in the current window, by group and pool extension.",
    labelNames: ["group", "extension"] as const,
    registers: [this.registry],
  });
  readonly rcLatency = new Histogram({
    name: "faxbridge_ringcentral_call_seconds",
    help: "RingCentral API call latency by group and pool extension.",
    labelNames: ["group", "extension"] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly faxDeliverySeconds = new Histogram({
    name: "faxbridge_fax_completion_seconds",
    help: "Time from mail accepted to fax final status.",
    buckets: [10, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    registers: [this.registry],
  });
  readonly inboundLatency = new Histogram({
    name: "faxbridge_inbound_delivery_seconds",
    help: "Time from fax received by RingCentral to mail accepted by the mail server.",
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  /** Read at scrape time; the daemon sets them once its store and data directory are open. */
  readonly sources: {
    dataFreeBytes?: () => number | undefined;
    oldestJobSeconds?: () => Promise<number>;
    ready?: () => Promise<boolean>;
    dependencies?: () => Promise<unknown>;
    /** Whether this instance exports the whole-queue gauges (absent: it does, as the only instance). */
    queueReporter?: () => boolean;
  } = {};

  /** Whether this instance exports the whole-queue gauges now. */
  reportsQueue(): boolean {
    return this.sources.queueReporter?.() ?? true;
  }

  readonly ready = new Gauge({
    name: "faxbridge_ready",
    help: "1 when this instance can accept and durably queue mail (store, spool, disk, listeners): the /readyz checks, run at each scrape.",
    registers: [this.registry],
    collect: async () => {
      const ok = await this.sources.ready?.();
      if (ok !== undefined) this.ready.set(ok ? 1 : 0);
    },
  });
  readonly dependencyUp = new Gauge({
    name: "faxbridge_dependency_up",
    help: "1 when a dependency (ringcentral, mail) answered its last check, 0 when not (checks cached a few seconds).",
    labelNames: ["dependency"] as const,
    registers: [this.registry],
    collect: async () => {
      await this.sources.dependencies?.();
    },
  });
  readonly dataFreeBytes = new Gauge({
    name: "faxbridge_data_free_bytes",
    help: "Free bytes on the data directory's file system (for the unprivileged user).",
    registers: [this.registry],
    collect: () => {
      const free = this.sources.dataFreeBytes?.();
      if (free !== undefined) this.dataFreeBytes.set(free);
    },
  });
  readonly queueOldestSeconds = new Gauge({
    name: "faxbridge_queue_oldest_job_seconds",
    help: "Age of the oldest outbound job not yet final (0 when none; exported by the reporting instance only, see faxbridge_queue_reporter).",
    registers: [this.registry],
    collect: async () => {
      if (!this.reportsQueue()) {
        this.queueOldestSeconds.reset();
        return;
      }
      const age = await this.sources.oldestJobSeconds?.();
      if (age !== undefined) this.queueOldestSeconds.set(age);
    },
  });
  readonly rcAuthFailures = new Counter({
    name: "faxbridge_ringcentral_auth_failures_total",
    help: "RingCentral logins refused (wrong or revoked credentials), by HTTP status and pool extension.",
    labelNames: ["status", "extension"] as const,
    registers: [this.registry],
  });
  readonly adminAlerts = new Counter({
    name: "faxbridge_admin_alerts_total",
    help: "Events reported to the administrator (mail.adminTo), by kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "faxbridge_" });
  }

  /**
   * Record one RingCentral call (wired to the client's onCall hook). `extension`:
   * the pool member's extension id ("member-N" until its first login tells it).
   */
  recordRcCall(call: { group: string; operation: string; status: number; durationMs: number }, extension = "~"): void {
    this.rcCalls.inc({ group: call.group, operation: call.operation, status: String(call.status), extension });
    if (call.status === 429) this.rc429.inc({ group: call.group, extension });
    this.rcLatency.observe({ group: call.group, extension }, call.durationMs / 1000);
  }
}
