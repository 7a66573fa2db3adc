/**
 * The PostgreSQL schema, one versioned migration per module (./migrate.ts).
 * Times are epoch milliseconds (BIGINT) as in the SQLite backend; leases are
 * set from the database clock. JSON columns are TEXT: the stores parse them.
 */
import type { PgMigration } from "./migrate.js";

export const pgOutboundMigration: PgMigration = {
  module: "outbound",
  steps: [
    `CREATE TABLE outbound_jobs (
       id TEXT PRIMARY KEY,
       state TEXT NOT NULL CHECK (state IN ('received','parsed','submitting','submitted','final','notified','failed','cancelled')),
       mail_from TEXT NOT NULL,
       rcpt_to TEXT NOT NULL,
       rcpt_key TEXT NOT NULL,
       message_id TEXT,
       mail_key TEXT NOT NULL,
       size BIGINT NOT NULL,
       received_at BIGINT NOT NULL,
       client_ip TEXT NOT NULL,
       client_user TEXT,
       identity TEXT NOT NULL,
       report_to TEXT NOT NULL,
       attempts INTEGER NOT NULL DEFAULT 0,
       next_attempt_at BIGINT NOT NULL,
       lease_until BIGINT,
       lease_owner TEXT,
       rc_message_id TEXT,
       rc_extension_id TEXT,
       submit_started_at BIGINT,
       fax_request TEXT,
       status TEXT,
       error_code TEXT,
       error_text TEXT,
       last_error TEXT,
       notified_at BIGINT,
       updated_at BIGINT NOT NULL
     );
     CREATE INDEX outbound_jobs_due ON outbound_jobs (state, next_attempt_at);
     CREATE INDEX outbound_jobs_message_id ON outbound_jobs (message_id, received_at) WHERE message_id IS NOT NULL;
     CREATE INDEX outbound_jobs_rc_message_id ON outbound_jobs (rc_message_id) WHERE rc_message_id IS NOT NULL;
     CREATE INDEX outbound_jobs_received_at ON outbound_jobs (received_at);`,
  ],
};

export const pgInboundMigration: PgMigration = {
  module: "inbound",
  steps: [
    `CREATE TABLE inbound_sync (
       extension TEXT PRIMARY KEY,
       sync_token TEXT NOT NULL,
       sync_time TEXT,
       last_full_sync_at BIGINT,
       updated_at BIGINT NOT NULL
     );
     CREATE TABLE inbound_faxes (
       id TEXT PRIMARY KEY,
       extension TEXT NOT NULL,
       rc_message_id TEXT NOT NULL,
       state TEXT NOT NULL CHECK (state IN ('discovered','delivered','dead')),
       attempts INTEGER NOT NULL DEFAULT 0,
       next_attempt_at BIGINT NOT NULL,
       lease_until BIGINT,
       lease_owner TEXT,
       message TEXT NOT NULL,
       route TEXT,
       mail_message_id TEXT NOT NULL,
       discovered_at BIGINT NOT NULL,
       delivered_at BIGINT,
       last_error TEXT,
       updated_at BIGINT NOT NULL,
       UNIQUE (extension, rc_message_id)
     );
     CREATE INDEX inbound_faxes_due ON inbound_faxes (state, next_attempt_at);
     CREATE INDEX inbound_faxes_rc_message_id ON inbound_faxes (rc_message_id);
     CREATE TABLE inbound_kv (
       key TEXT PRIMARY KEY,
       value TEXT NOT NULL,
       updated_at BIGINT NOT NULL
     );`,
  ],
};

export const pgDocumentMigration: PgMigration = {
  module: "documents",
  steps: [
    // A document is its chunks in order; `document_heads` says it is complete (size, chunk count), so a
    // reader never sees a half-written document and an interrupted write leaves only chunks to sweep.
    `CREATE TABLE document_chunks (
       key TEXT NOT NULL,
       seq INTEGER NOT NULL,
       bytes BYTEA NOT NULL,
       PRIMARY KEY (key, seq)
     );
     CREATE TABLE document_heads (
       key TEXT PRIMARY KEY,
       size BIGINT NOT NULL,
       chunks INTEGER NOT NULL,
       created_at BIGINT NOT NULL
     );`,
  ],
};

export const pgLeadershipMigration: PgMigration = {
  module: "leadership",
  steps: [
    `CREATE TABLE leader_leases (
       role TEXT PRIMARY KEY,
       owner TEXT NOT NULL,
       lease_until BIGINT NOT NULL,
       term BIGINT NOT NULL,
       updated_at BIGINT NOT NULL
     );`,
  ],
};

export const pgWebMigration: PgMigration = {
  module: "web",
  steps: [
    `CREATE TABLE web_sessions (
       id_hash TEXT PRIMARY KEY,
       username TEXT NOT NULL,
       credential TEXT NOT NULL,
       created_at BIGINT NOT NULL,
       expires_at BIGINT NOT NULL
     );
     CREATE TABLE api_idempotency (
       token TEXT NOT NULL,
       key TEXT NOT NULL,
       body_hash TEXT NOT NULL,
       job_id TEXT NOT NULL,
       status INTEGER,
       response TEXT,
       created_at BIGINT NOT NULL,
       PRIMARY KEY (token, key)
     );
     CREATE TABLE web_link_uses (
       link_hash TEXT PRIMARY KEY,
       used_at BIGINT NOT NULL
     );`,
  ],
};

export const pgQuotaMigration: PgMigration = {
  module: "quota",
  steps: [
    // The hourly quota ledger (./quota.ts): one row per key of a take; a seeded scope is never seeded again.
    `CREATE TABLE quota_usage (
       take_id TEXT NOT NULL,
       key TEXT NOT NULL,
       at BIGINT NOT NULL,
       n INTEGER NOT NULL
     );
     CREATE INDEX quota_usage_key_at ON quota_usage (key, at);
     CREATE INDEX quota_usage_take ON quota_usage (take_id);
     CREATE INDEX quota_usage_at ON quota_usage (at);
     CREATE TABLE quota_seeds (
       scope TEXT PRIMARY KEY,
       at BIGINT NOT NULL
     );`,
  ],
};

export const PG_MIGRATIONS: readonly PgMigration[] = [pgOutboundMigration, pgInboundMigration, pgDocumentMigration, pgLeadershipMigration, pgWebMigration, pgQuotaMigration];
