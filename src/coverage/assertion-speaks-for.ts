import type { Coverage, Reference, Resource } from '@medplum/fhirtypes';
import { localReference } from '../fhir/references.js';
import type { AssertionRecord } from '../storage/storage.js';

/** The Patient id a reference names (`Patient/1`, absolute or versioned), or undefined for anything else. */
export function patientIdOf(reference: Reference | undefined): string | undefined {
  const ref = localReference(reference?.reference);
  return ref?.startsWith('Patient/') ? ref.slice('Patient/'.length) : undefined;
}

/**
 * The patients a `$questionnaire-package` request is about: each Coverage's beneficiary and each order's subject (or
 * `patient`, for the order types that name it so). DTR §"Retrieving Questionnaire Packages".
 */
export function requestPatientIds(coverages: Coverage[], orders: Resource[]): Set<string> {
  const ids = [
    ...coverages.map((c) => patientIdOf(c.beneficiary)),
    ...orders.map((o) => {
      const r = o as { subject?: Reference; patient?: Reference };
      return patientIdOf(r.subject ?? r.patient);
    }),
  ];
  return new Set(ids.filter((v): v is string => !!v));
}

/**
 * Whether a CRD assertion found by its `coverage-assertion-id` is about the one patient a request names. An id is only
 * a lookup key, and a stale launch context or an order copied from another chart carries someone else's; that
 * patient's chart facts must neither pre-fill this patient's form nor stand in for this patient's answers. A request
 * naming no patient, or several (an order of one chart with a Coverage of another), cannot say whose facts it may be
 * given. The patient half of {@link assertionSpeaksFor}.
 */
export function assertionIsAbout(assertion: AssertionRecord, patientIds: ReadonlySet<string>): boolean {
  return assertion.patientId !== '' && patientIds.size === 1 && patientIds.has(assertion.patientId);
}

/** The order an edge asks about, as far as the request says. */
export interface OrderInQuestion {
  /** The patients the request names (one, or the assertion speaks for none of them). */
  patientIds: ReadonlySet<string>;
  /** The order's reference in any spelling (relative, absolute, versioned), or undefined when the request names none. */
  orderRef?: string;
  /**
   * The `coverage-assertion-id`s the request carries for this order: the order's own coverage-information, a DTR
   * response's (DTR 2.2), a `$questionnaire-package` `context`.
   */
  carriedIds: readonly string[];
}

/**
 * Whether a CRD assertion speaks for an order: its facts may stand in for the order's answers, its date is the
 * order's date, its authorization the order's (docs/design.md §8 "One authorization per order"). The one rule the
 * package (pre-fill), `$next-question` and POST QuestionnaireResponse (facts and date), PAS (date) and CRD (an
 * earlier approval the order carries) all apply:
 * - a different patient never (an id is only a lookup key: {@link assertionIsAbout});
 * - recorded for another order, never, even when this order carries its id: an earlier cycle's assertion (an order
 *   copied from the last cycle keeps its coverage-information) says nothing of this order's facts, start or approval;
 * - recorded for this order, yes; orders are compared by their resolved `Type/id` (`localReference`), never by the
 *   literal string, so `https://ehr/fhir/MedicationRequest/1/_history/2` is `MedicationRequest/1`;
 * - recorded for no order (a draft order without an id), only when the request carries its id for this order;
 * - the request names no order: the assertion it carries is all it has of the order, and speaks for it.
 *
 * @see docs/design.md §8 "One authorization per order"
 */
export function assertionSpeaksFor(assertion: AssertionRecord, order: OrderInQuestion): boolean {
  if (!assertionIsAbout(assertion, order.patientIds)) return false;
  const asserted = localReference(assertion.orderRef);
  const wanted = localReference(order.orderRef);
  if (asserted && wanted) return asserted === wanted;
  return order.carriedIds.includes(assertion.assertionId);
}

/** The `hookInstance` a DTR determination's assertion is recorded under (dtr/determination.ts): its facts hold answers. */
const DTR_SOURCES = new Set(['dtr:QuestionnaireResponse', 'dtr:$next-question']);

/** Whether an assertion is CRD's, made at signing from the record (not a DTR determination over answers). */
export const isSigningAssertion = (a: AssertionRecord): boolean => !DTR_SOURCES.has(a.hookInstance);

/**
 * What a signing assertion read from the record and the order: its facts, less those the order's earlier DTR answers
 * gave (`AssertionRecord.answeredFacts`). A signed order that carries its DTR determination is judged with those
 * answers filling what the record leaves unknown (decide-orders.ts `evaluateOrder`), but they remain the clinician's
 * answers: a later response correcting one is neither compared with it as "the record read at signing" nor set aside
 * for it (docs/design.md §7 "Answers and the record", review s41 F1). DTR (response-assertion.ts) and PAS
 * (asserted-order-dates.ts `signingFacts`) read the record at signing through this one function.
 */
export function recordFactsOf(a: AssertionRecord): Record<string, unknown> {
  if (!a.answeredFacts?.length) return a.facts;
  const answered = new Set(a.answeredFacts);
  return Object.fromEntries(Object.entries(a.facts).filter(([name]) => !answered.has(name)));
}
