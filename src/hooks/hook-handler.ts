import { createHash } from 'node:crypto';
import type { Coverage, MedicationRequest, Practitioner, PractitionerRole, Resource } from '@medplum/fhirtypes';
import type { Content, Payer, ServiceDefinition } from '../content.js';
import { HttpError, badRequest, outcome, preconditionFailed } from '../errors.js';
import type { Logger } from '../logger.js';
import { indexRecord, orderDateOf } from '../policies/evaluation-data.js';
import type { PatientRecord } from '../policies/evaluation-data.js';
import { aboutAnotherPatient } from '../fhir/one-patient.js';
import type { AssertionRecord, Storage } from '../storage/storage.js';
import { COVERAGE_INFO_URL } from '../coverage/coverage-information.js';
import { assertionSpeaksFor } from '../coverage/assertion-speaks-for.js';
import type { EvaluationCache } from '../policies/evaluation-cache.js';
import type { HookResponse, RespondedRequest } from './build-response.js';
import { buildHookResponse, effectiveConfiguration } from './build-response.js';
import { decideOrders, decidesOrder, governedOrderCount } from '../coverage/decide-orders.js';
import type { OrderDecision } from '../coverage/decide-orders.js';
import { settleOrderDecisions } from '../coverage/order-record.js';
import { EhrClient } from './ehr-client.js';
import type { FetchLike } from './ehr-client.js';
import type { OrderResource } from '../coverage/order.js';
import { isActionableOrder, isOrder } from '../coverage/order.js';
import type { HookRequest } from './hook-request.js';
import { parseHookRequest, resourcesOf } from './hook-request.js';
import { coverageOn, identifyPayer } from '../coverage/payer.js';
import type { ResourceReader } from '../coverage/payer.js';
import { resolvePrefetch } from './prefetch.js';
import { bodyDigestOf } from '../http/json-body.js';
import { localReference } from '../fhir/references.js';

export interface HookDeps {
  content: Content;
  storage: Storage;
  publicBaseUrl: string;
  /** The DTR SMART app's launch page when this process serves it (see buildHookResponse); undefined: no DTR card. */
  dtrLaunchUrl?: string;
  ehrTimeoutMs: number;
  /**
   * EHR_BUDGET_MS: how long all of the call's EHR reads may take together, from `receivedAt` (README "Configuration");
   * unset, none beyond each read's EHR_TIMEOUT_MS.
   */
  ehrBudgetMs?: number;
  /** When the call arrived (`performance.now()`); unset, when its context starts being resolved. */
  receivedAt?: number;
  defaultPayer?: string;
  /** Sandbox mode: query a fhirServer even without fhirAuthorization (the CDS Hooks Sandbox sends none). */
  allowUnauthenticatedEhr: boolean;
  fetchImpl?: FetchLike;
  today?: () => string;
  cache?: EvaluationCache;
}

export interface HookResult {
  response: HookResponse;
  outcome: string;
  patientId: string;
  hookInstance: string;
}

/**
 * The EHR of a hook request that names no fhirServer it may read: every read fails as an unreachable server would
 * (no HTTP status), so what the answer needs from it is a 412, as a prefetch key that cannot be fetched is
 * (design.md §4 "Prefetch handling"), and what it only might use (a requester's specialty) stays unknown.
 */
const NO_FHIR_SERVER: ResourceReader = {
  get: (reference) => Promise.reject(new Error(`the request gives no fhirServer with fhirAuthorization to read ${reference} from`)),
};

/** A stable, non-reversible id for the audit trail: never the patient id itself. */
export function hashPatientId(id: string): string {
  return createHash('sha256').update(`priorpath:${id}`).digest('hex').slice(0, 32);
}

/**
 * The most governed orders one hook call may carry (docs/design.md §4 "Errors"). A clinician signs one or two Blincyto
 * or Besponsa orders (a step-dosed cycle is two); each is evaluated over a record holding the others, so a few hundred
 * in one body under 1 MiB held the event loop, and every route with it, for minutes.
 */
export const MAX_GOVERNED_ORDERS = 20;

/** The most Medications of the patient's other orders read from the EHR in one hook call (see resolveHookContext). */
const HISTORY_DRUG_READS = 20;

/** `Type/id` of a relative, absolute or versioned literal reference; anything else (contained `#x`) as it is. */
const relativeReference = (ref: string | undefined): string | undefined => localReference(ref) ?? ref;

function asMedicationRequests(rs: Resource[]): MedicationRequest[] {
  return rs.filter((r): r is MedicationRequest => r.resourceType === 'MedicationRequest');
}

/** A hook call resolved to what the policies read: the request, its payer, the patient record and the orders. */
export interface HookContext {
  req: HookRequest;
  payerMatch: Awaited<ReturnType<typeof identifyPayer>>;
  record: PatientRecord;
  orders: OrderResource[];
  today: string;
  queried: string[];
  log: Logger;
}

/**
 * Validates the request, resolves prefetch (querying the EHR for what is missing), identifies the payer and builds
 * the patient record (CDS Hooks 2.0 §Calling a CDS Service; CRD hooks.md, foundation.md §Prefetch).
 */
export async function resolveHookContext(service: ServiceDefinition, body: unknown, deps: HookDeps, log: Logger): Promise<HookContext> {
  const req: HookRequest = parseHookRequest(body, service.hook, service.extension?.['davinci-crd.version']);
  const hookLog = log.child({ hookInstance: req.hookInstance, serviceId: service.id });
  const today = deps.today?.() ?? new Date().toISOString().slice(0, 10);
  const ehr =
    req.fhirServer && (req.accessToken || deps.allowUnauthenticatedEhr)
      ? new EhrClient(req.fhirServer, req.accessToken, deps.ehrTimeoutMs, deps.fetchImpl, (deps.receivedAt ?? performance.now()) + (deps.ehrBudgetMs ?? Infinity))
      : undefined;

  const { data, queried } = await resolvePrefetch(req, service.prefetch ?? {}, ehr, hookLog);

  const byReference = new Map<string, Resource>();
  const remember = (r: Resource) => {
    if (r.id) byReference.set(`${r.resourceType}/${r.id}`, r);
  };
  for (const list of Object.values(data)) list.forEach(remember);
  req.draftResources.forEach(remember);

  // Prefetch keys the service did not declare (e.g. the 2.0.1 kit's `order`) still help resolve references.
  for (const [key, value] of Object.entries(req.prefetch)) if (!(key in data)) resourcesOf(value).forEach(remember);

  let orders: OrderResource[] = req.draftOrders;
  if (req.hook === 'order-dispatch') {
    orders = [];
    for (const ref of req.dispatchedRefs) {
      let order = byReference.get(ref);
      if (!order && ehr && /^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(ref)) order = await ehr.get(ref).catch(() => undefined);
      if (!isOrder(order)) throw preconditionFailed(`Dispatched order ${ref} was not prefetched and could not be fetched`, ['context.dispatchedOrders']);
      // An order the EHR answers about another patient is not this patient's order: the read failed, as for any
      // query (design.md §4 "One patient", src/fhir/one-patient.ts).
      if (aboutAnotherPatient(order, req.patientId)) throw preconditionFailed(`Dispatched order ${ref} read from fhirServer is about another patient than context.patientId`, ['context.dispatchedOrders']);
      remember(order);
      orders.push(order);
    }
  }

  // Only orders someone will act on are in scope: a cancelled or entered-in-error entry, a proposal or a plan gets no
  // coverage information (and never an authorization number); it still reaches the record as context.
  const inScope = orders.filter(isActionableOrder);

  // What the request did not carry is read from its fhirServer. A request with none to ask (no fhirServer, or no
  // fhirAuthorization outside the sandbox) reads as an EHR that cannot be reached: data the answer needs and cannot
  // have is a 412 (design.md §4 "Prefetch handling"), never read as absent: silence would say "no prior authorization".
  const reader: ResourceReader = ehr ?? NO_FHIR_SERVER;

  // The prescriber's specialty comes from the user prefetch or the order's requester (design.md §6): read a requester
  // PractitionerRole the request did not carry, when the EHR can be asked.
  const missing = [...new Set(orders.map((o) => (o as { requester?: { reference?: string } }).requester?.reference))].filter(
    (ref): ref is string => !!ref && /^PractitionerRole\/[A-Za-z0-9\-.]{1,64}$/.test(ref) && !byReference.has(ref),
  );
  // The drug of an order written as a medicationReference decides which policy governs it (design.md §4 "Governed
  // orders": "the contained, prefetched or EHR-read Medication"): read a Medication the request did not carry.
  const drugOf = (o: OrderResource) => relativeReference((o as { medicationReference?: { reference?: string } }).medicationReference?.reference);
  // The patient's other orders (the medications prefetch: history and concurrent therapy) are read for their drugs too:
  // a referenced Medication the request did not carry is asked for, so that a TKI, chemotherapy or an earlier course
  // is recognised. One the EHR cannot give stays unresolved, which the policies read as unknown, never as "no drug"
  // (design.md §6 "Clinical readings"; fact unresolvedDrugOnRecord). At most HISTORY_DRUG_READS of them, so that a long
  // history cannot hold the answer back; the rest stay unresolved, and so unknown.
  const unread = (ref: string | undefined): ref is string => !!ref && /^Medication\/[A-Za-z0-9\-.]{1,64}$/.test(ref) && !byReference.has(ref);
  const orderDrugs = [...new Set(orders.map(drugOf))].filter(unread);
  const historyDrugs = [...new Set(asMedicationRequests(data.medications ?? []).map(drugOf))]
    .filter((ref): ref is string => unread(ref) && !orderDrugs.includes(ref))
    .slice(0, HISTORY_DRUG_READS);
  const medications = [...orderDrugs, ...historyDrugs];
  // The drugs of the orders to be answered; the others' are read as context (other therapy) only.
  const answeredDrugs = new Set(inScope.map(drugOf));
  const unreadDrug = (ref: string, why: string) =>
    preconditionFailed(`The order's ${ref} could not be read from fhirServer (${why})`, [req.hook === 'order-dispatch' ? 'context.dispatchedOrders' : 'context.draftOrders']);
  const fetched = await Promise.all(
    [...missing, ...medications].map((ref) =>
      reader.get(ref).then(
        (r) => {
          // An EHR that answers a Medication read with another resource (a Patient, an OperationOutcome with 200) has
          // not given the drug: for an order being answered that is the failure below, not an ungoverned order.
          if (!ref.startsWith('Medication/') || (r?.resourceType === 'Medication' && (!r.id || `Medication/${r.id}` === ref))) return r;
          if (answeredDrugs.has(ref)) throw unreadDrug(ref, `it answered ${r?.resourceType ?? 'nothing'}`);
          return undefined;
        },
        (err: unknown) => {
          const status = (err as { status?: unknown }).status;
          // Without its drug an order cannot be told governed or not, and silence would read as "no prior
          // authorization": a Medication the EHR failed to give (not a 404) is a 412, as a prefetch that cannot be
          // fetched is (design.md §4). A missing requester only leaves the specialty unknown.
          if (answeredDrugs.has(ref) && status !== 404 && status !== 410) throw unreadDrug(ref, (err as Error).message);
          return undefined;
        },
      ),
    ),
  );
  fetched.forEach((r) => r && remember(r));

  const patient = (data.patient ?? []).find((r) => r.resourceType === 'Patient');
  if (patient && patient.id && patient.id !== req.patientId) throw badRequest('prefetch.patient is not the patient in context.patientId', ['prefetch.patient']);

  // The Coverage is judged on the dates of the service it would authorize (design.md §4 "Payer", the order date of §6):
  // each date of a medication order its payer decides (decidesOrder), today for one that states none. An order no
  // policy of that payer governs gets no answer, and its date (a premedication, a drug planned into the next plan
  // year) does not make the Coverage lapse for the orders that do (review s43 F2); with no payer told, every order's.
  const medicationOrders = inScope.filter((o): o is MedicationRequest => o.resourceType === 'MedicationRequest');
  const onDates = (payer: Payer | undefined) =>
    medicationOrders.filter((o) => !payer || decidesOrder(deps.content, payer, o, { byReference })).map((o) => orderDateOf(o, today));
  const payerMatch = await identifyPayer({ content: deps.content, coverages: data.coverage ?? [], byReference, ehr: reader, defaultPayer: deps.defaultPayer, today, onDates });
  const coverage: Coverage | undefined = payerMatch.coverage;

  const users = (data.user ?? []).filter((r): r is PractitionerRole | Practitioner => r.resourceType === 'PractitionerRole' || r.resourceType === 'Practitioner');
  const orderIds = new Set(orders.map((o) => o.id));
  const record: PatientRecord = indexRecord({
    patient: patient as PatientRecord['patient'],
    coverage,
    users,
    conditions: (data.conditions ?? []).filter((r) => r.resourceType === 'Condition') as PatientRecord['conditions'],
    observations: (data.observations ?? []).filter((r) => r.resourceType === 'Observation') as PatientRecord['observations'],
    medications: asMedicationRequests(data.medications ?? []).filter((m) => !orderIds.has(m.id)),
    immunizations: (data.immunizations ?? []).filter((r) => r.resourceType === 'Immunization') as PatientRecord['immunizations'],
    orders: asMedicationRequests(req.hook === 'order-dispatch' ? orders : req.draftResources),
    // The orders signed (or selected) together are one request: each is judged with the ones before it, so a course
    // limit counts them (docs/design.md §6 "Cycles"). The draft orders someone will act on, the unselected drafts of an
    // order-select included: they are signed with it. Dispatched orders are signed already: the record holds them as
    // active, counted as any order under way.
    requestOrders: req.hook === 'order-dispatch' ? [] : asMedicationRequests(req.draftResources).filter(isActionableOrder),
    byReference,
  });
  // What the record was built from, as bytes: the request body and the EHR's answers (evaluation-cache keys).
  const bodyDigest = bodyDigestOf(body);
  if (bodyDigest) {
    const answers = ehr?.answersDigest();
    record.sourceDigest = answers ? createHash('sha256').update(bodyDigest).update('\n').update(answers).digest('base64') : bodyDigest;
  }

  return { req, payerMatch, record, orders: inScope, today, queried, log: hookLog };
}

/** What buildHookResponse reads of the request: kept past the hook's storage wait instead of the whole request. */
type AnsweredRequest = RespondedRequest & Pick<HookRequest, 'hookInstance' | 'patientId'>;

/** A hook call decided: what the rest of the call (storage, the answer) reads, and nothing of the record or the body. */
interface DecidedHook {
  req: AnsweredRequest;
  payer: HookContext['payerMatch']['payer'];
  coverageId?: string;
  orders: OrderResource[];
  decisions: OrderDecision[];
  /** False for a "what if" (unsolicited-determ false): no number is issued, and no approval let go. */
  issueApprovals: boolean;
  today: string;
  queried: number;
  log: Logger;
}

/**
 * Handles one order hook call end to end: resolve the context, decide every governed order, record assertions,
 * shape the response. In two steps, so that what the first reads (the body, its validated copy, the patient record,
 * about 45 KB of objects a hook) is garbage before the second waits for storage: an approval at signing waits for its
 * durable write (tens of milliseconds under load), and whatever a waiting hook keeps alive outlives two young-generation
 * collections and is promoted to the old generation, whose marking then costs CPU on every thread (README "Performance").
 */
export function handleHook(service: ServiceDefinition, body: unknown, deps: HookDeps, log: Logger): Promise<HookResult> {
  return decideHook(service, body, deps, log).then((decided) => answerHook(decided, deps));
}

async function decideHook(service: ServiceDefinition, body: unknown, deps: HookDeps, log: Logger): Promise<DecidedHook> {
  const { req, payerMatch, record, orders, today, queried, log: hookLog } = await resolveHookContext(service, body, deps, log);
  const prior = await priorAssertions(orders, req.patientId, deps.storage);
  // A "what if" call (unsolicited-determ false, CRD [found-35]) is answered without issuing an authorization number.
  const issueApprovals = effectiveConfiguration(req.configuration).unsolicitedDeterminations;
  if (governedOrderCount(deps.content, payerMatch.payer, record, orders) > MAX_GOVERNED_ORDERS) {
    throw new HttpError(
      400,
      outcome('error', 'too-costly', `More than ${MAX_GOVERNED_ORDERS} orders a coverage policy governs in one call; send them in calls of at most ${MAX_GOVERNED_ORDERS}`, [
        req.hook === 'order-dispatch' ? 'context.dispatchedOrders' : 'context.draftOrders',
      ]),
    );
  }
  // Orders on both sides of a plan change are each decided under the Coverage in force on their date, and one under
  // none is answered so on its own (design.md §4 "Payer"; payer.ts coverageOn).
  const perOrder = payerMatch.planCoverages ? { coverageOn: (orderDate: string) => coverageOn(payerMatch, orderDate) } : {};
  const decisions = decideOrders({ content: deps.content, payer: payerMatch.payer, record, orders, today, log: hookLog, cache: deps.cache, prior, issueApprovals, ...perOrder });
  const { hook, hookInstance, patientId, configuration, requestedVersion, draftResources, dispatchedRefs } = req;
  return {
    req: { hook, hookInstance, patientId, configuration, requestedVersion, draftResources, dispatchedRefs },
    payer: payerMatch.payer,
    coverageId: payerMatch.coverage?.id,
    orders,
    decisions,
    issueApprovals,
    today,
    queried: queried.length,
    log: hookLog,
  };
}

async function answerHook(decided: DecidedHook, deps: HookDeps): Promise<HookResult> {
  const { req, payer, coverageId, orders, decisions, today, queried, log: hookLog } = decided;
  const assertionOf = (d: OrderDecision): AssertionRecord => ({
    assertionId: d.assertionId,
    createdAt: new Date().toISOString(),
    payer: payer.key,
    policyId: d.policy?.file.id,
    policyVersion: d.policy?.file.version,
    patientId: req.patientId,
    orderRef: `${d.order.resourceType}/${d.order.id ?? ''}`,
    hookInstance: req.hookInstance,
    outcome: d.noActiveCoverage ? 'not-covered' : (d.evaluation?.outcome ?? 'default'),
    facts: Object.fromEntries((d.evaluation?.facts ?? []).filter((f) => f.value !== undefined).map((f) => [f.name, f.value])),
    missingFacts: d.evaluation?.missingFacts ?? [],
    // The facts the order's earlier DTR answers gave: never "the record read at signing" (design.md §7).
    ...(d.answeredFacts?.length ? { answeredFacts: d.answeredFacts } : {}),
    authorization: d.authorization,
    // The date the order was judged on: DTR and PAS given only this assertion judge the order on it too (design.md §7).
    orderDate: d.orderDate,
    // The last day of the Coverage it was judged under: DTR, given the Coverage only by reference, caps an approval there.
    ...(d.coverageEnd ? { coverageEnd: d.coverageEnd } : {}),
    // Which Coverage that is: a DTR response naming another (renewed) Coverage is not capped at this one's end.
    ...(d.coverageRef ? { coverageRef: d.coverageRef } : coverageId ? { coverageRef: `Coverage/${coverageId}` } : {}),
    // The start the order stated (never authoredOn): DTR and PAS, given the order without it, end the recency windows
    // there as signing did (design.md §6 "Order date").
    ...(d.orderStart ? { orderStart: d.orderStart } : {}),
  });
  // The order's one record (design.md §8): a decision already made stands; an approval at signing is issued once, in
  // one transaction with its assertion (which names the number stored).
  const writtenWithApproval = await settleOrderDecisions({
    storage: deps.storage,
    payer: payer.key,
    patientId: req.patientId,
    decisions,
    actor: `${req.hook} ${req.hookInstance}`,
    today,
    assertionOf,
    // order-select and a "what if" commit nothing: they never let an approval go (docs/design.md §8).
    mayReopen: req.hook !== 'order-select' && decided.issueApprovals,
  });
  for (const d of decisions) {
    // Written behind the answer (design.md §2 "Written behind the hook's answer"); readable at once by DTR and PAS in
    // this process. Except an approval that no order record holds: the assertion is then the only place its number is
    // kept, and a number the EHR is given is durable first (docs/design.md §8: an approval is issued once; an order
    // without an id, which has no record, gets no number: "An order that cannot be named").
    if (!writtenWithApproval.has(d)) {
      const write = d.authorization && !d.record ? deps.storage.saveAssertion.bind(deps.storage) : deps.storage.queueAssertion.bind(deps.storage);
      await write(assertionOf(d));
    }
    // One decision line per order: ids, policy, outcome and counts (design.md §2 "Platform conventions": ids and
    // counts only). Not each criterion's result: "b-all-diagnosis true, mrd-positive-remission true, ph-positive
    // false" beside an order id is the patient's diagnosis and findings; the trace is the reviewer's and the policy
    // CLI's. Built only when it will be written: at LOG_LEVEL=warn and above pino drops it.
    if (hookLog.isLevelEnabled('info')) hookLog.info(
      {
        policy: d.policy?.file.id,
        policyVersion: d.policy?.file.version,
        outcome: d.evaluation?.outcome ?? 'default',
        criteria: criterionCounts(d.evaluation?.rules ?? []),
        missing: d.evaluation?.missingFacts.length ?? 0,
        coverageAssertionId: d.assertionId,
        orderId: d.order.id,
      },
      'decision',
    );
  }

  const response = buildHookResponse({
    req,
    content: deps.content,
    payer,
    // When DEFAULT_PAYER stands in for a Coverage the request did not carry, the order's own insurance reference names
    // the coverage: coverage-information needs one (CRD `coverage` 1..1), and without it the order got no system action.
    coverageRef: coverageId
      ? `Coverage/${coverageId}`
      : orders
          .map((o) => relativeReference((o as { insurance?: { reference?: string }[] }).insurance?.[0]?.reference))
          .find((r): r is string => !!r && /^Coverage\/[A-Za-z0-9\-.]{1,64}$/.test(r)),
    decisions,
    today,
    publicBaseUrl: deps.publicBaseUrl,
    ...(deps.dtrLaunchUrl ? { dtrLaunchUrl: deps.dtrLaunchUrl } : {}),
  });
  hookLog.info({ orders: orders.length, governed: decisions.length, queried, cards: response.cards.length, payer: payer.key }, 'hook answered');
  const outcome = decisions.length === 0 ? 'ungoverned' : [...new Set(decisions.map((d) => (d.noActiveCoverage ? 'no-active-coverage' : (d.evaluation?.outcome ?? 'default'))))].join('+');
  return { response, outcome, patientId: req.patientId, hookInstance: req.hookInstance };
}


/**
 * The assertions an order already carries in its coverage-information (from an earlier CRD call or a DTR
 * determination written back to the order), when they are ours and speak for the order (design.md §8,
 * {@link assertionSpeaksFor}): about this patient and recorded for this order, so an order copied from an earlier cycle
 * with its coverage-information does not take that cycle's approval.
 */
async function priorAssertions(orders: OrderResource[], patientId: string, storage: Storage): Promise<Map<string, AssertionRecord>> {
  const out = new Map<string, AssertionRecord>();
  await Promise.all(
    orders.map(async (o) => {
      const ids = (o.extension ?? [])
        .filter((e) => e.url === COVERAGE_INFO_URL)
        .flatMap((e) => e.extension ?? [])
        .filter((e) => e.url === 'coverage-assertion-id' && typeof e.valueString === 'string')
        .map((e) => e.valueString as string);
      for (const id of ids.slice(0, 5)) {
        const a = await storage.getAssertion(id).catch(() => undefined);
        const speaks = a && o.id && assertionSpeaksFor(a, { patientIds: new Set([patientId]), orderRef: `${o.resourceType}/${o.id}`, carriedIds: ids });
        if (a && speaks && o.id && (!out.has(o.id) || (a.authorization && !out.get(o.id)!.authorization))) out.set(o.id, a);
      }
    }),
  );
  return out;
}

/** How many criteria held, failed and were unknown: what the decision log line says of them (counts, no results). */
function criterionCounts(rules: readonly { result: boolean | 'unknown' }[]): { met: number; unmet: number; unknown: number } {
  let met = 0;
  let unmet = 0;
  for (const r of rules) {
    if (r.result === true) met++;
    else if (r.result === false) unmet++;
  }
  return { met, unmet, unknown: rules.length - met - unmet };
}
