import type { QuestionnaireResponse } from '@medplum/fhirtypes';
import { coverageAssertionIds, responseContext } from '../coverage/evaluate-response.js';
import { localReference } from '../fhir/references.js';
import type { Logger } from '../logger.js';
import type { AssertionRecord, Storage } from '../storage/storage.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { determinationKey } from './determination.js';
import { assertionIsAbout, assertionSpeaksFor, isSigningAssertion } from '../coverage/assertion-speaks-for.js';
import { ASSERTION_READ_THROUGH_MS, readAssertions } from '../coverage/read-assertions.js';

/** What the CRD assertion a response names knows of its order, for what the response itself does not say. */
export interface AssertedContext {
  /** The facts CRD established (`AssertionRecord.facts`): they stand in for unanswered questions. */
  knownFacts?: Record<string, unknown>;
  /** The date CRD judged the order on, for a response whose order-date item states none. */
  assertedOrderDate?: string;
  /** The order the response is about: its qr-context, else the order CRD recorded the assertion for. */
  orderRef?: string;
  /**
   * What PriorPath read from the record and the order at signing: the facts of the CRD assertion that speaks for the
   * order (the one the response names when it is CRD's, else the one the order's record holds from signing). Answers
   * are compared with them (docs/design.md §7 "Answers and the record"); a DTR determination's facts never stand here.
   */
  chartFacts?: Record<string, unknown>;
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

/**
 * The CRD assertion a QuestionnaireResponse names in its coverage-information (DTR 2.2 lets the response carry the
 * order's) that may speak for it: recorded for the response's policy and for its subject (coverage/assertion-speaks-for.ts: an
 * id is only a lookup key, and another patient's facts never stand in for this one's). POST /QuestionnaireResponse
 * and `$next-question` both start from it, so a form answered either way is judged on what CRD knew of the order:
 * its facts, its date and the order itself (design.md §8 "One authorization per order"). Every id is read once, and
 * each is judged by {@link assertionIsAbout}: the one walk finds both the assertion to use and those of another
 * patient. An id of ours that storage does not hold yet is read through for a moment (read-assertions.ts: the
 * signing's assertion may still be on its way from another replica); one still unknown then is set aside, as before.
 */
export async function responseAssertion(
  qr: QuestionnaireResponse,
  policy: CompiledPolicy,
  storage: Storage,
  log: Logger,
): Promise<ResponseAssertion> {
  const policyId = policy.file.id;
  const { patientId } = responseContext(qr);
  const patients = new Set(patientId ? [patientId] : []);
  const ids = coverageAssertionIds(qr);
  const reads = await readAssertions(storage, ids);
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
 * order the response names (and `signed`, the order's signing assertion, where the response's is not CRD's: what the
 * record said, {@link AssertedContext.chartFacts}) ({@link assertionSpeaksFor}, design.md §8): an assertion about another order of the same
 * patient (an earlier cycle's) says nothing of this order's facts (a first order, the cycle) or its start.
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
  // What signing read: the response's own assertion when it is CRD's, else the one the order's record holds.
  const chart = speaks && isSigningAssertion(a) ? a : speaksFor(signed) && isSigningAssertion(signed) ? signed : undefined;
  const chartFacts = chart ? { chartFacts: chart.facts } : {};
  if (!a || !speaks) return named ? { orderRef: named, ...chartFacts } : { ...chartFacts };
  const assertedOrder = localReference(a.orderRef);
  return {
    ...chartFacts,
    knownFacts: a.facts,
    ...(a.orderDate ? { assertedOrderDate: a.orderDate } : {}),
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
): Promise<AssertedContext & Pick<ResponseAssertion, 'otherPatientIds'>> {
  const { assertion: a, otherPatientIds } = await responseAssertion(qr, policy, storage, log);
  const context = assertedContext(qr, a);
  if (context.chartFacts) return { ...context, otherPatientIds };
  // The response names a DTR determination (a response posted again), or an assertion that does not speak for its order.
  return { ...assertedContext(qr, a, await signingAssertion(qr, policy, storage)), otherPatientIds };
}
