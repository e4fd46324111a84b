import type { Resource } from '@medplum/fhirtypes';
import { localReference } from './references.js';

/**
 * The fields through which a resource names the patient it is about (FHIR R4 Patient CompartmentDefinition, the ones
 * a prior authorization reads: Observation/Condition/QuestionnaireResponse/MedicationRequest `subject`, Immunization
 * and AllergyIntolerance `patient`, Coverage `beneficiary`, the covered person).
 */
export const PATIENT_FIELDS = ['subject', 'patient', 'beneficiary'] as const;

/** Whether a reference (as the resource spells it) names this patient; true for one that names no Patient by id. */
export type SamePatient = (reference: string) => boolean;

/**
 * `SamePatient` for a patient known by id: a `Patient/…` reference (relative, absolute or versioned, FHIR R4
 * §2.3.0) names this patient when its id is `patientId`. A reference naming no Patient by id (`urn:uuid:…`, a Group,
 * a Device) names no other patient either.
 */
export function samePatientId(patientId: string | undefined): SamePatient {
  return (reference) => {
    const local = localReference(reference);
    return !local?.startsWith('Patient/') || local.slice('Patient/'.length) === patientId;
  };
}

/**
 * The field (`subject`, `patient`, `beneficiary`) through which `resource` names another patient than the one
 * `samePatient` recognizes, or undefined. This is the one rule of docs/design.md §4 "One patient": a decision for
 * patient P reads only what is about P, since another patient's lab, form or coverage would lend that patient's record
 * to P's decision. Every path that assembles a patient's record (CRD prefetch and EHR queries, PAS Bundles, DTR
 * responses) applies it.
 */
export function otherPatientField(resource: Resource, samePatient: SamePatient): (typeof PATIENT_FIELDS)[number] | undefined {
  for (const field of PATIENT_FIELDS) {
    const ref = (resource as unknown as Record<string, { reference?: unknown } | undefined>)[field]?.reference;
    if (typeof ref === 'string' && !samePatient(ref)) return field;
  }
  return undefined;
}

/**
 * Whether a resource read for patient `patientId` is about another patient: another Patient, or a resource naming
 * another patient (`otherPatientField`). Resources about no patient (Medication, Practitioner, Organization) are about
 * none other.
 */
export function aboutAnotherPatient(resource: Resource, patientId: string | undefined): boolean {
  if (resource.resourceType === 'Patient') return !!resource.id && resource.id !== patientId;
  return otherPatientField(resource, samePatientId(patientId)) !== undefined;
}

/** `Type/id` (or the type alone) of a resource, for messages and logs: never its content. */
export function resourceLabel(resource: Resource): string {
  return resource.id ? `${resource.resourceType}/${resource.id}` : resource.resourceType;
}
