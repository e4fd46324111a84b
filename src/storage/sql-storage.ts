import { randomUUID } from 'node:crypto';
import type { SqlDriver, SqlSession } from './sql-driver.js';
import type {
  ApiAccessRecord,
  AnsweredApproval,
  ApprovalWithdrawal,
  AssertionRecord,
  AuthorizationRecord,
  CreatePasSubmissionOptions,
  DecidedResponseInput,
  DeterminationInput,
  FeedbackRecord,
  QuestionnaireResponseRecord,
  GuardedOrderChange,
  ApprovedItem,
  HookAuditRecord,
  IssuedAuthorization,
  JtiRecord,
  NewPasSubmission,
  PasUpdateInput,
  OrderEvent,
  OrderKey,
  OrderRecord,
  PasQuery,
  PasSubmission,
  PasSubmissionAlias,
  BundleName,
  DueDelivery,
  SubscriptionEvent,
  SubscriptionQuery,
  SubscriptionRecord,
  SubscriptionStatus,
  PendedSummary,
  ReviewDecision,
  ReviewDecisionInput,
  Storage,
} from './storage.js';
import { StorageError, StorageUnavailableError, SUBSCRIPTION_PAGE } from './storage.js';
import { AccessBacklog } from './access-backlog.js';
import { WriteBatcher } from './write-batcher.js';
import { WriteBehind } from './write-behind.js';
import { noticingWriteRefusals } from './write-refusal.js';
import type { AppliedChange, BehindItem } from './write-behind.js';
import type { Logger } from '../logger.js';

/** Timestamps and dates are read as text so that both drivers give the same strings (no Date, no local time). */
const ts = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const day = (col: string) => `to_char(${col}, 'YYYY-MM-DD')`;
/** JSON goes in as text and is cast in SQL: one encoding for both drivers, whatever their parameter serializers. */
const json = (v: unknown) => JSON.stringify(v ?? null);

/** A new PAS submission's row, idempotent on its client's Bundle identifier: parameters $1–$20 (submissionParams). */
const INSERT_SUBMISSION = `INSERT INTO pas_submissions (id, bundle_identifier, request_hash, payer, policy_id, policy_version, claim_identifiers,
    patient_identifiers, status, review_action, needed, pre_auth_ref, pre_auth_start, pre_auth_end, claim_response, response_bundle,
    request_bundle, detail, created_at, updated_at, client_id)
  VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9, $10, $11::text::jsonb, $12, $13::date, $14::date,
    $15::text::json, $16::text::json, $17::text::json, $18::text::jsonb, $19::timestamptz, $19::timestamptz, $20)
  ON CONFLICT (bundle_identifier, client_id) DO NOTHING`;

/**
 * The advisory-lock class of a (client, Bundle identifier) name (two-key advisory locks: a space apart from the
 * migration lock's one-key MIGRATION_LOCK_KEY).
 */
const BUNDLE_NAME_LOCK_CLASS = 48;

/**
 * Takes, for the rest of `tx`, the lock on one client's Bundle identifier. design.md §8 "Submit and inquire": the
 * same identifier with other content is a 409. An identifier can name a request from three tables (its own row in
 * pas_submissions, an alias of a request it collapsed into, a Claim Update): a unique index holds only within one, so
 * every writer of a name takes this lock first and then looks in all three (`otherNameSql`). Without it, two replicas
 * filed one identifier as a new request and as an alias of another patient's request at once, and `$inquire` by it
 * answered both. Taken before any order's row lock, so it cannot deadlock with them.
 */
async function lockBundleName(tx: SqlSession, bundleIdentifier: string, client: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1::integer, hashtext($2::text))', [BUNDLE_NAME_LOCK_CLASS, `${client}\n${bundleIdentifier}`]);
}

/**
 * The request a (Bundle identifier $1, client $2) already names in any of the three tables, if one does, with the
 * content's hash that named it (the request's own, or the alias's or Claim Update's).
 */
const NAMED_SQL = `SELECT id AS submission_id, request_hash FROM pas_submissions WHERE bundle_identifier = $1 AND client_id = $2
  UNION ALL SELECT submission_id, request_hash FROM pas_submission_aliases WHERE bundle_identifier = $1 AND client_id = $2
  UNION ALL SELECT submission_id, request_hash FROM pas_submission_updates WHERE bundle_identifier = $1 AND client_id = $2
  LIMIT 1`;

/** What a client's Bundle identifier names already, if anything; call under lockBundleName. */
async function namedBy(tx: SqlSession, bundleIdentifier: string, client: string): Promise<BundleName | undefined> {
  const row = (await tx.query<{ submission_id: string; request_hash: string }>(NAMED_SQL, [bundleIdentifier, client]))[0];
  return row ? { submissionId: row.submission_id, requestHash: row.request_hash } : undefined;
}

/** Whether a client's Bundle identifier names a request already; call under lockBundleName. */
async function isNamed(tx: SqlSession, bundleIdentifier: string, client: string): Promise<boolean> {
  return (await namedBy(tx, bundleIdentifier, client)) !== undefined;
}

/** The parameters of INSERT_SUBMISSION, in order. */
function submissionParams(s: NewPasSubmission): unknown[] {
  return [
    s.id, s.bundleIdentifier, s.requestHash, s.payer, s.policyId ?? null, s.policyVersion ?? null,
    json(s.claimIdentifiers), json(s.patientIdentifiers), s.status, s.reviewAction, json(s.needed), s.preAuthRef ?? null,
    s.preAuthPeriod?.start ?? null, s.preAuthPeriod?.end ?? null, json(s.claimResponse), json(s.responseBundle),
    json(s.requestBundle), json(s.detail), s.createdAt, s.clientId ?? '',
  ];
}

const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

/** A statement and its parameters (SqlDriver.batch). */
type Step = { sql: string; params: unknown[] };

const BATCH_SQL = `
WITH assertions AS (
  INSERT INTO crd_assertions (assertion_id, created_at, payer, policy_id, policy_version, patient_id, order_ref, hook_instance, outcome, facts, missing_facts, authorization_number, order_date, answered_facts, coverage_end, order_start, coverage_ref)
  SELECT x.assertion_id, x.created_at, x.payer, x.policy_id, x.policy_version, x.patient_id, x.order_ref, x.hook_instance, x.outcome,
         coalesce(x.facts, '{}'::jsonb), coalesce(x.missing_facts, '[]'::jsonb), x.authorization_number, x.order_date, x.answered_facts, x.coverage_end, x.order_start, x.coverage_ref
  FROM jsonb_to_recordset($1::text::jsonb) AS x(assertion_id text, created_at timestamptz, payer text, policy_id text, policy_version text,
       patient_id text, order_ref text, hook_instance text, outcome text, facts jsonb, missing_facts jsonb, authorization_number text, order_date text,
       answered_facts jsonb, coverage_end text, order_start text, coverage_ref text)
  ON CONFLICT (assertion_id) DO UPDATE SET created_at = EXCLUDED.created_at, payer = EXCLUDED.payer, policy_id = EXCLUDED.policy_id,
    policy_version = EXCLUDED.policy_version, patient_id = EXCLUDED.patient_id, order_ref = EXCLUDED.order_ref,
    hook_instance = EXCLUDED.hook_instance, outcome = EXCLUDED.outcome, facts = EXCLUDED.facts,
    missing_facts = EXCLUDED.missing_facts, authorization_number = EXCLUDED.authorization_number, order_date = EXCLUDED.order_date,
    answered_facts = EXCLUDED.answered_facts, coverage_end = EXCLUDED.coverage_end, order_start = EXCLUDED.order_start,
    coverage_ref = EXCLUDED.coverage_ref
), authorizations_issued AS (
  INSERT INTO authorizations (number, payer, source, assertion_id, start_date, end_date, issued_at)
  SELECT x.number, x.payer, 'crd', x.assertion_id, x.start_date, x.end_date, x.issued_at
  FROM jsonb_to_recordset($2::text::jsonb) AS x(number text, payer text, assertion_id text, start_date date, end_date date, issued_at timestamptz)
  ON CONFLICT (number) DO NOTHING
)
INSERT INTO hook_audit (line_id, request_id, at, service, hook_instance, client_iss, patient_id_hash, status, outcome, latency_ms)
SELECT x.line_id, x.request_id, x.at, x.service, coalesce(x.hook_instance, ''), x.client_iss, coalesce(x.patient_id_hash, ''), x.status, x.outcome, x.latency_ms
FROM jsonb_to_recordset($3::text::jsonb) AS x(line_id text, request_id text, at timestamptz, service text, hook_instance text, client_iss text,
     patient_id_hash text, status integer, outcome text, latency_ms double precision)
ON CONFLICT (line_id) DO NOTHING`;

/**
 * Assertions written with their order's change (an approval at signing, Storage.applyOrderChange): after the changes
 * in the same transaction, each naming the approval its order's record now holds (looked up by the order's key in its
 * unique index, LATERAL so the planner cannot make it a join), whatever authorization the assertion was given. Its
 * authorization row is the change's own. A batch retried after a COMMIT of unknown outcome writes it once.
 */
const FOLLOWING_ASSERTIONS_SQL = `
INSERT INTO crd_assertions (assertion_id, created_at, payer, policy_id, policy_version, patient_id, order_ref, hook_instance, outcome, facts, missing_facts, authorization_number, order_date, answered_facts, coverage_end, order_start, coverage_ref)
SELECT x.assertion_id, x.created_at, x.payer, x.policy_id, x.policy_version, x.patient_id, x.order_ref, x.hook_instance, x.outcome,
       coalesce(x.facts, '{}'::jsonb), coalesce(x.missing_facts, '[]'::jsonb), o.authorization_number, x.order_date, x.answered_facts, x.coverage_end, x.order_start, x.coverage_ref
FROM jsonb_to_recordset($1::text::jsonb) AS x(assertion_id text, created_at timestamptz, payer text, policy_id text, policy_version text,
     patient_id text, order_ref text, hook_instance text, outcome text, facts jsonb, missing_facts jsonb, order_date text, answered_facts jsonb, coverage_end text,
     order_start text, coverage_ref text,
     k_payer text, k_patient_id text, k_order_ref text, k_drug text)
LEFT JOIN LATERAL (SELECT k.authorization_number FROM order_authorizations k
  WHERE k.payer = x.k_payer AND k.patient_id = x.k_patient_id AND k.order_ref = x.k_order_ref AND k.drug = x.k_drug AND k.state = 'approved' LIMIT 1) o ON true
ON CONFLICT (assertion_id) DO NOTHING`;

/** An assertion's columns as the batch statements' `jsonb_to_recordset` reads them (each step adds its own). */
function assertionRow(r: AssertionRecord) {
  return {
    assertion_id: r.assertionId,
    created_at: r.createdAt,
    payer: r.payer,
    policy_id: r.policyId,
    policy_version: r.policyVersion,
    patient_id: r.patientId,
    order_ref: r.orderRef,
    hook_instance: r.hookInstance,
    outcome: r.outcome,
    facts: r.facts ?? {},
    missing_facts: r.missingFacts ?? [],
    order_date: r.orderDate,
    // NULL when signing used no earlier answer (most assertions): read back as absent.
    answered_facts: r.answeredFacts?.length ? r.answeredFacts : undefined,
    coverage_end: r.coverageEnd,
    order_start: r.orderStart,
    coverage_ref: r.coverageRef,
  };
}

function followingAssertionsStep(list: { key: OrderKey; assertion: AssertionRecord }[]): Step {
  return {
    sql: FOLLOWING_ASSERTIONS_SQL,
    params: [
      json(
        list.map(({ key, assertion }) => {
          const row: Record<string, unknown> = assertionRow(assertion);
          row.k_payer = key.payer;
          row.k_patient_id = key.patientId;
          row.k_order_ref = key.orderRef;
          row.k_drug = key.drug;
          return row;
        }),
      ),
    ],
  };
}

/** Assertions (the last one per id wins), their authorizations and audit lines in one statement (BATCH_SQL). */
function assertionsStep(list: AssertionRecord[], audits: HookAuditRecord[]): Step {
  const a = [...new Map(list.map((r) => [r.assertionId, r])).values()];
  return {
    sql: BATCH_SQL,
    params: [
      json(
        a.map((r) => {
          const row: Record<string, unknown> = assertionRow(r);
          row.authorization_number = r.authorization?.number;
          return row;
        }),
      ),
      json(
        a
          .filter((r) => r.authorization)
          .map((r) => ({ number: r.authorization!.number, payer: r.payer, assertion_id: r.assertionId, start_date: r.authorization!.start, end_date: r.authorization!.end, issued_at: r.createdAt })),
      ),
      json(
        audits.map((r) => ({
          line_id: r.lineId ?? null,
          request_id: r.requestId,
          at: r.at,
          service: r.service,
          hook_instance: r.hookInstance,
          client_iss: r.clientIss,
          patient_id_hash: r.patientIdHash,
          status: r.status,
          outcome: r.outcome,
          latency_ms: r.latencyMs,
        })),
      ),
    ],
  };
}

/**
 * A JWT id is inserted, or its expired record renewed; a live record makes the statement return no row (a replay).
 * ON CONFLICT is atomic on the primary key, so of two replicas inserting the same id at once exactly one gets a row.
 */
/**
 * A JWT id's record, in one statement (one prepared statement, one round trip, its own implicit transaction):
 * - the insert succeeds, or replaces an expired record of the same id, and RETURNING says so; a replica inserting the
 *   same id at the same moment waits on the unique key and then finds it recorded (a replay, refused);
 * - its commit does not wait for the WAL flush (`set_config(..., true)`: this transaction only): the row is visible to
 *   every replica the moment it commits, and a database crash can forget at most the last few ids, which expire within
 *   minutes anyway;
 * - it deletes up to two expired records, oldest first, through the expiry index (rows another replica is deleting
 *   are skipped, not waited for): each call prunes more than it adds once ids expire, so the table stays as small as
 *   the ids alive, with no sweep reading it. Its own id is left to the upsert.
 */
const RECORD_JTI_SQL = `
WITH pruned AS (
  DELETE FROM jwt_replay d USING (
    SELECT issuer, jti FROM jwt_replay WHERE expires_at_ms <= $4::bigint AND (issuer, jti) <> ($1::text, $2::text)
    ORDER BY expires_at_ms LIMIT 2 FOR UPDATE SKIP LOCKED) x
  WHERE d.issuer = x.issuer AND d.jti = x.jti
)
INSERT INTO jwt_replay (issuer, jti, expires_at_ms)
SELECT $1::text, $2::text, $3::bigint FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unflushed
ON CONFLICT (issuer, jti) DO UPDATE SET expires_at_ms = EXCLUDED.expires_at_ms WHERE jwt_replay.expires_at_ms <= $4::bigint
RETURNING jti`;

/**
 * How long a payer API access-log line waits for others to share its statement (and its commit's WAL flush). The
 * line is written after its response, so nobody waits on it; a crash can lose this much of the log. Measured under
 * `$questionnaire-package` load: a commit per 20 ms kept the embedded database's thread in fsync a fifth of the time.
 */
const ACCESS_LOG_LINGER_MS = 100;

/** Readiness writes its probe row at most once per this while writes are refused (SqlStorage.ping). */
export const READINESS_WRITE_EVERY_MS = 2000;

/** How readiness probes writes while they are refused (SqlStorage.ping); the clock is the test's to move. */
export interface ReadinessProbeOptions {
  /** At most one probe write per this many milliseconds (default READINESS_WRITE_EVERY_MS). */
  writeEveryMs?: number;
  /** Milliseconds now (default Date.now). */
  now?: () => number;
}

const ACCESS_SQL = `
INSERT INTO api_access_log (line_id, request_id, at, client_id, operation, resource_ids, status, outcome)
SELECT x.line_id, x.request_id, x.at, x.client_id, x.operation, coalesce(x.resource_ids, '[]'::jsonb), x.status, x.outcome
FROM jsonb_to_recordset($1::text::jsonb) AS x(line_id text, request_id text, at timestamptz, client_id text, operation text, resource_ids jsonb,
     status integer, outcome text)
ON CONFLICT (line_id) DO NOTHING`;

const SUBMISSION_COLUMNS = `id, bundle_identifier, client_id, request_hash, payer, policy_id, policy_version, claim_identifiers, patient_identifiers,
  status, review_action, needed, pre_auth_ref, ${day('pre_auth_start')} AS pre_auth_start, ${day('pre_auth_end')} AS pre_auth_end,
  claim_response, response_bundle, request_bundle, detail, ${ts('created_at')} AS created_at, ${ts('updated_at')} AS updated_at, revision`;

interface SubmissionRow {
  id: string;
  bundle_identifier: string;
  client_id: string;
  request_hash: string;
  payer: string;
  policy_id: string | null;
  policy_version: string | null;
  claim_identifiers: string[];
  patient_identifiers: string[];
  status: PasSubmission['status'];
  review_action: PasSubmission['reviewAction'];
  needed: string[];
  pre_auth_ref: string | null;
  pre_auth_start: string | null;
  pre_auth_end: string | null;
  claim_response: Record<string, unknown>;
  response_bundle: Record<string, unknown>;
  request_bundle: Record<string, unknown>;
  detail: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  revision: number;
}

/**
 * Orders' guarded changes (design.md §8) in one statement, however many (one round trip and one plan per batch of
 * hooks, design.md §9): each upsert applies when its order has no record or its state is among that change's allowed
 * ones; an approval number already on the record is kept unless the change withdraws it, its period unless a reviewer's
 * approval widens it (`setsPeriod`, same number: LEAST start, GREATEST end, storage.ts `widenedPeriod`); the event and the issued
 * authorization are written only for the changes that applied. ON CONFLICT takes the row lock, so concurrent changes to one order, from any replica,
 * apply one after another and each sees the other's result. `$1` is a JSON array with one object per change, at most
 * one per order (a statement cannot change a row twice: applyOrderChangesIn splits the rest into later statements),
 * in the order the rows are to be locked. A change whose event is already stored (its `event_id`: the same change
 * written again after a COMMIT whose outcome was unknown) changes nothing and counts as applied, as it was; the unique
 * index on `event_id` refuses the event should the first attempt commit while this one runs. Returns the keys of the
 * orders whose change applied.
 */
const ORDER_CHANGES_SQL = `
WITH given AS (
  SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS x(i integer, id text, payer text, patient_id text, order_ref text, drug text, state text,
    policy_id text, reason text, authorization_number text, auth_start date, auth_end date, submission_id text, at timestamptz, from_states jsonb,
    source text, actor text, assertion_id text, withdraws boolean, sets_period boolean, event_id text, approved_item jsonb)
), c AS (
  -- A lookup per change in event_id's index, never a join: the planner cannot see how few changes $1 holds and,
  -- with the table's statistics unknown (embedded PGlite never analyzes), hashed the whole events table per batch.
  SELECT g.* FROM given g WHERE (SELECT e.id FROM order_authorization_events e WHERE e.event_id = g.event_id LIMIT 1) IS NULL
), up AS (
  INSERT INTO order_authorizations AS o (id, payer, patient_id, order_ref, drug, state, policy_id, reason, authorization_number, auth_start, auth_end,
    submission_id, created_at, updated_at)
  SELECT id, payer, patient_id, order_ref, drug, state, policy_id, reason, authorization_number, auth_start, auth_end, submission_id, at, at
  FROM c ORDER BY i
  ON CONFLICT (payer, patient_id, order_ref, drug) DO UPDATE SET
    state = EXCLUDED.state,
    policy_id = coalesce(EXCLUDED.policy_id, o.policy_id),
    reason = EXCLUDED.reason,
    authorization_number = CASE WHEN (SELECT g.withdraws FROM c g WHERE g.id = EXCLUDED.id) THEN NULL ELSE coalesce(o.authorization_number, EXCLUDED.authorization_number) END,
    auth_start = CASE WHEN (SELECT g.withdraws FROM c g WHERE g.id = EXCLUDED.id) THEN NULL WHEN o.authorization_number IS NULL THEN EXCLUDED.auth_start
      WHEN o.authorization_number = EXCLUDED.authorization_number AND (SELECT g.sets_period FROM c g WHERE g.id = EXCLUDED.id) THEN LEAST(o.auth_start, EXCLUDED.auth_start) ELSE o.auth_start END,
    auth_end = CASE WHEN (SELECT g.withdraws FROM c g WHERE g.id = EXCLUDED.id) THEN NULL WHEN o.authorization_number IS NULL THEN EXCLUDED.auth_end
      WHEN o.authorization_number = EXCLUDED.authorization_number AND (SELECT g.sets_period FROM c g WHERE g.id = EXCLUDED.id) THEN GREATEST(o.auth_end, EXCLUDED.auth_end) ELSE o.auth_end END,
    submission_id = coalesce(EXCLUDED.submission_id, o.submission_id),
    updated_at = EXCLUDED.updated_at
  WHERE o.state IN (SELECT jsonb_array_elements_text(g.from_states) FROM c g WHERE g.id = EXCLUDED.id)
  RETURNING o.id, o.payer, o.patient_id, o.order_ref, o.drug, o.authorization_number
), applied AS (
  SELECT up.id AS order_id, up.payer AS order_payer, up.authorization_number AS held_number, c.*
  FROM up JOIN c ON c.payer = up.payer AND c.patient_id = up.patient_id AND c.order_ref = up.order_ref AND c.drug = up.drug
), ev AS (
  INSERT INTO order_authorization_events (order_id, at, source, actor, state, reason, authorization_number, submission_id, assertion_id, event_id, approved_item)
  SELECT order_id, at, source, actor, state, reason, CASE WHEN state = 'approved' THEN held_number END, submission_id, assertion_id, event_id,
    CASE WHEN state = 'approved' THEN approved_item END
  FROM applied ORDER BY i
), issued AS (
  INSERT INTO authorizations (number, payer, source, assertion_id, submission_id, start_date, end_date, issued_at)
  SELECT authorization_number, order_payer, source, assertion_id, submission_id, auth_start, auth_end, at
  FROM applied WHERE authorization_number IS NOT NULL AND held_number = authorization_number ORDER BY i
  ON CONFLICT (number) DO NOTHING
)
SELECT i FROM applied
UNION ALL SELECT i FROM given g WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.i = g.i)`;

/** Qualified by `o.` (the order record's alias), so a statement may join other rows that have such columns. */
const ORDER_COLUMNS = `o.id, o.payer, o.patient_id, o.order_ref, o.drug, o.state, o.policy_id, o.reason, o.authorization_number,
  ${day('o.auth_start')} AS auth_start, ${day('o.auth_end')} AS auth_end, o.submission_id, ${ts('o.created_at')} AS created_at,
  ${ts('o.updated_at')} AS updated_at`;

interface OrderRow {
  id: string;
  payer: string;
  patient_id: string;
  order_ref: string;
  drug: string;
  state: OrderRecord['state'];
  policy_id: string | null;
  reason: string;
  authorization_number: string | null;
  auth_start: string | null;
  auth_end: string | null;
  submission_id: string | null;
  created_at: string;
  updated_at: string;
}

interface OrderEventRow {
  order_id: string;
  at: string;
  source: OrderEvent['source'];
  actor: string;
  state: OrderEvent['state'];
  reason: string;
  authorization_number: string | null;
  submission_id: string | null;
  assertion_id: string | null;
  approved_item?: ApprovedItem | null;
}

/** Thrown in a transaction to roll it back: the client already has a request waiting on the orders (`id`). */
class WaitingFound extends Error {
  constructor(readonly id: string) {
    super('a request of this client waits on these orders');
  }
}

/**
 * The oldest pended request of client $1 whose pended items name every order of $2 (waitingPattern), other than $3,
 * by the pended requests' index (the reviewer's queue: few rows), as Storage.findWaitingSubmission.
 */
const WAITING_SQL = `SELECT id FROM pas_submissions WHERE review_action = 'A4' AND client_id = $1 AND detail -> 'items' @> $2::text::jsonb
  AND id <> $3 ORDER BY created_at, id LIMIT 1`;

/** The JSON an A4 item naming each order contains (WAITING_SQL's $2). */
const waitingPattern = (orders: OrderKey[]) =>
  json(orders.map((k) => ({ reviewAction: 'A4', order: { payer: k.payer, patientId: k.patientId, orderRef: k.orderRef, drug: k.drug } })));

/** Thrown inside a transaction to roll it back when an order's change is refused. */
class OrderRefused extends Error {
  constructor(readonly key: OrderKey) {
    super('order change refused');
  }
}

/** Thrown inside a transaction to roll it back when the submission moved on meanwhile (revision, resend). */
class SubmissionMoved extends Error {
  constructor() {
    super('submission changed meanwhile');
  }
}

/**
 * The statements applying guarded order changes: one per round (the first change of each order, then the second, and
 * so on), each change's parameters tagged with its index in `changes`. Changes are applied in the order given; the
 * caller sorts them by order key so that replicas take row locks in the same order.
 */
function orderChangeSteps(changes: GuardedOrderChange[]): Step[] {
  const steps: Step[] = [];
  let pending = changes.map((change, i) => ({ change, i }));
  while (pending.length > 0) {
    const seen = new Set<string>();
    const round: typeof pending = [];
    const later: typeof pending = [];
    for (const p of pending) {
      const k = keyText(p.change.key);
      if (seen.has(k)) {
        later.push(p);
      } else {
        seen.add(k);
        round.push(p);
      }
    }
    steps.push({
      sql: ORDER_CHANGES_SQL,
      params: [
        json(
          round.map(({ change: { key, change: c, from, eventId }, i }) => {
            const approving = c.state === 'approved';
            return {
              i,
              id: randomUUID(),
              payer: key.payer,
              patient_id: key.patientId,
              order_ref: key.orderRef,
              drug: key.drug,
              state: c.state,
              policy_id: c.policyId ?? null,
              reason: c.reason,
              authorization_number: approving ? (c.authorization?.number ?? null) : null,
              auth_start: approving ? (c.authorization?.start ?? null) : null,
              auth_end: approving ? (c.authorization?.end ?? null) : null,
              submission_id: c.submissionId ?? null,
              at: c.at,
              from_states: from,
              source: c.source,
              actor: c.actor,
              assertion_id: c.assertionId ?? null,
              withdraws: c.withdrawsApproval === true,
              sets_period: approving && c.setsPeriod === true,
              approved_item: approving && c.approvedItem ? c.approvedItem : null,
              // Changes written in a caller's transaction (PAS, DTR, the reviewer) are not retried by storage: a key
              // made here serves them; queued and awaited changes carry theirs from before the first attempt.
              event_id: eventId ?? randomUUID(),
            };
          }),
        ),
      ],
    });
    pending = later;
  }
  return steps;
}

/** The change with its own key (GuardedOrderChange.eventId), given before its first attempt. */
const keyedChange = (c: GuardedOrderChange): GuardedOrderChange => (c.eventId ? c : { ...c, eventId: randomUUID() });

/** Which of `count` changes applied, from the rows of their orderChangeSteps. */
function appliedOf(count: number, results: unknown[][]): boolean[] {
  const applied: boolean[] = new Array<boolean>(count).fill(false);
  for (const rows of results) for (const r of rows as { i: number }[]) applied[Number(r.i)] = true;
  return applied;
}

/**
 * A determination in `tx`: its orders' changes, all or none (OrderRefused names the first order refused), and its
 * assertion, so neither is stored without the other (a POSTed response's and `$next-question`'s alike).
 */
async function writeDeterminationIn(tx: SqlSession, orders: GuardedOrderChange[], assertion: AssertionRecord): Promise<void> {
  const changed = await applyOrderChangesIn(tx, orders);
  const refused = orders.find((_, i) => !changed[i]);
  if (refused) throw new OrderRefused(refused.key);
  const step = assertionsStep([assertion], []);
  await tx.query(step.sql, step.params);
}

/** Applies guarded order changes in `db` (a transaction's session); returns, for each change, whether it applied. */
async function applyOrderChangesIn(db: SqlSession, changes: GuardedOrderChange[]): Promise<boolean[]> {
  // In order-key order, as a write-behind batch takes them (writeBehindBatch): a PAS request listing its orders in
  // another order would hold one row while a replica's batch holds the other, each waiting for the other (deadlock).
  const byKey = changes.map((_, i) => i).sort((a, b) => byKeyText(changes[a], changes[b]));
  const results: unknown[][] = [];
  for (const step of orderChangeSteps(byKey.map((i) => changes[i]))) results.push(await db.query(step.sql, step.params));
  const applied = appliedOf(changes.length, results);
  return changes.map((_, i) => applied[byKey.indexOf(i)]);
}

/**
 * Whether the order's record ($1-$4) still holds approval $6 and whether a stored request other than $5 carries it for
 * that order: an item A1 with that number and that order, anywhere among its items (the GIN index on
 * `detail -> 'items'`, migration 17), whatever identifies its patient; or the request the approval was issued in (the
 * record's latest approving event names it) while its item for the order is not cancelled (A1, A4, A3): a Claim
 * Update of that request asking more pends the item again, and the approval stands for what was approved (review-diff
 * s45 H1, and the held-elsewhere edge of the s45 note), also once the reviewer denies that update (A3: a denial of
 * more than the approval covers leaves it; the s47 note's edge, where a duplicate's cancellation then withdrew it). Run after the record is locked (releasableIn), as its own
 * statement: under READ COMMITTED it then sees every request stored by a transaction that held the lock before.
 */
const HELD_ELSEWHERE_SQL = `SELECT o.state, o.authorization_number,
  EXISTS (SELECT 1 FROM pas_submissions s WHERE (s.detail -> 'items') @> $7::text::jsonb AND s.id <> $5)
  OR EXISTS (SELECT 1 FROM pas_submissions s, jsonb_array_elements(s.detail -> 'items') i
    WHERE s.id = (SELECT e.submission_id FROM order_authorization_events e WHERE e.order_id = o.id AND e.state = 'approved' ORDER BY e.id DESC LIMIT 1)
      AND s.id <> $5 AND i -> 'order' @> $8::text::jsonb AND i ->> 'reviewAction' IN ('A1', 'A3', 'A4')) AS held
  FROM order_authorizations o WHERE o.payer = $1 AND o.patient_id = $2 AND o.order_ref = $3 AND o.drug = $4 AND o.authorization_number = $6`;

/** The order as PAS items name it (ItemDecision.order), for containment (`@>`) in stored JSON. */
const orderPattern = (key: OrderKey) => ({ payer: key.payer, patientId: key.patientId, orderRef: key.orderRef, drug: key.drug });

/** The items pattern HELD_ELSEWHERE_SQL looks for: an item answering `number` (A1) for the order `key`. */
const carryingPattern = (key: OrderKey, number: string) => json([{ reviewAction: 'A1', order: orderPattern(key), authorization: { number } }]);

/**
 * Locks the records of `keys` that exist, in key order, as applyOrderChangesIn takes them (so no two transactions wait
 * on each other): the statements `tx` runs next see what every earlier holder of these locks committed (READ
 * COMMITTED), and a later one sees what `tx` commits.
 */
async function lockOrdersIn(tx: SqlSession, keys: OrderKey[]): Promise<void> {
  const byText = new Map(keys.map((k) => [keyText(k), k]));
  for (const k of [...byText.keys()].sort()) await tx.query(`SELECT 1 FROM order_authorizations WHERE ${BY_KEY} FOR UPDATE`, keyParams(byText.get(k)!));
}

/** The first approval answered from an order's record (AnsweredApproval) that the record, locked (lockOrdersIn), no longer holds. */
async function unheldIn(tx: SqlSession, answers: AnsweredApproval[]): Promise<OrderKey | undefined> {
  for (const a of answers) {
    const held = await tx.query(`SELECT 1 FROM order_authorizations WHERE ${BY_KEY} AND state = 'approved' AND authorization_number = $5`, [...keyParams(a.key), a.number]);
    if (held.length === 0) return a.key;
  }
  return undefined;
}

/**
 * The withdrawals of a Claim Update (PasUpdateInput.withdrawals) to apply, decided in `tx` after the update's own row is
 * written and its orders' records are locked (lockOrdersIn): each approval is withdrawn only while its record still
 * holds it and no other stored request answers it. Two duplicate requests cancelled at once (review-diff s44 D1): the
 * second to take the lock waits for the first to commit and then sees its request cancelled, so it withdraws what the
 * first kept; a request answering the approval from the record is stored only while the record holds it (unheldIn,
 * under the same lock), so it is either seen here or refused.
 */
async function releasableIn(tx: SqlSession, submissionId: string, withdrawals: ApprovalWithdrawal[]): Promise<GuardedOrderChange[]> {
  const kept: GuardedOrderChange[] = [];
  for (const w of withdrawals) {
    const [row] = await tx.query<{ state: string; held: boolean }>(HELD_ELSEWHERE_SQL, [
      ...keyParams(w.change.key),
      submissionId,
      w.number,
      carryingPattern(w.change.key, w.number),
      json(orderPattern(w.change.key)),
    ]);
    if (row?.state === 'approved' && !row.held) kept.push(w.change);
  }
  return kept;
}

/** Orders changes by their order's key (stable: one order's changes keep the order they were made in). */
const byKeyText = (a: GuardedOrderChange, b: GuardedOrderChange) => {
  const ka = keyText(a.key);
  const kb = keyText(b.key);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
};

/** An order's events, oldest first, as one JSON array (so a record and its history are read in one statement). */
const EVENTS_JSON = `coalesce((SELECT jsonb_agg(jsonb_build_object('at', ${ts('e.at')}, 'source', e.source, 'actor', e.actor, 'state', e.state,
  'reason', e.reason, 'authorization_number', e.authorization_number, 'submission_id', e.submission_id, 'assertion_id', e.assertion_id, 'approved_item', e.approved_item) ORDER BY e.id)
  FROM order_authorization_events e WHERE e.order_id = o.id), '[]'::jsonb) AS events`;

/** The statement reading order records with their history (one round trip on the hook's path, design.md §9). */
function ordersStep(where: string, params: unknown[], limit = 200): Step {
  return { sql: `SELECT ${ORDER_COLUMNS}, ${EVENTS_JSON} FROM order_authorizations o WHERE ${where} ORDER BY created_at, id LIMIT ${limit}`, params };
}

/** Order records from the rows of an ordersStep. */
function orderRecordsOf(rows: (OrderRow & { events: Omit<OrderEventRow, 'order_id'>[] })[]): OrderRecord[] {
  return rows.map((r) => ({
    id: r.id,
    payer: r.payer,
    patientId: r.patient_id,
    orderRef: r.order_ref,
    drug: r.drug,
    state: r.state,
    ...(r.policy_id !== null ? { policyId: r.policy_id } : {}),
    reason: r.reason,
    ...(r.authorization_number !== null && r.auth_start !== null && r.auth_end !== null
      ? { authorization: { number: r.authorization_number, start: r.auth_start, end: r.auth_end } }
      : {}),
    ...(r.submission_id !== null ? { submissionId: r.submission_id } : {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    history: (typeof r.events === 'string' ? (JSON.parse(r.events) as typeof r.events) : r.events).map((e) => ({
      at: e.at,
      source: e.source,
      actor: e.actor,
      state: e.state,
      reason: e.reason,
      ...(e.authorization_number !== null ? { authorizationNumber: e.authorization_number } : {}),
      ...(e.submission_id !== null ? { submissionId: e.submission_id } : {}),
      ...(e.assertion_id !== null ? { assertionId: e.assertion_id } : {}),
      ...(e.approved_item ? { approvedItem: e.approved_item } : {}),
    })),
  }));
}

/** Order records with their history in one statement. */
async function readOrders(db: SqlSession, where: string, params: unknown[], limit = 200): Promise<OrderRecord[]> {
  const step = ordersStep(where, params, limit);
  return orderRecordsOf(await db.query(step.sql, step.params));
}

/**
 * The statement reading several orders' records by key (the write-behind batch's read-back of awaited changes). Each
 * key is looked up on its own in the order key's unique index (LATERAL with LIMIT cannot be turned into a join): as
 * `IN (SELECT ... FROM jsonb_to_recordset(...))` the planner, which cannot see how few keys there are, hashed them and
 * scanned every order record, once per batch.
 */
function ordersByKeysStep(keys: OrderKey[]): Step {
  const unique = [...new Map(keys.map((k) => [keyText(k), k])).values()];
  return {
    sql: `SELECT ${ORDER_COLUMNS}, ${EVENTS_JSON}
      FROM jsonb_to_recordset($1::text::jsonb) AS x(payer text, patient_id text, order_ref text, drug text)
      CROSS JOIN LATERAL (SELECT * FROM order_authorizations k
        WHERE k.payer = x.payer AND k.patient_id = x.patient_id AND k.order_ref = x.order_ref AND k.drug = x.drug LIMIT 1) o
      ORDER BY created_at, id`,
    params: [json(unique.map((k) => ({ payer: k.payer, patient_id: k.patientId, order_ref: k.orderRef, drug: k.drug })))],
  };
}

/** Orders the embedded database's index holds at most; past it, order reads go to the database. */
const MAX_INDEXED_ORDERS = 50_000;

/**
 * An order's place in the index: a 30-bit FNV-1a hash of (payer, patient, order), not the key's text. A small integer
 * is about 20 bytes in a Set where the joined key string was about 280 (heap snapshot under distinct-patient load,
 * README "Memory"), and the index grows with every order ever seen. Two orders sharing a hash only send the second's
 * read to the database, as with no index: the index may say "maybe a record", never "no record" wrongly.
 */
function indexKey(payer: string, patientId: string, orderRef: string): number {
  let h = 0x811c9dc5;
  const mix = (s: string) => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0xffff, 0x01000193); // ends each part: ('ab', 'c') and ('a', 'bc') hash apart
  };
  mix(payer);
  mix(patientId);
  mix(orderRef);
  return (h >>> 2) & 0x3fffffff;
}

const sameKey = (r: OrderKey, k: OrderKey) => r.payer === k.payer && r.patientId === k.patientId && r.orderRef === k.orderRef && r.drug === k.drug;
const keyText = (k: OrderKey) => JSON.stringify([k.payer, k.patientId, k.orderRef, k.drug]);

const BY_KEY = 'payer = $1 AND patient_id = $2 AND order_ref = $3 AND drug = $4';
const keyParams = (k: OrderKey) => [k.payer, k.patientId, k.orderRef, k.drug];

const SUBSCRIPTION_COLUMNS = `id, owner, status, topic, filters, endpoint, headers, content, resource, events_count, ${ts('created_at')} AS created_at, ${ts('updated_at')} AS updated_at`;

interface SubscriptionRow {
  id: string;
  owner: string | null;
  status: SubscriptionStatus;
  topic: string;
  filters: string[];
  endpoint: string;
  headers: string[];
  content: SubscriptionRecord['content'];
  resource: Record<string, unknown>;
  events_count: number | string;
  created_at: string;
  updated_at: string;
}

interface DecisionRow {
  submission_id: string;
  decision: ReviewDecision['decision'];
  reviewer: string;
  reason: string;
  decided_at: string;
  authorization_number: string | null;
}

/** A review_decisions row as the reviewer API reads it (a request's decisions, the Decided list). */
function reviewDecisionOf(r: DecisionRow): ReviewDecision {
  return {
    submissionId: r.submission_id,
    decision: r.decision,
    reviewer: r.reviewer,
    reason: r.reason,
    decidedAt: r.decided_at,
    ...(r.authorization_number !== null ? { authorizationNumber: r.authorization_number } : {}),
  };
}

/**
 * The durable Storage over SQL (design.md §2): the same statements on embedded PGlite and on PostgreSQL. Every
 * write is one statement (data-modifying CTEs where several tables change together), so each is atomic without a
 * client-side transaction, and resolves after commit.
 */
export class SqlStorage implements Storage {
  private closed = false;
  private readonly accessBatcher = new WriteBatcher<ApiAccessRecord>((items) => this.writeAccessOrKeep(items), 500, ACCESS_LOG_LINGER_MS);
  /** Access lines the database could not take during an outage, written when it takes writes again (bounded). */
  private readonly accessBacklog: AccessBacklog<ApiAccessRecord>;
  /**
   * Assertions read lately. Safe to keep on any number of replicas: an assertion is never changed once written (every
   * evaluation, CRD's or DTR's, makes a new id), and the authorization it names is never changed either.
   */
  private readonly readAssertions = new Map<string, AssertionRecord>();
  /** Order reads waiting for the next shared statement (findOrderRecords). */
  private reads: { q: { payer: string; patientId: string; orderRefs: string[] }; resolve: (r: OrderRecord[]) => void; reject: (e: unknown) => void }[] = [];
  /** CRD's records behind the answer, and every order change: one transaction per batch (write-behind.ts). */
  private readonly behind: WriteBehind;
  /**
   * Embedded storage only: the (payer, patient, order) of every order record the database holds, loaded at open
   * (loadOrderIndex) and added to BEFORE any change that may create one is queued or written. An order not in it has
   * no record, so its read is answered "none" without a statement: the hook's read for an order never seen before
   * (every first signing) costs nothing. Authoritative only because PGlite's data directory is open in this one
   * process (storage.lock, one PGlite per directory): no one else can write a record. With PostgreSQL
   * (DATABASE_URL) replicas write too, so this stays undefined and every read goes to the database, as a decision
   * made on another replica must be what the next order-sign answers. Over MAX_INDEXED_ORDERS it is dropped
   * (memory), and reads go to the database again.
   */
  private orderIndex?: Set<number>;

  /** The database's connection; every refusal of a write through it is noted (writesRefused). */
  readonly driver: SqlDriver;
  /**
   * The last write the database refused while answering (a full disk, a standby: write-refusal.ts), until a write
   * succeeds again: readiness (ping) fails meanwhile, though every read succeeds. `refusals` counts them, so that a
   * readiness write does not clear a refusal that came while it ran.
   */
  private writesRefused: StorageUnavailableError | undefined;
  private refusals = 0;
  /** When readiness last wrote its probe row (ping), by `now`: at most one such write per `probeEveryMs`. */
  private lastProbeAt: number | undefined;
  private readonly probeEveryMs: number;
  private readonly now: () => number;
  private readonly logger?: Logger;

  constructor(driver: SqlDriver, opts: { logger?: Logger; readiness?: ReadinessProbeOptions } = {}) {
    this.logger = opts.logger;
    this.probeEveryMs = opts.readiness?.writeEveryMs ?? READINESS_WRITE_EVERY_MS;
    this.now = opts.readiness?.now ?? Date.now;
    // The backlog retries on the driver itself, not the noticing one: a retry of lines kept through a full disk is
    // not a request of this replica's callers, so its refusal alone does not keep the replica unready (ping). The
    // first refusal of those lines, a caller's write, was noticed already.
    this.accessBacklog = new AccessBacklog((lines) => this.writeAccess(lines, driver), { logger: opts.logger });
    this.driver = noticingWriteRefusals(driver, (err) => {
      if (!this.writesRefused) {
        const code = (err.cause as { code?: unknown } | undefined)?.code;
        this.logger?.warn({ sqlstate: code }, 'storage refuses writes: not ready until a write succeeds');
      }
      this.writesRefused = err;
      this.refusals++;
    });
    this.behind = new WriteBehind(
      {
        writeBatch: (items, awaited) => this.writeBehindBatch(items, awaited),
        writeOne: (item) => this.writeBehindOne(item),
      },
      { logger: opts.logger },
    );
  }

  /**
   * Embedded storage (the only writer of its database): reads every order record's key, so that reads of orders
   * with no record skip the database (orderIndex). Not for PostgreSQL, where other replicas write.
   */
  async loadOrderIndex(): Promise<void> {
    if (this.driver.kind !== 'pglite') return;
    const rows = await this.driver.query<{ payer: string; patient_id: string; order_ref: string }>(
      `SELECT payer, patient_id, order_ref FROM order_authorizations LIMIT ${MAX_INDEXED_ORDERS + 1}`,
    );
    if (rows.length > MAX_INDEXED_ORDERS) return;
    this.orderIndex = new Set(rows.map((r) => indexKey(r.payer, r.patient_id, r.order_ref)));
  }

  /** Notes orders that may get a record (before the change is queued or written; a refused change leaves a harmless extra key). */
  private noteOrders(keys: OrderKey[]): void {
    if (!this.orderIndex) return;
    for (const k of keys) this.orderIndex.add(indexKey(k.payer, k.patientId, k.orderRef));
    if (this.orderIndex.size > MAX_INDEXED_ORDERS) this.orderIndex = undefined;
  }

  /** True when the order certainly has no record (embedded storage only). */
  private unrecorded(payer: string, patientId: string, orderRef: string): boolean {
    return this.orderIndex !== undefined && !this.orderIndex.has(indexKey(payer, patientId, orderRef));
  }

  /** Records queued behind hook answers and not yet written (tests, metrics). */
  get queuedWrites(): number {
    return this.behind.size;
  }

  /**
   * One transaction, in one round trip to the database (SqlDriver.batch): the assertions and audit lines in one
   * statement, then the order changes in one statement per round (sorted by order, so two replicas' batches take row
   * locks in the same order and never deadlock), then the awaited changes' records.
   */
  private async writeBehindBatch(items: BehindItem[], awaited: GuardedOrderChange[]): Promise<AppliedChange[]> {
    const assertions = items.flatMap((i) => (i.kind === 'assertion' ? [i.record] : []));
    const audits = items.flatMap((i) => (i.kind === 'audit' ? [i.record] : []));
    const changes = items.flatMap((i) => (i.kind === 'order' ? [i.change] : []));
    changes.sort((a, b) => (keyText(a.key) < keyText(b.key) ? -1 : keyText(a.key) > keyText(b.key) ? 1 : 0));
    const following = items.flatMap((i) => (i.kind === 'order' && i.assertion ? [{ key: i.change.key, assertion: i.assertion }] : []));
    const steps: Step[] = [];
    if (assertions.length > 0 || audits.length > 0) steps.push(assertionsStep(assertions, audits));
    const first = steps.length;
    const changeSteps = orderChangeSteps(changes);
    steps.push(...changeSteps);
    // After the changes: each names the approval its order holds now.
    if (following.length > 0) steps.push(followingAssertionsStep(following));
    if (awaited.length > 0) steps.push(ordersByKeysStep(awaited.map((c) => c.key)));
    const results = await this.driver.batch(steps);
    if (awaited.length === 0) return [];
    const applied = appliedOf(changes.length, results.slice(first, first + changeSteps.length));
    const appliedBy = new Map<GuardedOrderChange, boolean>(changes.map((c, i) => [c, applied[i]]));
    const records = orderRecordsOf(results[results.length - 1] as Parameters<typeof orderRecordsOf>[0]);
    return awaited.map((c) => {
      const record = records.find((r) => sameKey(r, c.key));
      if (!record) throw new StorageError(`order record ${c.key.orderRef} was neither written nor found`);
      return { applied: appliedBy.get(c) ?? false, record };
    });
  }

  private async writeBehindOne(item: BehindItem): Promise<AppliedChange | undefined> {
    if (item.kind !== 'order') {
      await this.driver.batch([item.kind === 'assertion' ? assertionsStep([item.record], []) : assertionsStep([], [item.record])]);
      return undefined;
    }
    const [result] = await this.writeBehindBatch([item], [item.change]);
    return result;
  }

  async queueAssertion(a: AssertionRecord): Promise<void> {
    this.open();
    await this.behind.add({ kind: 'assertion', record: a });
  }

  async queueOrderChange(c: GuardedOrderChange): Promise<void> {
    this.open();
    this.noteOrders([c.key]);
    // Keyed before its first attempt, as an audit line (saveAudit): a batch retried after a COMMIT whose outcome was
    // unknown applies the change once, and the order's history shows its event once.
    await this.behind.add({ kind: 'order', change: keyedChange(c) });
  }

  get kind(): SqlDriver['kind'] {
    return this.driver.kind;
  }

  private open(): void {
    if (this.closed) throw new StorageError('storage is closed');
  }

  async saveAssertion(a: AssertionRecord): Promise<void> {
    this.open();
    // Durable before the caller answers (it alone holds an approval), in the next write-behind transaction.
    await this.behind.addDurable({ kind: 'assertion', record: a }, true);
  }

  async getAssertion(assertionId: string): Promise<AssertionRecord | undefined> {
    // Read-your-writes: an assertion queued behind a hook answer is answered from the queue until it is written.
    const queued = this.behind.pendingAssertion(assertionId) ?? this.readAssertions.get(assertionId);
    if (queued) return structuredClone(queued);
    const found = await this.readAssertion(assertionId);
    if (found) {
      // Kept for the DTR calls that follow a signing ($questionnaire-package, the response's determination).
      if (this.readAssertions.size >= 500) this.readAssertions.delete(this.readAssertions.keys().next().value!);
      this.readAssertions.set(assertionId, found);
    }
    return found && structuredClone(found);
  }

  private async readAssertion(assertionId: string): Promise<AssertionRecord | undefined> {
    const rows = await this.driver.query<{
      assertion_id: string;
      created_at: string;
      payer: string;
      policy_id: string | null;
      policy_version: string | null;
      patient_id: string;
      order_ref: string;
      hook_instance: string;
      outcome: string;
      facts: Record<string, unknown>;
      missing_facts: string[];
      number: string | null;
      start_date: string | null;
      end_date: string | null;
      order_date: string | null;
      answered_facts: string[] | null;
      coverage_end: string | null;
      order_start: string | null;
      coverage_ref: string | null;
    }>(
      `SELECT c.assertion_id, ${ts('c.created_at')} AS created_at, c.payer, c.policy_id, c.policy_version, c.patient_id, c.order_ref,
              c.hook_instance, c.outcome, c.facts, c.missing_facts, a.number, ${day('a.start_date')} AS start_date, ${day('a.end_date')} AS end_date,
              c.order_date, c.answered_facts, c.coverage_end, c.order_start, c.coverage_ref
       FROM crd_assertions c LEFT JOIN authorizations a ON a.number = c.authorization_number
       WHERE c.assertion_id = $1`,
      [assertionId],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      assertionId: r.assertion_id,
      createdAt: r.created_at,
      payer: r.payer,
      policyId: opt(r.policy_id),
      policyVersion: opt(r.policy_version),
      patientId: r.patient_id,
      orderRef: r.order_ref,
      hookInstance: r.hook_instance,
      outcome: r.outcome,
      facts: r.facts,
      missingFacts: r.missing_facts,
      ...(r.number && r.start_date && r.end_date ? { authorization: { number: r.number, start: r.start_date, end: r.end_date } } : {}),
      // NULL on an assertion recorded before migration 12: absent, as it was.
      ...(r.order_date ? { orderDate: r.order_date } : {}),
      // NULL when signing used no earlier answer, and on an assertion recorded before migration 15.
      ...(r.answered_facts?.length ? { answeredFacts: r.answered_facts } : {}),
      // NULL for a Coverage with no end, and on an assertion recorded before migration 16.
      ...(r.coverage_end ? { coverageEnd: r.coverage_end } : {}),
      // NULL when the order stated no start / the Coverage had no id, and on an assertion recorded before migration 19.
      ...(r.order_start ? { orderStart: r.order_start } : {}),
      ...(r.coverage_ref ? { coverageRef: r.coverage_ref } : {}),
    };
  }

  async saveAudit(a: HookAuditRecord): Promise<void> {
    this.open();
    // Behind the hook's answer, with the next write-behind transaction (one commit for a batch of hooks), and kept
    // and retried while the database is unreachable (docs/design.md §2 "Written behind the hook's answer").
    // The line's key is given before its first attempt: a batch retried after a COMMIT whose outcome was unknown (the
    // connection lost while committing) writes the line once, not twice.
    await this.behind.add({ kind: 'audit', record: a.lineId ? a : { ...a, lineId: randomUUID() } });
  }

  async listAudit(limit = 100): Promise<HookAuditRecord[]> {
    // What this process has queued is listed too.
    await this.behind.settled();
    const rows = await this.driver.query<{
      request_id: string;
      at: string;
      service: string;
      hook_instance: string;
      client_iss: string | null;
      patient_id_hash: string;
      status: number;
      outcome: string;
      latency_ms: number;
    }>(
      `SELECT request_id, ${ts('at')} AS at, service, hook_instance, client_iss, patient_id_hash, status, outcome, latency_ms
       FROM hook_audit ORDER BY id DESC LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      requestId: r.request_id,
      at: r.at,
      service: r.service,
      hookInstance: r.hook_instance,
      ...(r.client_iss !== null ? { clientIss: r.client_iss } : {}),
      patientIdHash: r.patient_id_hash,
      status: Number(r.status),
      outcome: r.outcome,
      latencyMs: Number(r.latency_ms),
    }));
  }

  async saveFeedback(f: FeedbackRecord): Promise<boolean> {
    this.open();
    const rows = await this.driver.query(
      `INSERT INTO feedback (service, card, outcome, outcome_timestamp, accepted_suggestions, override_reason, received_at)
       VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, now())
       ON CONFLICT DO NOTHING RETURNING service`,
      [f.service, f.card, f.outcome, f.outcomeTimestamp, json(f.acceptedSuggestions ?? []), f.overrideReason === undefined ? null : json(f.overrideReason)],
    );
    return rows.length === 1;
  }

  async listFeedback(limit = 100): Promise<FeedbackRecord[]> {
    const rows = await this.driver.query<{
      service: string;
      card: string;
      outcome: string;
      outcome_timestamp: string;
      accepted_suggestions: string[];
      override_reason: unknown;
    }>(
      `SELECT service, card, outcome, outcome_timestamp, accepted_suggestions, override_reason
       FROM feedback ORDER BY received_at DESC, outcome_timestamp DESC LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      service: r.service,
      card: r.card,
      outcome: r.outcome,
      outcomeTimestamp: r.outcome_timestamp,
      acceptedSuggestions: r.accepted_suggestions,
      ...(r.override_reason !== null ? { overrideReason: r.override_reason } : {}),
    }));
  }

  async saveQuestionnaireResponse(r: QuestionnaireResponseRecord): Promise<void> {
    this.open();
    await this.driver.query(
      `INSERT INTO questionnaire_responses (id, received_at, assertion_id, patient_id, order_ref, resource, client_id)
       VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)`,
      [r.id, r.receivedAt, r.assertionId ?? '', r.patientId ?? null, r.orderRef ?? null, json(r.resource), r.clientId ?? ''],
    );
  }

  async replaceQuestionnaireResponse(r: QuestionnaireResponseRecord, previousVersionId: string): Promise<boolean> {
    this.open();
    // The version check and the write are one statement: of two concurrent updates of one version, one wins.
    const rows = await this.driver.query<{ id: string }>(
      `UPDATE questionnaire_responses SET received_at = $2, assertion_id = $3, patient_id = $4, order_ref = $5, resource = $6::text::jsonb
       WHERE id = $1 AND coalesce(resource->'meta'->>'versionId', '1') = $7 RETURNING id`,
      [r.id, r.receivedAt, r.assertionId ?? '', r.patientId ?? null, r.orderRef ?? null, json(r.resource), previousVersionId],
    );
    return rows.length === 1;
  }

  async saveDecidedQuestionnaireResponse(input: DecidedResponseInput): Promise<{ applied: boolean; blockedBy?: OrderRecord }> {
    this.open();
    const { record: r, previousVersionId, orders } = input;
    this.noteOrders(orders.map((o) => o.key));
    // The orders' changes queued behind hook answers are written first, so the guards see them.
    await this.behind.settled(orders.map((o) => o.key));
    try {
      await this.driver.transaction(async (tx) => {
        const params = [r.id, r.receivedAt, r.assertionId, r.patientId ?? null, r.orderRef ?? null, json(r.resource)];
        const stored =
          previousVersionId === undefined
            ? await tx.query(
                `INSERT INTO questionnaire_responses (id, received_at, assertion_id, patient_id, order_ref, resource, client_id)
                 VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7) ON CONFLICT (id) DO NOTHING RETURNING id`,
                [...params, r.clientId ?? ''],
              )
            : await tx.query(
                `UPDATE questionnaire_responses SET received_at = $2, assertion_id = $3, patient_id = $4, order_ref = $5, resource = $6::text::jsonb
                 WHERE id = $1 AND coalesce(resource->'meta'->>'versionId', '1') = $7 RETURNING id`,
                [...params, previousVersionId],
              );
        // Another update of the same version came first: this one records nothing.
        if (stored.length === 0) throw new SubmissionMoved();
        await writeDeterminationIn(tx, orders, input.assertion);
      });
      return { applied: true };
    } catch (err) {
      if (err instanceof SubmissionMoved) return { applied: false };
      if (!(err instanceof OrderRefused)) throw err;
      return { applied: false, blockedBy: await this.getOrderRecord(err.key) };
    }
  }

  async saveDetermination(input: DeterminationInput): Promise<{ applied: boolean; blockedBy?: OrderRecord }> {
    this.open();
    const { orders } = input;
    this.noteOrders(orders.map((o) => o.key));
    // The orders' changes queued behind hook answers are written first, so the guards see them.
    await this.behind.settled(orders.map((o) => o.key));
    try {
      await this.driver.transaction(async (tx) => {
        await writeDeterminationIn(tx, orders, input.assertion);
      });
      return { applied: true };
    } catch (err) {
      if (!(err instanceof OrderRefused)) throw err;
      return { applied: false, blockedBy: await this.getOrderRecord(err.key) };
    }
  }

  async getQuestionnaireResponse(id: string): Promise<QuestionnaireResponseRecord | undefined> {
    const rows = await this.driver.query<{ id: string; received_at: string; assertion_id: string; patient_id: string | null; order_ref: string | null; client_id: string; resource: QuestionnaireResponseRecord['resource'] }>(
      `SELECT id, ${ts('received_at')} AS received_at, assertion_id, patient_id, order_ref, client_id, resource FROM questionnaire_responses WHERE id = $1`,
      [id],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      id: r.id,
      receivedAt: r.received_at,
      // '' = a draft, stored without a determination (the column predates drafts and is NOT NULL).
      ...(r.assertion_id ? { assertionId: r.assertion_id } : {}),
      ...(r.patient_id !== null ? { patientId: r.patient_id } : {}),
      ...(r.order_ref !== null ? { orderRef: r.order_ref } : {}),
      ...(r.client_id ? { clientId: r.client_id } : {}),
      resource: r.resource,
    };
  }

  async getAuthorization(number: string): Promise<IssuedAuthorization | undefined> {
    const rows = await this.driver.query<{
      number: string;
      payer: string;
      source: IssuedAuthorization['source'];
      assertion_id: string | null;
      submission_id: string | null;
      start_date: string;
      end_date: string;
      issued_at: string;
    }>(
      `SELECT number, payer, source, assertion_id, submission_id, ${day('start_date')} AS start_date, ${day('end_date')} AS end_date, ${ts('issued_at')} AS issued_at
       FROM authorizations WHERE number = $1`,
      [number],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      number: r.number,
      payer: r.payer,
      source: r.source,
      ...(r.assertion_id !== null ? { assertionId: r.assertion_id } : {}),
      ...(r.submission_id !== null ? { submissionId: r.submission_id } : {}),
      start: r.start_date,
      end: r.end_date,
      issuedAt: r.issued_at,
    };
  }

  async createPasSubmission(s: NewPasSubmission, authorization?: AuthorizationRecord): Promise<{ created: boolean; submission: PasSubmission }> {
    this.open();
    const created = await this.driver.transaction(async (tx) => {
      // The identifier may already name a request as an alias or a Claim Update: then it is that request's name.
      await lockBundleName(tx, s.bundleIdentifier, s.clientId ?? '');
      if (await isNamed(tx, s.bundleIdentifier, s.clientId ?? '')) return false;
      const rows = await tx.query<{ created: number }>(
        `WITH ins AS (
           ${INSERT_SUBMISSION}
           RETURNING id, payer
         ), issued AS (
           INSERT INTO authorizations (number, payer, source, submission_id, start_date, end_date, issued_at)
           SELECT $21::text, ins.payer, 'pas', ins.id, $22::date, $23::date, $19::timestamptz FROM ins WHERE $21::text IS NOT NULL
         )
         SELECT count(*)::integer AS created FROM ins`,
        [...submissionParams(s), authorization?.number ?? null, authorization?.start ?? null, authorization?.end ?? null],
      );
      return Number(rows[0]?.created ?? 0) === 1;
    });
    const submission = await this.getPasSubmissionByBundleIdentifier(s.bundleIdentifier, s.clientId ?? '');
    if (!submission) throw new StorageError(`PAS submission ${s.bundleIdentifier} was neither stored nor found`);
    return { created, submission };
  }

  async createPasSubmissionForOrders(
    s: NewPasSubmission,
    orders: GuardedOrderChange[],
    authorization?: AuthorizationRecord,
    opts: CreatePasSubmissionOptions = {},
  ): Promise<{ created: true; submission: PasSubmission } | { created: false; submission?: PasSubmission; blockedBy?: OrderRecord; waiting?: PasSubmission }> {
    this.open();
    const answers = opts.answers ?? [];
    const keys = [...orders, ...answers].map((o) => o.key);
    this.noteOrders(keys);
    // PAS after CRD: the orders' changes queued behind hook answers are written first, so this sees them.
    await this.behind.settled(keys);
    const waitingOn = opts.waitingOn && opts.waitingOn.length > 0 && s.clientId ? opts.waitingOn : undefined;
    try {
      const created = await this.driver.transaction(async (tx) => {
        // The identifier may already name a request as an alias or a Claim Update (lockBundleName): that request's name.
        await lockBundleName(tx, s.bundleIdentifier, s.clientId ?? '');
        if (await isNamed(tx, s.bundleIdentifier, s.clientId ?? '')) return false;
        const rows = await tx.query(
          `${INSERT_SUBMISSION} RETURNING id`,
          submissionParams(s),
        );
        if (rows.length === 0) return false;
        // The orders' records are locked (in key order, as every order change takes them) before the client's waiting
        // request is looked for, and before the approvals the request answers are checked: a concurrent request of the
        // client for them waits here, then sees it; a cancellation withdrawing an approval sees this request or is seen.
        if (waitingOn || answers.length > 0) await lockOrdersIn(tx, [...(waitingOn ?? []), ...keys]);
        if (waitingOn) {
          const [found] = await tx.query<{ id: string }>(WAITING_SQL, [s.clientId, waitingPattern(waitingOn), s.id]);
          if (found) throw new WaitingFound(found.id);
        }
        const unheld = await unheldIn(tx, answers);
        if (unheld) throw new OrderRefused(unheld);
        const applied = await applyOrderChangesIn(tx, orders);
        const refused = orders.find((_, i) => !applied[i]);
        if (refused) throw new OrderRefused(refused.key);
        if (authorization) {
          await tx.query(
            `INSERT INTO authorizations (number, payer, source, submission_id, start_date, end_date, issued_at)
             VALUES ($1, $2, 'pas', $3, $4::date, $5::date, $6::timestamptz) ON CONFLICT (number) DO NOTHING`,
            [authorization.number, s.payer, s.id, authorization.start, authorization.end, s.createdAt],
          );
        }
        return true;
      });
      const submission = await this.getPasSubmissionByBundleIdentifier(s.bundleIdentifier, s.clientId ?? '');
      if (created && submission) return { created: true, submission };
      return { created: false, submission };
    } catch (err) {
      if (err instanceof WaitingFound) {
        const waiting = await this.getPasSubmission(err.id);
        return { created: false, ...(waiting ? { waiting } : {}) };
      }
      if (!(err instanceof OrderRefused)) throw err;
      return { created: false, blockedBy: await this.getOrderRecord(err.key) };
    }
  }

  async findWaitingSubmission(client: string, orders: OrderKey[]): Promise<PasSubmission | undefined> {
    if (orders.length === 0) return undefined;
    const [found] = await this.driver.query<{ id: string }>(WAITING_SQL, [client, waitingPattern(orders), '']);
    return found ? this.getPasSubmission(found.id) : undefined;
  }

  private subscriptionOf(r: SubscriptionRow): SubscriptionRecord {
    return {
      id: r.id,
      ...(r.owner !== null ? { owner: r.owner } : {}),
      status: r.status,
      topic: r.topic,
      filters: r.filters,
      endpoint: r.endpoint,
      headers: r.headers,
      content: r.content,
      resource: r.resource,
      eventsCount: Number(r.events_count),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  async saveSubscription(x: SubscriptionRecord): Promise<void> {
    this.open();
    await this.driver.query(
      `INSERT INTO subscriptions (id, owner, status, topic, filters, endpoint, headers, content, resource, events_count, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7::text::jsonb, $8, $9::text::json, $10, $11::timestamptz, $12::timestamptz)
       ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, status = EXCLUDED.status, topic = EXCLUDED.topic, filters = EXCLUDED.filters,
         endpoint = EXCLUDED.endpoint, headers = EXCLUDED.headers, content = EXCLUDED.content, resource = EXCLUDED.resource, updated_at = EXCLUDED.updated_at`,
      [x.id, x.owner ?? null, x.status, x.topic, json(x.filters), x.endpoint, json(x.headers), x.content, json(x.resource), x.eventsCount, x.createdAt, x.updatedAt],
    );
  }

  async getSubscription(id: string): Promise<SubscriptionRecord | undefined> {
    const rows = await this.driver.query<SubscriptionRow>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1`, [id]);
    return rows[0] ? this.subscriptionOf(rows[0]) : undefined;
  }

  async listSubscriptions(q: SubscriptionQuery = {}): Promise<SubscriptionRecord[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    const param = (v: unknown) => `$${params.push(v)}`;
    if (q.statuses) where.push(q.statuses.length ? `status IN (${q.statuses.map(param).join(', ')})` : 'false');
    if (q.readableBy !== undefined) where.push(`(owner IS NULL OR owner = ${param(q.readableBy)})`);
    if (q.afterId !== undefined) where.push(`id COLLATE "C" > ${param(q.afterId)}`);
    const limit = param(Math.min(q.limit ?? SUBSCRIPTION_PAGE, SUBSCRIPTION_PAGE));
    // "C" collation: the same order as the memory backend's and as the keyset comparison, whatever the database locale.
    const rows = await this.driver.query<SubscriptionRow>(
      `SELECT ${SUBSCRIPTION_COLUMNS} FROM subscriptions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id COLLATE "C" LIMIT ${limit}`,
      params,
    );
    return rows.map((r) => this.subscriptionOf(r));
  }

  async deleteSubscription(id: string): Promise<boolean> {
    this.open();
    return (await this.driver.query('DELETE FROM subscriptions WHERE id = $1 RETURNING id', [id])).length === 1;
  }

  async setSubscriptionStatus(id: string, status: SubscriptionStatus, at: string): Promise<void> {
    this.open();
    await this.driver.transaction(async (tx) => {
      await tx.query('UPDATE subscriptions SET status = $2, updated_at = $3::timestamptz WHERE id = $1', [id, status, at]);
      if (status === 'error') {
        await tx.query(`UPDATE subscription_deliveries SET held = true WHERE subscription_id = $1 AND kind = 'event-notification' AND delivered_at IS NULL`, [id]);
      } else if (status === 'active') {
        await tx.query('UPDATE subscription_deliveries SET held = false, attempts = 0, next_attempt_at = $2::timestamptz WHERE subscription_id = $1 AND held AND delivered_at IS NULL', [id, at]);
      }
    });
  }

  async listSubscriptionEvents(subscriptionId: string, since: number, until: number, limit: number): Promise<SubscriptionEvent[]> {
    const rows = await this.driver.query<{ event_number: number | string; submission_id: string; at: string }>(
      `SELECT event_number, submission_id, ${ts('created_at')} AS at FROM subscription_deliveries
       WHERE subscription_id = $1 AND event_number BETWEEN $2 AND $3 ORDER BY event_number LIMIT $4`,
      [subscriptionId, since, until, limit],
    );
    return rows.map((r) => ({ eventNumber: Number(r.event_number), submissionId: r.submission_id, at: r.at }));
  }

  async enqueueHandshake(subscriptionId: string, at: string): Promise<void> {
    this.open();
    await this.driver.query(
      `INSERT INTO subscription_deliveries (subscription_id, kind, next_attempt_at, created_at) VALUES ($1, 'handshake', $2::timestamptz, $2::timestamptz)`,
      [subscriptionId, at],
    );
  }

  async pendingPasEvents(limit = 100): Promise<{ id: number; submissionId: string }[]> {
    const rows = await this.driver.query<{ id: number; submission_id: string }>('SELECT id, submission_id FROM pas_events WHERE NOT dispatched ORDER BY id LIMIT $1', [limit]);
    return rows.map((r) => ({ id: Number(r.id), submissionId: r.submission_id }));
  }

  async dispatchPasEvent(eventId: number, submissionId: string, subscriptionIds: string[], at: string): Promise<void> {
    this.open();
    await this.driver.transaction(async (tx) => {
      const mine = await tx.query('UPDATE pas_events SET dispatched = true WHERE id = $1 AND NOT dispatched RETURNING id', [eventId]);
      if (mine.length === 0) return;
      for (const id of subscriptionIds) {
        await tx.query(
          `WITH n AS (UPDATE subscriptions SET events_count = events_count + 1 WHERE id = $1 AND status IN ('requested', 'active', 'error') RETURNING events_count, status)
           INSERT INTO subscription_deliveries (subscription_id, kind, event_number, submission_id, next_attempt_at, created_at, held)
           SELECT $1, 'event-notification', n.events_count, $2, $3::timestamptz, $3::timestamptz, n.status = 'error' FROM n`,
          [id, submissionId, at],
        );
      }
    });
  }

  async claimDueDeliveries(now: string, leaseMs: number, limit: number): Promise<DueDelivery[]> {
    this.open();
    // SKIP LOCKED: replicas claim different rows; the lease (next_attempt_at moved forward) keeps a claimed row from
    // being sent twice while its delivery is under way, and brings it back if the claiming process dies.
    const rows = await this.driver.query<{ id: number; kind: DueDelivery['kind']; event_number: number | null; submission_id: string | null; attempts: number; subscription_id: string }>(
      `UPDATE subscription_deliveries d SET next_attempt_at = $1::timestamptz + ($2 || ' milliseconds')::interval, attempts = d.attempts + 1
       WHERE d.id IN (SELECT id FROM subscription_deliveries WHERE delivered_at IS NULL AND NOT held AND next_attempt_at <= $1::timestamptz
                      ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING d.id, d.kind, d.event_number, d.submission_id, d.attempts, d.subscription_id`,
      [now, String(Math.floor(leaseMs)), limit],
    );
    const out: DueDelivery[] = [];
    for (const r of rows.sort((a, b) => Number(a.id) - Number(b.id))) {
      const subscription = await this.getSubscription(r.subscription_id);
      if (!subscription) continue;
      out.push({
        id: Number(r.id),
        kind: r.kind,
        ...(r.event_number !== null ? { eventNumber: Number(r.event_number) } : {}),
        ...(r.submission_id !== null ? { submissionId: r.submission_id } : {}),
        attempts: Number(r.attempts),
        subscription,
      });
    }
    return out;
  }

  async completeDelivery(id: number, at: string): Promise<void> {
    await this.driver.query(
      `WITH d AS (UPDATE subscription_deliveries SET delivered_at = $2::timestamptz, last_error = NULL WHERE id = $1 RETURNING subscription_id)
       UPDATE subscriptions s SET last_notified_at = greatest(s.last_notified_at, $2::timestamptz) FROM d WHERE s.id = d.subscription_id`,
      [id, at],
    );
  }

  async claimHeartbeat(subscriptionId: string, quietSince: string, now: string): Promise<boolean> {
    this.open();
    const rows = await this.driver.query(
      `UPDATE subscriptions SET last_notified_at = $3::timestamptz
       WHERE id = $1 AND status = 'active' AND coalesce(last_notified_at, updated_at) <= $2::timestamptz RETURNING id`,
      [subscriptionId, quietSince, now],
    );
    return rows.length === 1;
  }

  async failDelivery(id: number, nextAttemptAt: string, error: string): Promise<void> {
    await this.driver.query('UPDATE subscription_deliveries SET next_attempt_at = $2::timestamptz, last_error = $3 WHERE id = $1', [id, nextAttemptAt, error.slice(0, 500)]);
  }

  async countUndelivered(): Promise<number> {
    const rows = await this.driver.query<{ n: number }>('SELECT count(*)::integer AS n FROM subscription_deliveries WHERE delivered_at IS NULL AND NOT held');
    return Number(rows[0]?.n ?? 0);
  }

  // Order reads wait for this process's queued changes to those orders (read-your-writes); never a cache of records:
  // a record is read from the database every time, so a decision made on another replica is seen at once. Only the
  // embedded database's knowledge that an order has no record at all (orderIndex) answers without a read. The reads
  // arriving together (32 `$questionnaire-package` requests in flight each read their form's order) share one
  // statement with the hooks' reads (runReads): one round trip to the embedded database's thread instead of one each,
  // each caller still getting a record read after it asked.
  async getOrderRecord(key: OrderKey): Promise<OrderRecord | undefined> {
    if (this.unrecorded(key.payer, key.patientId, key.orderRef)) return undefined;
    await this.behind.settled([key]);
    const records = await this.queueRead({ payer: key.payer, patientId: key.patientId, orderRefs: [key.orderRef] });
    return records.find((r) => sameKey(r, key));
  }

  /**
   * The hook's read (design.md §8: a decision made anywhere is what the next order-sign answers): from the database
   * every time, never a cache. The reads of hooks arriving together share one statement (one round trip to the
   * embedded database's thread, one plan), each getting only its own orders' records. Embedded storage answers
   * "none" without a statement for orders it knows have no record (orderIndex: it is the database's only writer).
   */
  async findOrderRecords(q: { payer: string; patientId: string; orderRefs: string[] }): Promise<OrderRecord[]> {
    if (q.orderRefs.length === 0) return [];
    if (q.orderRefs.every((ref) => this.unrecorded(q.payer, q.patientId, ref))) return [];
    await this.behind.settledFor(q.payer, q.patientId, q.orderRefs);
    return this.queueRead(q);
  }

  /** Reads the records of `q`'s orders in the next statement of reads queued in this event-loop turn (runReads). */
  private queueRead(q: { payer: string; patientId: string; orderRefs: string[] }): Promise<OrderRecord[]> {
    return new Promise((resolve, reject) => {
      this.reads.push({ q, resolve, reject });
      if (this.reads.length === 1) setImmediate(() => void this.runReads());
    });
  }

  private async runReads(): Promise<void> {
    const batch = this.reads.splice(0, 100);
    if (this.reads.length > 0) setImmediate(() => void this.runReads());
    if (batch.length === 0) return;
    try {
      const wanted = [...new Set(batch.flatMap(({ q }) => q.orderRefs.map((ref) => JSON.stringify([q.payer, q.patientId, ref]))))].map((k) => JSON.parse(k) as string[]);
      // VALUES, not a JSON set: the planner knows how many keys there are and looks each up in the order key's index.
      const rows = await readOrders(
        this.driver,
        `(payer, patient_id, order_ref) IN (VALUES ${wanted.map((_, i) => `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`).join(', ')})`,
        wanted.flat(),
        100 * batch.length,
      );
      const handedOut = new Set<OrderRecord>();
      for (const { q, resolve } of batch) {
        const mine = rows.filter((r) => r.payer === q.payer && r.patientId === q.patientId && q.orderRefs.includes(r.orderRef));
        // Two hooks about one order each get their own copy.
        resolve(mine.map((r) => (handedOut.has(r) ? structuredClone(r) : (handedOut.add(r), r))));
      }
    } catch (err) {
      for (const { reject } of batch) reject(err);
    }
  }

  async findOrderRecordsBySubmission(submissionId: string): Promise<OrderRecord[]> {
    await this.behind.settled();
    return readOrders(this.driver, 'submission_id = $1', [submissionId]);
  }

  /** By the index on (order_ref, payer, drug) (migration 14): at most a few rows, never a scan of the payer's orders. */
  async orderPatientIds(q: { payer: string; orderRef: string; drug: string }): Promise<string[]> {
    await this.behind.settled();
    const rows = await this.driver.query<{ patient_id: string }>(
      'SELECT DISTINCT patient_id FROM order_authorizations WHERE order_ref = $1 AND payer = $2 AND drug = $3 ORDER BY patient_id LIMIT 10',
      [q.orderRef, q.payer, q.drug],
    );
    return rows.map((r) => r.patient_id);
  }

  /**
   * Applied after the changes queued before it, in the next batch's transaction: concurrent callers (hooks approving
   * at signing, PAS, DTR) share one commit, and each resolves once that commit is durable.
   */
  async applyOrderChange(c: GuardedOrderChange, assertion?: AssertionRecord): Promise<{ applied: boolean; record: OrderRecord }> {
    this.open();
    this.noteOrders([c.key]);
    return this.behind.apply(keyedChange(c), assertion);
  }

  private async decisionsFor(ids: string[]): Promise<Map<string, ReviewDecision[]>> {
    const out = new Map<string, ReviewDecision[]>();
    if (ids.length === 0) return out;
    const rows = await this.driver.query<DecisionRow>(
      `SELECT submission_id, decision, reviewer, reason, ${ts('decided_at')} AS decided_at, authorization_number
       FROM review_decisions WHERE submission_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb))) ORDER BY id`,
      [json(ids)],
    );
    for (const r of rows) {
      const list = out.get(r.submission_id) ?? [];
      list.push(reviewDecisionOf(r));
      out.set(r.submission_id, list);
    }
    return out;
  }

  private async submissions(where: string, params: unknown[], limit = 50, orderFirst = ''): Promise<PasSubmission[]> {
    const rows = await this.driver.query<SubmissionRow>(
      `SELECT ${SUBMISSION_COLUMNS} FROM pas_submissions WHERE ${where} ORDER BY ${orderFirst}created_at DESC, id LIMIT ${Math.max(1, Math.min(500, Math.floor(limit)))}`,
      params,
    );
    const decisions = await this.decisionsFor(rows.map((r) => r.id));
    return rows.map((r) => ({
      id: r.id,
      bundleIdentifier: r.bundle_identifier,
      ...(r.client_id ? { clientId: r.client_id } : {}),
      requestHash: r.request_hash,
      payer: r.payer,
      ...(r.policy_id !== null ? { policyId: r.policy_id } : {}),
      ...(r.policy_version !== null ? { policyVersion: r.policy_version } : {}),
      claimIdentifiers: r.claim_identifiers,
      patientIdentifiers: r.patient_identifiers,
      status: r.status,
      reviewAction: r.review_action,
      needed: r.needed,
      ...(r.pre_auth_ref !== null ? { preAuthRef: r.pre_auth_ref } : {}),
      ...(r.pre_auth_start !== null && r.pre_auth_end !== null ? { preAuthPeriod: { start: r.pre_auth_start, end: r.pre_auth_end } } : {}),
      claimResponse: r.claim_response,
      responseBundle: r.response_bundle,
      requestBundle: r.request_bundle,
      detail: r.detail,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      decisions: decisions.get(r.id) ?? [],
      revision: Number(r.revision),
    }));
  }

  async getPasSubmission(id: string): Promise<PasSubmission | undefined> {
    return (await this.submissions('id = $1', [id], 1))[0];
  }

  async getPasSubmissionByBundleIdentifier(bundleIdentifier: string, client?: string): Promise<PasSubmission | undefined> {
    // The client's own first, then one filed without a client; with no client named, any (the unowned first).
    const readable = client === undefined ? 'true' : `client_id IN ($2, '')`;
    const params = client === undefined ? [bundleIdentifier] : [bundleIdentifier, client];
    const own = (await this.submissions(`bundle_identifier = $1 AND ${readable}`, params, 1, `client_id = ${client === undefined ? "''" : '$2'} DESC, `))[0];
    if (own) return own;
    const alias = (
      await this.driver.query<{ submission_id: string; request_hash: string }>(
        `SELECT submission_id, request_hash FROM pas_submission_aliases WHERE bundle_identifier = $1 AND ${readable}
         ORDER BY client_id = ${client === undefined ? "''" : '$2'} DESC LIMIT 1`,
        params,
      )
    )[0];
    const named =
      alias ??
      (
        await this.driver.query<{ submission_id: string; request_hash: string }>(
          `SELECT submission_id, request_hash FROM pas_submission_updates WHERE bundle_identifier = $1 AND ${readable}
           ORDER BY client_id = ${client === undefined ? "''" : '$2'} DESC, id DESC LIMIT 1`,
          params,
        )
      )[0];
    if (!named) return undefined;
    const target = await this.getPasSubmission(named.submission_id);
    return target ? { ...target, requestHash: named.request_hash } : undefined;
  }

  async findPasUpdate(bundleIdentifier: string, client: string | undefined, requestHash: string): Promise<PasSubmission | undefined> {
    const rows = await this.driver.query<{ submission_id: string }>(
      'SELECT submission_id FROM pas_submission_updates WHERE bundle_identifier = $1 AND client_id = $2 AND request_hash = $3',
      [bundleIdentifier, client ?? '', requestHash],
    );
    return rows[0] ? this.getPasSubmission(rows[0].submission_id) : undefined;
  }

  async updatePasSubmission(input: PasUpdateInput): Promise<{ applied: boolean; submission?: PasSubmission; blockedBy?: OrderRecord }> {
    this.open();
    const { update: u, next, orders, authorization } = input;
    const withdrawals = input.withdrawals ?? [];
    const answers = input.answers ?? [];
    const keys = [...orders, ...withdrawals.map((w) => w.change), ...answers].map((o) => o.key);
    this.noteOrders(keys);
    // The orders' changes queued behind hook answers are written first, so the guards see them.
    await this.behind.settled(keys);
    try {
      const applied = await this.driver.transaction(async (tx) => {
        // The update's identifier may not name another request (lockBundleName): nothing is applied, and the caller,
        // reading the name again, answers 409.
        await lockBundleName(tx, u.bundleIdentifier, u.clientId ?? '');
        const [named] = await tx.query<{ submission_id: string }>(NAMED_SQL, [u.bundleIdentifier, u.clientId ?? '']);
        if (named && named.submission_id !== u.submissionId) return false;
        const rows = await tx.query<{ id: string; payer: string }>(
          `UPDATE pas_submissions SET status = $2, review_action = $3, needed = $4::text::jsonb, pre_auth_ref = $5, pre_auth_start = $6::date,
             pre_auth_end = $7::date, claim_response = $8::text::json, response_bundle = $9::text::json, detail = $10::text::jsonb,
             request_bundle = $11::text::json, claim_identifiers = $12::text::jsonb, updated_at = $13::timestamptz, revision = revision + 1
           WHERE id = $1 AND revision = $14
           RETURNING id, payer`,
          [
            u.submissionId, next.status, next.reviewAction, json(next.needed), next.preAuthRef ?? null, next.preAuthPeriod?.start ?? null,
            next.preAuthPeriod?.end ?? null, json(next.claimResponse), json(next.responseBundle), json(next.detail), json(next.requestBundle),
            json(next.claimIdentifiers), u.createdAt, input.revision,
          ],
        );
        if (rows.length === 0) return false;
        const recorded = await tx.query(
          `INSERT INTO pas_submission_updates (submission_id, client_id, bundle_identifier, request_hash, kind, claim_identifiers, request_bundle, created_at)
           VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::json, $8::timestamptz)
           ON CONFLICT (bundle_identifier, client_id, request_hash) DO NOTHING RETURNING id`,
          [u.submissionId, u.clientId ?? '', u.bundleIdentifier, u.requestHash, u.kind, json(u.claimIdentifiers), json(u.requestBundle), u.createdAt],
        );
        // The same update was applied meanwhile (a concurrent resend): this one rolls back and is answered as a resend.
        if (recorded.length === 0) throw new SubmissionMoved();
        if (withdrawals.length > 0 || answers.length > 0) await lockOrdersIn(tx, keys);
        const unheld = await unheldIn(tx, answers);
        if (unheld) throw new OrderRefused(unheld);
        const all = [...(await releasableIn(tx, u.submissionId, withdrawals)), ...orders];
        const changed = await applyOrderChangesIn(tx, all);
        const refused = all.find((_, i) => !changed[i]);
        if (refused) throw new OrderRefused(refused.key);
        if (authorization) {
          await tx.query(
            `INSERT INTO authorizations (number, payer, source, submission_id, start_date, end_date, issued_at)
             VALUES ($1, $2, 'pas', $3, $4::date, $5::date, $6::timestamptz) ON CONFLICT (number) DO NOTHING`,
            [authorization.number, rows[0].payer, u.submissionId, authorization.start, authorization.end, u.createdAt],
          );
        }
        return true;
      });
      return { applied, submission: await this.getPasSubmission(u.submissionId) };
    } catch (err) {
      if (err instanceof SubmissionMoved) return { applied: false, submission: await this.getPasSubmission(u.submissionId) };
      if (!(err instanceof OrderRefused)) throw err;
      return { applied: false, submission: await this.getPasSubmission(u.submissionId), blockedBy: await this.getOrderRecord(err.key) };
    }
  }

  async addPasSubmissionAlias(a: PasSubmissionAlias): Promise<BundleName> {
    this.open();
    // What the name names is read in the transaction that files it, under its lock: no read-back after it (a round
    // trip on every collapsing resend, stop 47's note).
    return this.driver.transaction(async (tx) => {
      // An identifier that names a request already (its own, an alias, a Claim Update) keeps naming that one.
      await lockBundleName(tx, a.bundleIdentifier, a.clientId ?? '');
      const named = await namedBy(tx, a.bundleIdentifier, a.clientId ?? '');
      if (named) return named;
      await tx.query(
        `INSERT INTO pas_submission_aliases (bundle_identifier, submission_id, request_hash, claim_identifiers, created_at, client_id)
         VALUES ($1, $2, $3, $4::text::jsonb, $5::timestamptz, $6) ON CONFLICT (bundle_identifier, client_id) DO NOTHING`,
        [a.bundleIdentifier, a.submissionId, a.requestHash, json(a.claimIdentifiers), a.createdAt, a.clientId ?? ''],
      );
      return { submissionId: a.submissionId, requestHash: a.requestHash };
    });
  }

  /**
   * Every kind of identifier is its own indexed lookup (migration 13): the requests' ids are gathered first, then read
   * by primary key. As one OR of JSON predicates on each row, every call read every request ever filed.
   */
  async findPasSubmissions(q: PasQuery): Promise<PasSubmission[]> {
    const anyOf = (list: string[] | undefined) => json(list ?? []);
    const set = (n: number) => `ARRAY(SELECT jsonb_array_elements_text($${n}::text::jsonb))`;
    return this.submissions(
      `($6::text IS NULL OR client_id IN ($6, ''))
       AND id = ANY (ARRAY(
         SELECT jsonb_array_elements_text($1::text::jsonb)
         UNION ALL SELECT s.id FROM pas_submissions s WHERE s.bundle_identifier = ANY (${set(2)})
         UNION ALL SELECT s.id FROM pas_submissions s WHERE s.pre_auth_ref = ANY (${set(3)})
         UNION ALL SELECT d.submission_id FROM review_decisions d WHERE d.authorization_number = ANY (${set(3)})
         UNION ALL SELECT s.id FROM pas_submissions s WHERE s.claim_identifiers ?| ${set(4)}
         UNION ALL SELECT s.id FROM pas_submissions s WHERE s.patient_identifiers ?| ${set(5)}
         UNION ALL SELECT a.submission_id FROM pas_submission_aliases a WHERE a.bundle_identifier = ANY (${set(2)})
         UNION ALL SELECT a.submission_id FROM pas_submission_aliases a WHERE a.claim_identifiers ?| ${set(4)}
         UNION ALL SELECT u.submission_id FROM pas_submission_updates u WHERE u.bundle_identifier = ANY (${set(2)})
         UNION ALL SELECT z.submission_id FROM authorizations z WHERE z.submission_id IS NOT NULL AND z.number = ANY (${set(3)})))`,
      [anyOf(q.ids), anyOf(q.bundleIdentifiers), anyOf(q.preAuthRefs), anyOf(q.claimIdentifiers), anyOf(q.patientIdentifiers), q.readableBy ?? null],
      q.limit ?? 50,
    );
  }

  async listPendedSubmissions(limit = 100): Promise<PendedSummary[]> {
    const rows = await this.driver.query<{
      id: string;
      bundle_identifier: string;
      payer: string;
      policy_id: string | null;
      policy_version: string | null;
      created_at: string;
      needed: string[];
    }>(
      `SELECT id, bundle_identifier, payer, policy_id, policy_version, ${ts('created_at')} AS created_at, needed
       FROM pas_submissions WHERE review_action = 'A4' ORDER BY created_at, id LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      id: r.id,
      bundleIdentifier: r.bundle_identifier,
      payer: r.payer,
      ...(r.policy_id !== null ? { policyId: r.policy_id } : {}),
      ...(r.policy_version !== null ? { policyVersion: r.policy_version } : {}),
      createdAt: r.created_at,
      needed: r.needed,
    }));
  }

  async listReviewDecisions(q: { since: string; limit?: number }): Promise<ReviewDecision[]> {
    // Newest first through review_decisions_decided_at (migration 18): every decision ever made stays in the table.
    const rows = await this.driver.query<DecisionRow>(
      `SELECT submission_id, decision, reviewer, reason, ${ts('decided_at')} AS decided_at, authorization_number
       FROM review_decisions WHERE decided_at >= $1::timestamptz ORDER BY decided_at DESC, id DESC LIMIT $2`,
      [q.since, q.limit ?? 100],
    );
    return rows.map(reviewDecisionOf);
  }

  async recordReviewDecision(input: ReviewDecisionInput): Promise<{ applied: boolean; submission?: PasSubmission }> {
    this.open();
    const answers = input.answers ?? [];
    const keys = [...(input.orders ?? []), ...answers].map((o) => o.key);
    this.noteOrders(keys);
    await this.behind.settled(keys);
    const { decision: d, next, authorization } = input;
    const run = async (db: SqlSession) => db.query<{ applied: number }>(
      `WITH upd AS (
         UPDATE pas_submissions SET status = $2, review_action = $3, needed = $4::text::jsonb, pre_auth_ref = $5, pre_auth_start = $6::date,
           pre_auth_end = $7::date, claim_response = $8::text::json, response_bundle = $9::text::json, detail = $10::text::jsonb,
           updated_at = $11::timestamptz, revision = revision + 1
         WHERE id = $1 AND review_action = 'A4' AND ($18::integer IS NULL OR revision = $18::integer)
         RETURNING id, payer
       ), decided AS (
         INSERT INTO review_decisions (submission_id, decision, reviewer, reason, decided_at, authorization_number)
         SELECT upd.id, $12, $13, $14, $11::timestamptz, $15::text FROM upd
       ), issued AS (
         INSERT INTO authorizations (number, payer, source, submission_id, start_date, end_date, issued_at)
         SELECT $15::text, upd.payer, 'review', upd.id, $16::date, $17::date, $11::timestamptz FROM upd WHERE $15::text IS NOT NULL AND $16::date IS NOT NULL
         ON CONFLICT (number) DO NOTHING
       ), evented AS (
         -- The decision is an event for PAS Subscriptions, committed with it (the outbox's source).
         INSERT INTO pas_events (submission_id, at) SELECT upd.id, $11::timestamptz FROM upd
       )
       SELECT count(*)::integer AS applied FROM upd`,
      [
        d.submissionId,
        next.status,
        next.reviewAction,
        json(next.needed),
        next.preAuthRef ?? null,
        next.preAuthPeriod?.start ?? null,
        next.preAuthPeriod?.end ?? null,
        json(next.claimResponse),
        json(next.responseBundle),
        json(next.detail),
        d.decidedAt,
        d.decision,
        d.reviewer,
        d.reason,
        d.authorizationNumber ?? authorization?.number ?? null,
        authorization?.start ?? null,
        authorization?.end ?? null,
        input.revision ?? null,
      ],
    );
    let applied: boolean;
    if (!input.orders?.length && answers.length === 0) {
      applied = Number((await run(this.driver))[0]?.applied ?? 0) === 1;
    } else {
      // The orders' decision and the request's are one: both apply, or neither.
      try {
        applied = await this.driver.transaction(async (tx) => {
          if (Number((await run(tx))[0]?.applied ?? 0) !== 1) return false;
          // The approvals the request takes from its orders' records are still theirs (AnsweredApproval).
          if (answers.length > 0) await lockOrdersIn(tx, keys);
          const unheld = await unheldIn(tx, answers);
          if (unheld) throw new OrderRefused(unheld);
          const orders = input.orders ?? [];
          const applied = await applyOrderChangesIn(tx, orders);
          const refused = orders.find((_, i) => !applied[i]);
          if (refused) throw new OrderRefused(refused.key);
          return true;
        });
      } catch (err) {
        if (!(err instanceof OrderRefused)) throw err;
        applied = false;
      }
    }
    return { applied, submission: await this.getPasSubmission(d.submissionId) };
  }

  /** The replay check runs on every authenticated call: one statement (RECORD_JTI_SQL). */
  async recordJti(r: JtiRecord, nowMs: number = Date.now()): Promise<boolean> {
    this.open();
    const rows = await this.driver.query(RECORD_JTI_SQL, [r.issuer, r.jti, Math.ceil(r.expiresAtMs), Math.floor(nowMs)]);
    return rows.length === 1;
  }

  async sharedSetting(key: string, initial: string): Promise<string> {
    this.open();
    // One statement: insert unless present, then read whichever value won (ours or the replica's that came first).
    const rows = await this.driver.query<{ value: string }>(
      `WITH ins AS (INSERT INTO storage_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value)
       SELECT value FROM ins UNION ALL SELECT value FROM storage_meta WHERE key = $1 LIMIT 1`,
      [`shared:${key}`, initial],
    );
    if (rows[0]) return rows[0].value;
    // A replica inserted it after this statement's snapshot was taken: its row is committed now.
    const again = await this.driver.query<{ value: string }>('SELECT value FROM storage_meta WHERE key = $1', [`shared:${key}`]);
    if (!again[0]) throw new StorageError(`shared setting ${key} could not be stored`);
    return again[0].value;
  }

  async settingSince(key: string, value: string, at: string): Promise<string> {
    this.open();
    if (/\s/.test(value)) throw new StorageError('a setting followed over time has no white space in its value');
    // One statement: store `value at` unless `value` is already stored (an upsert waits for a replica doing the same
    // and then sees its row), then read whichever row stands.
    const key_ = `since:${key}`;
    const rows = await this.driver.query<{ value: string }>(
      `WITH up AS (INSERT INTO storage_meta (key, value) VALUES ($1, $2 || ' ' || $3)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
         WHERE split_part(storage_meta.value, ' ', 1) <> $2 RETURNING value)
       SELECT coalesce((SELECT value FROM up), (SELECT value FROM storage_meta WHERE key = $1)) AS value`,
      [key_, value, at],
    );
    // A replica's row committed after this statement's snapshot was taken: read it now.
    const stored = rows[0]?.value ?? (await this.driver.query<{ value: string }>('SELECT value FROM storage_meta WHERE key = $1', [key_]))[0]?.value;
    if (stored === undefined) throw new StorageError(`setting ${key} could not be stored`);
    return stored.slice(stored.indexOf(' ') + 1);
  }

  async saveApiAccess(a: ApiAccessRecord): Promise<void> {
    this.open();
    // Keyed before its first attempt, as an audit line (saveAudit): a statement retried line by line after an answer
    // that never came (it may have committed) writes each line once.
    await this.accessBatcher.add(a.lineId ? a : { ...a, lineId: randomUUID() });
  }

  /**
   * The batcher's write: lines the database cannot take now (an outage, a full disk) are kept in the backlog and
   * written when it takes writes again, not lost with a log line; once a write succeeds, kept lines are tried at once.
   */
  private async writeAccessOrKeep(items: ApiAccessRecord[]): Promise<void> {
    try {
      await this.writeAccess(items);
    } catch (err) {
      if (!(err instanceof StorageUnavailableError)) throw err;
      this.accessBacklog.keep(items);
      return;
    }
    this.accessBacklog.nudge();
  }

  private async writeAccess(items: ApiAccessRecord[], driver: SqlDriver = this.driver): Promise<void> {
    await driver.query(ACCESS_SQL, [
      json(items.map((r) => ({ line_id: r.lineId ?? null, request_id: r.requestId, at: r.at, client_id: r.clientId, operation: r.operation, resource_ids: r.resourceIds, status: r.status, outcome: r.outcome }))),
    ]);
  }

  async listApiAccess(limit = 100): Promise<ApiAccessRecord[]> {
    // What this process has logged is listed, even the lines still waiting to share a statement, or kept through an
    // outage (written first when the database takes them now; a write that hangs is waited for a bounded time only).
    await this.accessBatcher.drain();
    await this.accessBacklog.settle();
    const rows = await this.driver.query<{ request_id: string; at: string; client_id: string | null; operation: string; resource_ids: string[]; status: number; outcome: string }>(
      `SELECT request_id, ${ts('at')} AS at, client_id, operation, resource_ids, status, outcome FROM api_access_log ORDER BY id DESC LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      requestId: r.request_id,
      at: r.at,
      ...(r.client_id !== null ? { clientId: r.client_id } : {}),
      operation: r.operation,
      resourceIds: r.resource_ids,
      status: Number(r.status),
      outcome: r.outcome,
    }));
  }

  /**
   * Readiness: the database answers, and takes writes. While a write was last refused (writesRefused) the replica is
   * not ready although every read succeeds, and no request may be routed to it: so the check itself writes one row
   * (storage_meta `readiness_write`), and the replica is ready again once that write succeeds. Only then: a write
   * on every check would cost a commit (an fsync) each time. Nor is that row written more than once per
   * `probeEveryMs` (READINESS_WRITE_EVERY_MS): a load balancer probing every second during a full-disk event gets the
   * last probe's answer meanwhile (not ready), so readiness returns at most that long after space is freed.
   */
  async ping(): Promise<void> {
    this.open();
    await this.driver.query('SELECT 1');
    if (!this.writesRefused) return;
    const now = this.now();
    if (this.lastProbeAt !== undefined && now - this.lastProbeAt < this.probeEveryMs) throw this.writesRefused;
    this.lastProbeAt = now;
    const seen = this.refusals;
    await this.driver.query(
      `INSERT INTO storage_meta (key, value, updated_at) VALUES ('readiness_write', $1, now())
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      [new Date().toISOString()],
    );
    if (this.refusals !== seen) throw this.writesRefused;
    this.writesRefused = undefined;
    this.logger?.info('storage takes writes again: ready');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.behind.close();
    await this.accessBatcher.drain();
    await this.accessBacklog.close();
    await this.driver.close();
  }
}
