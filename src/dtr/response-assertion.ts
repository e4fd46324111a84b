import type { QuestionnaireResponse } from '@medplum/fhirtypes';
import { coverageAssertionIds, responseContext } from '../coverage/evaluate-response.js';
import { localReference } from '../fhir/references.js';
import type { Logger } from '../logger.js';
import type { AssertionRecord, Storage } from '../storage/storage.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { determinationKey } from './determination.js';
import { assertionIsAbout, assertionSpeaksFor, isSigningAssertion, recordFactsOf } from '../coverage/assertion-speaks-for.js';
import { ASSERTION_READ_THROUGH_MS, mayBeOurAssertionId, readAssertions } from '../coverage/read-assertions.js';
import { COVERAGE_INFO_URL } from '../coverage/coverage-information.js';

/** What the CRD assertion a response names knows of its order, for what the response itself does not say. */
export interface AssertedContext {
  /** The facts CRD established (`AssertionRecord.facts`): they stand in for unanswered questions. */
  knownFacts?: Record<string, unknown>;
  /** The date CRD judged the order on, for a response whose order-date item states none. */
  assertedOrderDate?: string;
  /**
   * The start the order stated when CRD judged it (`AssertionRecord.orderStart`; never authoredOn), beside
   * `assertedOrderDate`: kept with a DTR determination's assertion, so PAS reading it ends the recency windows there.
   */
  assertedOrderStart?: string;
  /** The order the response is about: its qr-context, else the order CRD recorded the assertion for. */
  orderRef?: string;
  /**
   * What PriorPath read from the record and the order at signing: the facts of the CRD assertion that speaks for the
   * order (the one the response names when it is CRD's, else the one the order's record holds from signing), less
   * those the order's earlier DTR answers gave at that signing (`recordFactsOf`). Answers are compared with them
   * (docs/design.md §7 "Answers and the record"); a DTR determination's facts, or earlier answers, never stand here.
   */
  chartFacts?: Record<string, unknown>;
  /**
   * The last day of the Coverage the order was judged under (`AssertionRecord.coverageEnd`): an approval the response
   * gives ends no later (design.md §4 "Payer"), also when the response names another Coverage, whose end a reference
   * does not give. A response never signed here has none: CRD or PAS caps the approval when it answers it.
   */
  coverageEnd?: string;
  /** `Coverage/<id>` of the Coverage `coverageEnd` is the last day of, when known. */
  coverageRef?: string;
}

/** What the CRD assertions a QuestionnaireResponse names say of it ({@link responseAssertion}). */
export interface ResponseAssertion {
  /** The assertion that may speak for the response: recorded for its policy and its subject. */
  assertion?: AssertionRecord;
  /**
   * The coverage-assertion-ids the response carries of assertions CRD recorded for another patient than its subject
   * (the response was answered on that patient's order, or names the wrong subject): never used, and a completed
   * response carrying one decides nothing (submit-response.ts `checkOnePatient`).
   */
  otherPatientIds: string[];
}

/** How a response's assertion ids are read ({@link responseAssertions}). */
export interface ResponseReadOptions {
  /**
   * Whether an id of ours storage does not hold yet is read through (read-assertions.ts; default true). A later
   * `$next-question` round passes false: the first round already waited for the same ids (the response carries the
   * same coverage-information every round), and an id that is not ours would otherwise cost every round the wait
   * (review s41 F10).
   */
  readThrough?: boolean;
}

/**
 * The coverage-assertion-ids of a response worth waiting for: those shaped like PriorPath's, except one whose
 * coverage-information names another Coverage than the response's own (`qr-coverage`) while another
 * coverage-information names that one. A DTR 2.2 response carries the order's coverage-information, and an order may
 * carry every payer's CRD answer (an EHR asks each payer of the patient): the one naming the form's Coverage is this
 * payer's, the others are other payers', whose ids will never be ours (questionnaire-package.ts
 * `awaitedAssertionIds` sets them aside alike, from the Coverages' payers). A response that names no Coverage, or
 * carries no coverage-information naming it, says nothing of whose the others are: they are waited for, as before.
 */
export function awaitedResponseIds(qr: QuestionnaireResponse): Set<string> {
  const own = responseContext(qr).coverage;
  const infos = (qr.extension ?? [])
    .filter((e) => e.url === COVERAGE_INFO_URL)
    .map((e) => ({
      id: e.extension?.find((s) => s.url === 'coverage-assertion-id')?.valueString,
      coverage: localReference(e.extension?.find((s) => s.url === 'coverage')?.valueReference?.reference),
    }));
  const namesOwn = !!own && infos.some((i) => i.coverage === own);
  const ids = new Set<string>();
  for (const { id, coverage } of infos) {
    if (id && mayBeOurAssertionId(id) && !(namesOwn && coverage && coverage !== own)) ids.add(id);
  }
  return ids;
}

/**
 * The CRD assertion a QuestionnaireResponse names in its coverage-information (DTR 2.2 lets the response carry the
 * order's) that may speak for it: recorded for the response's policy and for its subject (coverage/assertion-speaks-for.ts: an
 * id is only a lookup key, and another patient's facts never stand in for this one's). POST /QuestionnaireResponse
 * and `$next-question` both start from it, so a form answered either way is judged on what CRD knew of the order:
 * its facts, its date and the order itself (design.md §8 "One authorization per order"). Every id is read once, and
 * each is judged by {@link assertionIsAbout}: the one walk finds both the assertion to use and those of another
 * patient. An id of ours that storage does not hold yet is read through for a moment (read-assertions.ts: the
 * signing's assertion may still be on its way from another replica; {@link awaitedResponseIds}, and only when
 * `opts.readThrough` is not false); one still unknown then is set aside, as before.
 */
export async function responseAssertion(
  qr: QuestionnaireResponse,
  policy: CompiledPolicy,
  storage: Storage,
  log: Logger,
  opts: ResponseReadOptions = {},
): Promise<ResponseAssertion> {
  const policyId = policy.file.id;
  const { patientId } = responseContext(qr);
  const patients = new Set(patientId ? [patientId] : []);
  const ids = coverageAssertionIds(qr);
  const awaited = opts.readThrough === false ? new Set<string>() : awaitedResponseIds(qr);
  const reads = await readAssertions(storage, ids, { waitFor: (id) => awaited.has(id) });
  let assertion: AssertionRecord | undefined;
  const otherPatientIds: string[] = [];
  for (const assertionId of ids) {
    const read = reads.get(assertionId)!;
    if ('missing' in read && read.waited)
      log.warn({ coverageAssertionId: assertionId, waitedMs: ASSERTION_READ_THROUGH_MS }, 'questionnaire-response: coverage-assertion-id not found after waiting, not used');
    if (!('found' in read)) continue;
    const a = read.found;
    if (assertionIsAbout(a, patients)) {
      if (a.policyId === policyId) assertion ??= a;
    } else {
      log.warn({ coverageAssertionId: assertionId }, 'questionnaire-response: coverage-assertion-id of another patient, not used');
      // An assertion recorded for no patient is of no other patient either.
      if (a.patientId !== '') otherPatientIds.push(assertionId);
    }
  }
  if (assertion) return { assertion, otherPatientIds };
  // A response that carries no id (a DTR 2.0.1 client's, or one posted as the package drafted it) still names its
  // order and patient (qr-context, subject): the order's record under this policy's payer knows what CRD asserted
  // when it signed, and that is what the form was asked on (design.md §8 "One authorization per order"). Without it
  // the answers alone would be judged over an empty chart (a count of earlier cycles read as none).
  const signed = await signingAssertion(qr, policy, storage);
  return { ...(signed ? { assertion: signed } : {}), otherPatientIds };
}

/**
 * The CRD assertion the order's record holds from its latest signing under this policy's payer, for the response's
 * patient and order (undefined when the response names neither, or the order was never signed here).
 */
export async function signingAssertion(qr: QuestionnaireResponse, policy: CompiledPolicy, storage: Storage): Promise<AssertionRecord | undefined> {
  const policyId = policy.file.id;
  const { patientId, orders } = responseContext(qr);
  const patients = new Set(patientId ? [patientId] : []);
  const orderRef = localReference(orders[0]);
  const key = determinationKey({ policy, patientId, orderRef });
  const record = key ? await storage.getOrderRecord(key).catch(() => undefined) : undefined;
  const signed = [...(record?.history ?? [])].reverse().find((e) => e.source === 'crd' && e.assertionId);
  const a = signed?.assertionId ? await storage.getAssertion(signed.assertionId).catch(() => undefined) : undefined;
  return a && a.policyId === policyId && assertionIsAbout(a, patients) ? a : undefined;
}

/**
 * What a response's assertion adds to the response ({@link AssertedContext}), only where the assertion speaks for the
 * order the response names ({@link assertionSpeaksFor}, design.md §8): an assertion about another order of the same
 * patient (an earlier cycle's) says nothing of this order's facts (a first order, the cycle) or its start. `signed`,
 * the order's signing assertion, says what the record said ({@link AssertedContext.chartFacts}) where the response's is
 * not CRD's, and stands for the order altogether where the response's does not speak for it: a cycle-2 response that
 * carries cycle 1's id (an EHR copying the last cycle's coverage-information) is judged over what signing knew of
 * cycle 2, not over its answers alone (review s41 F9).
 */
export function assertedContext(qr: QuestionnaireResponse, a: AssertionRecord | undefined, signed?: AssertionRecord): AssertedContext {
  const context = responseContext(qr);
  const named = context.orders[0];
  const speaksFor = (x: AssertionRecord | undefined): x is AssertionRecord =>
    !!x &&
    assertionSpeaksFor(x, {
      patientIds: new Set(context.patientId ? [context.patientId] : []),
      orderRef: named,
      carriedIds: coverageAssertionIds(qr),
    });
  const speaks = speaksFor(a);
  const signedSpeaks = speaksFor(signed);
  // What signing read: the response's own assertion when it is CRD's, else the one the order's record holds.
  const chart = speaks && isSigningAssertion(a) ? a : signedSpeaks && isSigningAssertion(signed) ? signed : undefined;
  // What is known of the order: the response's assertion where it speaks for it, else the order's own signing.
  const use = speaks ? a : signedSpeaks ? signed : undefined;
  // The Coverage the order was judged under: the one it is known by, else the signing's. Its end caps the approval even
  // when the response names another Coverage: the response gives that one by reference only, so its end is not known
  // here, and a reference PriorPath never saw would otherwise lift every cap (review-diff s45 M2). An approval is issued
  // under the Coverage that was judged (design.md §4 "Payer"); a renewed plan's is answered when CRD or PAS judge it.
  const judgedUnder = [use, chart].find((x) => x?.coverageEnd);
  const coverageEnd = judgedUnder?.coverageEnd;
  const coverageRef = judgedUnder?.coverageRef;
  const chartFacts = {
    ...(chart ? { chartFacts: recordFactsOf(chart) } : {}),
    ...(coverageEnd ? { coverageEnd } : {}),
    ...(coverageRef ? { coverageRef } : {}),
  };
  if (!use) return named ? { orderRef: named, ...chartFacts } : { ...chartFacts };
  const assertedOrder = localReference(use.orderRef);
  return {
    ...chartFacts,
    knownFacts: use.facts,
    ...(use.orderDate ? { assertedOrderDate: use.orderDate } : {}),
    ...(use.orderDate && use.orderStart ? { assertedOrderStart: use.orderStart } : {}),
    ...(named ? { orderRef: named } : assertedOrder ? { orderRef: assertedOrder } : {}),
  };
}

/**
 * What the CRD assertions of a response's order add to it ({@link assertedContext}): the response's assertion
 * ({@link responseAssertion}) and, where that is not the signing's, the order's signing assertion for what the record
 * said ({@link signingAssertion}). `POST /QuestionnaireResponse` and `$next-question` read a response alike.
 */
export async function responseAssertions(
  qr: QuestionnaireResponse,
  policy: CompiledPolicy,
  storage: Storage,
  log: Logger,
  opts: ResponseReadOptions = {},
): Promise<AssertedContext & Pick<ResponseAssertion, 'otherPatientIds'>> {
  const { assertion: a, otherPatientIds } = await responseAssertion(qr, policy, storage, log, opts);
  const context = assertedContext(qr, a);
  if (context.chartFacts) return { ...context, otherPatientIds };
  // The response names a DTR determination (a response posted again), or an assertion that does not speak for its order.
  return { ...assertedContext(qr, a, await signingAssertion(qr, policy, storage)), otherPatientIds };
}
