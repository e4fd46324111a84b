/**
 * `%currentMedications`: the patient's other orders that are current on this order's start, written once for every
 * fact that reads "the current orders" (cds-services/README.md "Variables"; design.md §6 "Single agent": no other
 * systemic antineoplastic therapy in the same cycle).
 *
 * An order is current when its status is active, draft or on-hold and it does not state that it ended before this
 * order's planned start (`%orderDate`). EHRs often leave a finished order "active" (a chemotherapy block, a
 * cytoreduction "until blinatumomab starts"); its own dates then show it is not given with this drug, and reading it
 * as concurrent would deny a single-agent use the record disproves (pharmacist review §2b). An order has ended when it
 * states an end (a dosage's `timing.repeat.boundsPeriod.end` or `dispenseRequest.validityPeriod.end`), every end it
 * states is a full date before this order's start, and none of its dosage periods is open-ended. An order that states
 * no end, or an end on or after the start, or an end the date test cannot read (a month only), stays current, as
 * before: the record does not show it over.
 *
 * The variable is a macro, not data the server computes: the policy loader writes its standard FHIRPath in place of
 * the name before anything reads the expression, so the server, the compiled engine, the CQL Libraries and the DTR
 * form's pre-fill all read the same definition.
 */
export const CURRENT_MEDICATIONS_VARIABLE = 'currentMedications';

/** The stated ends of a MedicationRequest (FHIRPath over the order as `$this`). */
const STATED_ENDS = '(dosageInstruction.timing.repeat.bounds.ofType(Period).end | dispenseRequest.validityPeriod.end)';

/** The FHIRPath `%currentMedications` stands for. */
export const CURRENT_MEDICATIONS_FHIRPATH =
  "%medications.where(status in ('active' | 'draft' | 'on-hold')" +
  ` and (${STATED_ENDS}.exists()` +
  ` and ${STATED_ENDS}.all(toString().substring(0, 10).toDate() < %orderDate.toDate())` +
  ' and dosageInstruction.timing.repeat.bounds.ofType(Period).where(end.empty()).empty()).not())';

const REFERENCE = new RegExp(`%${CURRENT_MEDICATIONS_VARIABLE}(?![A-Za-z0-9_])`, 'g');

/** A fact's FHIRPath with `%currentMedications` written out (string literals are left as they are). */
export function expandCurrentMedications(fhirpath: string): string {
  if (!fhirpath.includes(`%${CURRENT_MEDICATIONS_VARIABLE}`)) return fhirpath;
  // Split on string literals so that only code is rewritten.
  return fhirpath
    .split(/('(?:[^'\\]|\\.)*')/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(REFERENCE, CURRENT_MEDICATIONS_FHIRPATH)))
    .join('');
}
