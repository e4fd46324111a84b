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
 * Whether a CRD assertion found by its `coverage-assertion-id` may speak for this request: the request names one
 * patient, and the assertion was recorded for that patient. An id is only a lookup key, and a stale launch context or
 * an order copied from another chart carries someone else's; that patient's chart facts must neither pre-fill this
 * patient's form nor stand in for this patient's answers (the CRD edge reads an order's earlier assertions under the
 * same rule). A request naming no patient, or several (an order of one chart with a Coverage of another), cannot say
 * whose facts it may be given.
 */
export function assertionIsAbout(assertion: AssertionRecord, patientIds: ReadonlySet<string>): boolean {
  return assertion.patientId !== '' && patientIds.size === 1 && patientIds.has(assertion.patientId);
}
