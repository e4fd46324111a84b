import type { SqlDriver } from './sql-driver.js';
import { StorageError } from './storage.js';

/** One schema step. Versions are applied in order, each once; a released migration is never edited, only followed. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The schema, as numbered steps run identically on PGlite and PostgreSQL (design.md §2: same SQL on both). Only SQL
 * that PostgreSQL 15 (Debian's server) and PGlite's PostgreSQL 18 both accept.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema: assertions, authorizations, PAS submissions, reviewer decisions, hook audit, feedback',
    sql: `
CREATE TABLE storage_meta (
  key text PRIMARY KEY,
  value text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- CRD coverage assertions (design.md §2; CRD [found-11]): facts are clinical, kept for DTR pre-fill and disputes.
CREATE TABLE crd_assertions (
  assertion_id text PRIMARY KEY,
  created_at timestamptz NOT NULL,
  payer text NOT NULL,
  policy_id text,
  policy_version text,
  patient_id text NOT NULL,
  order_ref text NOT NULL,
  hook_instance text NOT NULL,
  outcome text NOT NULL,
  facts jsonb NOT NULL,
  missing_facts jsonb NOT NULL,
  authorization_number text
);
CREATE INDEX crd_assertions_patient ON crd_assertions (patient_id, created_at);

-- Every authorization number PriorPath issued, whichever path issued it.
CREATE TABLE authorizations (
  number text PRIMARY KEY,
  payer text NOT NULL,
  source text NOT NULL CHECK (source IN ('crd', 'pas', 'review')),
  assertion_id text,
  submission_id text,
  start_date date NOT NULL,
  end_date date NOT NULL CHECK (end_date >= start_date),
  issued_at timestamptz NOT NULL
);

-- PAS $submit requests (idempotent on the request Bundle identifier) and their current answer.
CREATE TABLE pas_submissions (
  id text PRIMARY KEY,
  bundle_identifier text NOT NULL UNIQUE,
  request_hash text NOT NULL,
  payer text NOT NULL,
  policy_id text,
  policy_version text,
  claim_identifiers jsonb NOT NULL,
  patient_identifiers jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('approved', 'denied', 'pended', 'partial')),
  review_action text NOT NULL CHECK (review_action IN ('A1', 'A3', 'A4')),
  needed jsonb NOT NULL,
  pre_auth_ref text,
  pre_auth_start date,
  pre_auth_end date,
  -- json, not jsonb: the documents keep their key order and number forms, so a replay returns the same text.
  claim_response json NOT NULL,
  response_bundle json NOT NULL,
  request_bundle json NOT NULL,
  detail jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX pas_submissions_pended ON pas_submissions (created_at) WHERE review_action = 'A4';
CREATE INDEX pas_submissions_pre_auth_ref ON pas_submissions (pre_auth_ref);

-- Clinical reviewers' decisions on pended requests: who, when, why (append-only).
CREATE TABLE review_decisions (
  id bigserial PRIMARY KEY,
  submission_id text NOT NULL REFERENCES pas_submissions (id),
  decision text NOT NULL CHECK (decision IN ('approve', 'deny')),
  reviewer text NOT NULL,
  reason text NOT NULL,
  decided_at timestamptz NOT NULL,
  authorization_number text
);
CREATE INDEX review_decisions_submission ON review_decisions (submission_id, id);

-- One line per hook call (CRD [found-37]): ids, a patient id hash, status, outcome, latency. Never clinical content.
CREATE TABLE hook_audit (
  id bigserial PRIMARY KEY,
  request_id text NOT NULL,
  at timestamptz NOT NULL,
  service text NOT NULL,
  hook_instance text NOT NULL,
  client_iss text,
  patient_id_hash text NOT NULL,
  status integer NOT NULL,
  outcome text NOT NULL,
  latency_ms double precision NOT NULL
);
CREATE INDEX hook_audit_at ON hook_audit (at);

-- CDS Hooks feedback, idempotent on its natural key.
CREATE TABLE feedback (
  service text NOT NULL,
  card text NOT NULL,
  outcome text NOT NULL,
  outcome_timestamp text NOT NULL,
  accepted_suggestions jsonb NOT NULL,
  override_reason jsonb,
  received_at timestamptz NOT NULL,
  PRIMARY KEY (service, card, outcome, outcome_timestamp)
);
`,
  },
  {
    version: 2,
    name: 'JWT replay record shared by replicas; payer FHIR API access log',
    sql: `
-- JWT ids already accepted (CDS client JWTs, payer client assertions) until they expire: a replay is refused by
-- whichever replica it reaches. Epoch milliseconds, compared with the verifier's own clock.
CREATE TABLE jwt_replay (
  issuer text NOT NULL,
  jti text NOT NULL,
  expires_at_ms bigint NOT NULL,
  PRIMARY KEY (issuer, jti)
);
CREATE INDEX jwt_replay_expires ON jwt_replay (expires_at_ms);

-- One line per payer FHIR API call (design.md §8): client, operation, resource ids, outcome. Never clinical content.
CREATE TABLE api_access_log (
  id bigserial PRIMARY KEY,
  request_id text NOT NULL,
  at timestamptz NOT NULL,
  client_id text,
  operation text NOT NULL,
  resource_ids jsonb NOT NULL,
  status integer NOT NULL,
  outcome text NOT NULL
);
CREATE INDEX api_access_log_at ON api_access_log (at);
`,
  },
  {
    version: 3,
    name: 'one authorization record per order with its history',
    sql: `
-- One record per (payer, patient, order, drug) that CRD, DTR, PAS and the reviewer share (design.md §8): the unique
-- key is what makes "one decision per order" hold across replicas.
CREATE TABLE order_authorizations (
  id text PRIMARY KEY,
  payer text NOT NULL,
  patient_id text NOT NULL,
  order_ref text NOT NULL,
  drug text NOT NULL,
  state text NOT NULL CHECK (state IN ('auth-needed', 'not-covered', 'pended', 'approved', 'denied')),
  policy_id text,
  reason text NOT NULL,
  authorization_number text,
  auth_start date,
  auth_end date,
  submission_id text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  UNIQUE (payer, patient_id, order_ref, drug)
);
CREATE INDEX order_authorizations_submission ON order_authorizations (submission_id);

-- Every change of an order's state: who, when, why (append-only).
CREATE TABLE order_authorization_events (
  id bigserial PRIMARY KEY,
  order_id text NOT NULL REFERENCES order_authorizations (id),
  at timestamptz NOT NULL,
  source text NOT NULL CHECK (source IN ('crd', 'dtr', 'pas', 'review')),
  actor text NOT NULL,
  state text NOT NULL,
  reason text NOT NULL,
  authorization_number text,
  submission_id text,
  assertion_id text
);
CREATE INDEX order_authorization_events_order ON order_authorization_events (order_id, id);

-- A repeat of a pended request under another Bundle identifier collapses into it: its identifiers name the pended
-- request from then on (a resend replays it, $inquire finds it).
CREATE TABLE pas_submission_aliases (
  bundle_identifier text PRIMARY KEY,
  submission_id text NOT NULL REFERENCES pas_submissions (id),
  request_hash text NOT NULL,
  claim_identifiers jsonb NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX pas_submission_aliases_submission ON pas_submission_aliases (submission_id);

ALTER TABLE authorizations DROP CONSTRAINT IF EXISTS authorizations_source_check;
ALTER TABLE authorizations ADD CONSTRAINT authorizations_source_check CHECK (source IN ('crd', 'dtr', 'pas', 'review'));
`,
  },
  {
    version: 4,
    name: 'PAS Subscriptions (R4 backport): subscriptions, decision events, durable notification outbox',
    sql: `
-- Rest-hook Subscriptions to the PAS topic (R4 Subscriptions Backport), as the client created them.
CREATE TABLE subscriptions (
  id text PRIMARY KEY,
  owner text,
  status text NOT NULL CHECK (status IN ('requested', 'active', 'error', 'off')),
  topic text NOT NULL,
  filters jsonb NOT NULL,
  endpoint text NOT NULL,
  headers jsonb NOT NULL,
  content text NOT NULL CHECK (content IN ('empty', 'id-only', 'full-resource')),
  resource json NOT NULL,
  events_count bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

-- A pended request was decided: written in the decision's transaction, so no decision goes unnotified.
CREATE TABLE pas_events (
  id bigserial PRIMARY KEY,
  submission_id text NOT NULL REFERENCES pas_submissions (id),
  at timestamptz NOT NULL,
  dispatched boolean NOT NULL DEFAULT false
);
CREATE INDEX pas_events_pending ON pas_events (id) WHERE NOT dispatched;

-- The outbox: one row per notification to send (handshake or event), retried with backoff until delivered.
CREATE TABLE subscription_deliveries (
  id bigserial PRIMARY KEY,
  subscription_id text NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('handshake', 'event-notification')),
  event_number bigint,
  submission_id text,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  delivered_at timestamptz,
  last_error text,
  created_at timestamptz NOT NULL
);
CREATE INDEX subscription_deliveries_due ON subscription_deliveries (next_attempt_at) WHERE delivered_at IS NULL;
`,
  },
  {
    version: 5,
    name: 'DTR QuestionnaireResponses as received, each under the id the payer gave it',
    sql: `
-- The response as answered with the determination returned (ext-coverage-information); read back by id.
CREATE TABLE questionnaire_responses (
  id text PRIMARY KEY,
  received_at timestamptz NOT NULL,
  assertion_id text NOT NULL,
  patient_id text,
  order_ref text,
  resource jsonb NOT NULL
);
`,
  },
  {
    version: 6,
    name: 'the payer API client that filed each PAS request and DTR response; PAS idempotency per client',
    sql: `
-- Who filed it (design.md §8 "Who may call"): with PAYER_API_AUTH=required only that client reads it back. '' = no
-- client (open mode, or filed before this step and not named by the access log below).
ALTER TABLE pas_submissions ADD COLUMN client_id text NOT NULL DEFAULT '';
ALTER TABLE pas_submission_aliases ADD COLUMN client_id text NOT NULL DEFAULT '';
ALTER TABLE questionnaire_responses ADD COLUMN client_id text NOT NULL DEFAULT '';

-- A Bundle identifier names one request of one client: another client's request under the same identifier is its
-- own (it must not replay, or learn of, the first). Led by bundle_identifier, so lookups by it alone use the index.
ALTER TABLE pas_submissions DROP CONSTRAINT pas_submissions_bundle_identifier_key;
ALTER TABLE pas_submissions ADD CONSTRAINT pas_submissions_bundle_identifier_client_key UNIQUE (bundle_identifier, client_id);
ALTER TABLE pas_submission_aliases DROP CONSTRAINT pas_submission_aliases_pkey;
ALTER TABLE pas_submission_aliases ADD PRIMARY KEY (bundle_identifier, client_id);

-- What was filed before: the access log names the client of each answered call (request Bundle identifier, or the
-- created response's Location). Only where exactly one client is named; the rest stays '' (readable by any client).
CREATE TEMPORARY TABLE submit_clients ON COMMIT DROP AS
  SELECT r.id AS resource_id, min(l.client_id) AS client_id
  FROM api_access_log l, jsonb_array_elements_text(l.resource_ids) AS r(id)
  WHERE l.operation = 'POST /Claim/$submit' AND l.status = 200 AND l.client_id IS NOT NULL
  GROUP BY r.id HAVING count(DISTINCT l.client_id) = 1;
UPDATE pas_submissions s SET client_id = f.client_id FROM submit_clients f
WHERE f.resource_id = 'Bundle?identifier=' || CASE WHEN left(s.bundle_identifier, 1) = '|' THEN substr(s.bundle_identifier, 2) ELSE s.bundle_identifier END;
UPDATE pas_submission_aliases a SET client_id = f.client_id FROM submit_clients f
WHERE f.resource_id = 'Bundle?identifier=' || CASE WHEN left(a.bundle_identifier, 1) = '|' THEN substr(a.bundle_identifier, 2) ELSE a.bundle_identifier END;
UPDATE questionnaire_responses q SET client_id = f.client_id
FROM (
  SELECT r.id AS resource_id, min(l.client_id) AS client_id
  FROM api_access_log l, jsonb_array_elements_text(l.resource_ids) AS r(id)
  WHERE l.operation = 'POST /QuestionnaireResponse' AND l.status = 201 AND l.client_id IS NOT NULL
  GROUP BY r.id HAVING count(DISTINCT l.client_id) = 1
) f
WHERE f.resource_id = 'QuestionnaireResponse/' || q.id;
`,
  },
  {
    version: 7,
    name: 'subscription heartbeats: when PriorPath last sent each subscription a notification',
    sql: `
-- R4 Subscriptions Backport heartbeat-period: a subscription that heard nothing for its period gets a heartbeat. The
-- time of the last notification sent (handshake, event, heartbeat) is shared, so replicas send one heartbeat between them.
ALTER TABLE subscriptions ADD COLUMN last_notified_at timestamptz;
`,
  },
  {
    version: 8,
    name: 'subscription events kept for $events; notifications held while their subscription is in error',
    sql: `
-- A subscription in error still has its events numbered; their notifications wait (held) until it is active again,
-- then are sent. Held rows are not due, so the due index leaves them out.
ALTER TABLE subscription_deliveries ADD COLUMN held boolean NOT NULL DEFAULT false;
DROP INDEX subscription_deliveries_due;
CREATE INDEX subscription_deliveries_due ON subscription_deliveries (next_attempt_at) WHERE delivered_at IS NULL AND NOT held;
-- $events reads a subscription's events by number.
CREATE INDEX subscription_deliveries_events ON subscription_deliveries (subscription_id, event_number) WHERE event_number IS NOT NULL;
`,
  },
  {
    version: 9,
    name: 'PAS Claim Updates: cancelled requests and items, a revision per request, the updates applied to each',
    sql: `
-- A request its submitter cancelled (PAS Claim Update, certificationType 3) is 'cancelled', its summary code X12 306 C.
ALTER TABLE pas_submissions DROP CONSTRAINT IF EXISTS pas_submissions_status_check;
ALTER TABLE pas_submissions ADD CONSTRAINT pas_submissions_status_check CHECK (status IN ('approved', 'denied', 'pended', 'partial', 'cancelled'));
ALTER TABLE pas_submissions DROP CONSTRAINT IF EXISTS pas_submissions_review_action_check;
ALTER TABLE pas_submissions ADD CONSTRAINT pas_submissions_review_action_check CHECK (review_action IN ('A1', 'A3', 'A4', 'C'));
-- Every change of a stored request (decision, settling, update) moves its revision on: a change computed from an
-- older read (a reviewer deciding while an update cancels the item) is refused instead of overwriting.
ALTER TABLE pas_submissions ADD COLUMN revision integer NOT NULL DEFAULT 0;

-- The Claim Updates applied to a request, each as received; a resend (same client, identifier, content) is answered.
CREATE TABLE pas_submission_updates (
  id bigserial PRIMARY KEY,
  submission_id text NOT NULL REFERENCES pas_submissions (id),
  client_id text NOT NULL DEFAULT '',
  bundle_identifier text NOT NULL,
  request_hash text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('update', 'cancel')),
  claim_identifiers jsonb NOT NULL,
  request_bundle json NOT NULL,
  created_at timestamptz NOT NULL,
  UNIQUE (bundle_identifier, client_id, request_hash)
);
CREATE INDEX pas_submission_updates_submission ON pas_submission_updates (submission_id, id);
`,
  },
  {
    version: 10,
    name: 'a key per audit and access log line, so a write retried after a COMMIT of unknown outcome stores the line once',
    sql: `
-- Lines written before this migration have none (NULLs do not collide).
ALTER TABLE hook_audit ADD COLUMN line_id text;
CREATE UNIQUE INDEX hook_audit_line ON hook_audit (line_id);
ALTER TABLE api_access_log ADD COLUMN line_id text;
CREATE UNIQUE INDEX api_access_log_line ON api_access_log (line_id);
`,
  },
  {
    version: 11,
    name: 'a key per order event, so an order change retried after a COMMIT of unknown outcome is applied once',
    sql: `
-- Events written before this migration have none (NULLs do not collide).
ALTER TABLE order_authorization_events ADD COLUMN event_id text;
CREATE UNIQUE INDEX order_authorization_events_event ON order_authorization_events (event_id);
`,
  },
  {
    version: 12,
    name: 'the date each CRD assertion judged its order on',
    sql: `
-- The order date CRD (or a DTR determination) judged the order on (design.md §7 "One date per order"): a DTR package
-- or response that names only the coverage-assertion-id is judged on it too. Assertions recorded before have none
-- (NULL), and are read as before. Text, as the order wrote it to the day: an EHR's impossible date (2026-02-30) that
-- CRD judged on must not refuse the write-behind batch it rides in.
ALTER TABLE crd_assertions ADD COLUMN order_date text;
`,
  },
  {
    version: 13,
    name: 'indexes for every lookup the payer API, the reviewer and the notifier make, so none scans as PAS data grows',
    sql: `
-- PAS $inquire, a Claim Update finding its request and a $submit replay find requests by any identifier the request,
-- its collapsed repeats or its decisions carry (SqlStorage.findPasSubmissions). The identifiers are JSON arrays of
-- 'system|value' strings: GIN (jsonb_ops) answers "holds any of these" (?|) from the index.
CREATE INDEX pas_submissions_claim_identifiers ON pas_submissions USING gin (claim_identifiers);
CREATE INDEX pas_submissions_patient_identifiers ON pas_submissions USING gin (patient_identifiers);
CREATE INDEX pas_submission_aliases_claim_identifiers ON pas_submission_aliases USING gin (claim_identifiers);
-- A reviewer's authorization number is a preAuthRef $inquire may name.
CREATE INDEX review_decisions_authorization_number ON review_decisions (authorization_number) WHERE authorization_number IS NOT NULL;
-- A subscription's undelivered notifications, held or released when its status changes.
CREATE INDEX subscription_deliveries_undelivered ON subscription_deliveries (subscription_id) WHERE delivered_at IS NULL;
`,
  },
  {
    version: 14,
    name: "an order's records found by the order alone, so a DTR response is checked against its order's patient",
    sql: `
-- A DTR QuestionnaireResponse names its order (qr-context) apart from its patient (subject): the patients whose records
-- hold that order (SqlStorage.orderPatientIds) are found from the order, not by scanning the payer's orders (the
-- record's unique key leads with the patient).
CREATE INDEX order_authorizations_order ON order_authorizations (order_ref, payer, drug);
`,
  },
  {
    version: 15,
    name: "which of a CRD assertion's facts the order's earlier DTR answers gave",
    sql: `
-- A signing that fills what the record leaves unknown from the order's earlier DTR determination (decide-orders.ts
-- evaluateOrder) names those facts (a JSON array of fact names): they are the clinician's answers, not what signing
-- read from the record, so a later response is never compared with them (design.md §7 "Answers and the record").
-- NULL when none did, and on assertions recorded before: read as none, as before.
ALTER TABLE crd_assertions ADD COLUMN answered_facts jsonb;
`,
  },
  {
    version: 16,
    name: 'the last day of the Coverage each CRD assertion judged its order under',
    sql: `
-- The last day of the Coverage CRD judged the order under (design.md §4 "Payer": no approval outlives the Coverage):
-- a DTR response, which names its Coverage only by reference, ends an approval for the order no later. NULL for a
-- Coverage with no end, and on assertions recorded before: no cap known, as before. Text, as the order date is.
ALTER TABLE crd_assertions ADD COLUMN coverage_end text;
`,
  },
  {
    version: 17,
    name: "the stored PAS requests answering an approval for an order, found by their items",
    sql: `
-- A cancelled PAS request withdraws its order's approval only when no other stored request still answers it (an item
-- A1 with the number, for that order; design.md §8 "Claim updates"), decided in the update's transaction
-- (SqlStorage.updatePasSubmission). That item may be any of the request's items and its patient may carry no
-- identifier, so the requests are found by their items: "items containing this one" (@>) from the index.
CREATE INDEX pas_submissions_items ON pas_submissions USING gin ((detail -> 'items') jsonb_path_ops);
`,
  },
  {
    version: 18,
    name: "the reviewer's Decided list read by decision time",
    sql: `
-- The workbench's Decided list (GET /review/decided, design.md §8 "The reviewer API") reads the decisions of the last
-- days, newest first: found through this index, never a scan of every decision ever made.
CREATE INDEX review_decisions_decided_at ON review_decisions (decided_at DESC, id DESC);
`,
  },
  {
    version: 19,
    name: "the start each CRD assertion's order stated, and the Coverage it was judged under",
    sql: `
-- The start the order stated when CRD judged it (never its authoredOn): a DTR package asked by the assertion alone and
-- a PAS copy of the order that drops its start end the recency windows on it (design.md §6 "Order date"). NULL when
-- the order stated none, and on assertions recorded before: no upper end, as before. Text, as the order date is.
ALTER TABLE crd_assertions ADD COLUMN order_start text;
-- The Coverage (Coverage/<id>) whose last day coverage_end is: a DTR response's approval is issued under it and
-- capped at its end (design.md §4 "Payer"). NULL when the Coverage had no id, and on
-- assertions recorded before: the end caps as before.
ALTER TABLE crd_assertions ADD COLUMN coverage_ref text;
`,
  },
  {
    version: 20,
    name: "what a reviewer approved, kept on the order's approving event",
    sql: `
-- What a reviewer's approval was given for (the reviewed PAS item's criteria, asked amounts and Claim quantity) lives
-- with the order's decision, on its approving event, not on the request's item, which a Claim Update of that request
-- changes while the approval stands for what the reviewer saw (design.md §8 "What an approval covers"; review-diff
-- s45 H1). NULL on every other event.
ALTER TABLE order_authorization_events ADD COLUMN approved_item jsonb;
-- Reviewers' approvals given before: taken from the reviewed item, or from what it kept of the approval while a Claim
-- Update had decided it again without approving it (its approvedBefore, stored from s45 until this version, read only
-- while the item is not A1, as that version's reader did: an item a reviewer approved again after the update carries
-- a stale approvedBefore; review-diff s46 F0). An item stored before its asked amounts or quantity were kept leaves
-- them out, and they are read as then (every fact compared; the quantity from the reviewed request).
UPDATE order_authorization_events e SET approved_item = (
  SELECT CASE WHEN i ? 'approvedBefore' AND (i ->> 'reviewAction') IS DISTINCT FROM 'A1' THEN i -> 'approvedBefore'
    ELSE jsonb_build_object('criteria', coalesce(i -> 'criteria', '[]'::jsonb))
    || CASE WHEN i ? 'askedAmounts' THEN jsonb_build_object('askedAmounts', i -> 'askedAmounts') ELSE '{}'::jsonb END
    || CASE WHEN i ? 'quantity' THEN jsonb_build_object('quantity', i -> 'quantity') ELSE '{}'::jsonb END END
  FROM order_authorizations o, pas_submissions s, jsonb_array_elements(s.detail -> 'items') i
  WHERE o.id = e.order_id AND s.id = e.submission_id
    AND i -> 'order' @> jsonb_build_object('payer', o.payer, 'patientId', o.patient_id, 'orderRef', o.order_ref, 'drug', o.drug)
  LIMIT 1)
WHERE e.state = 'approved' AND e.source = 'review' AND e.submission_id IS NOT NULL;
`,
  },
];

/** Advisory lock key taken while migrating, so replicas starting together migrate one after another. */
export const MIGRATION_LOCK_KEY = 4_717_302_915;

/**
 * Brings the schema up to date in one transaction under a transaction-scoped advisory lock: a second replica
 * starting at the same moment waits, then finds nothing left to do. Refuses a database whose schema is newer than
 * this build (a rolled-back deployment must not write into a schema it does not know).
 */
export async function migrate(driver: SqlDriver, opts: { migrations?: readonly Migration[]; schema?: string } = {}): Promise<number[]> {
  const ordered = [...(opts.migrations ?? MIGRATIONS)].sort((a, b) => a.version - b.version);
  return driver.transaction(async (tx) => {
    // Through exec, which is unbounded (postgres-driver.ts STATEMENT_ANSWER_MS), and with the server's statement bound
    // off for this transaction only (STATEMENT_CANCEL_MARGIN_MS): a replica waits as long as another's migrations
    // take, and a migration rewriting a large table is not cancelled.
    await tx.exec('SET LOCAL statement_timeout = 0');
    await tx.exec(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    if (opts.schema) await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${opts.schema}`);
    await tx.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
    const known = ordered.at(-1)?.version ?? 0;
    const newest = Math.max(0, ...done);
    if (newest > known) {
      throw new StorageError(`database schema version ${newest} is newer than this build knows (${known}); deploy the newer build`);
    }
    const applied: number[] = [];
    for (const m of ordered) {
      if (done.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
  });
}
