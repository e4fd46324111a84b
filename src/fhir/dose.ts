import type { Dosage, DosageDoseAndRate } from '@medplum/fhirtypes';

/** FHIR's code system for the kind of a Dosage.doseAndRate entry (ordered, calculated). */
export const DOSE_RATE_TYPE = 'http://terminology.hl7.org/CodeSystem/dose-rate-type';

/**
 * The dose-and-rate entry a dosage instruction prescribes: the one typed `ordered` when the instruction has one, else
 * the first (design.md §6 "Clinical readings", dose). An EHR may list a `calculated` entry (e.g. the per-m² dose worked
 * out for the patient) before the `ordered` one; reading the first would judge, propose on or show the calculated dose
 * instead of the prescription. The policy facts read the same entry (cds-services/facts/b-all-evidence.yaml dailyDoseUg).
 */
export function prescribedDose(instruction: Dosage | undefined): DosageDoseAndRate | undefined {
  const entries = instruction?.doseAndRate ?? [];
  return entries.find((e) => e.type?.coding?.some((c) => c.system === DOSE_RATE_TYPE && c.code === 'ordered')) ?? entries[0];
}
