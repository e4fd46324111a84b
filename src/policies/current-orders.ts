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

/**
 * `%regimenMedications`: the orders of this course's regimen, written once for every fact that reads "given with" or
 * "alternating with" a chemotherapy regimen (multiagent chemotherapy, POMP; cds-services/README.md "Variables";
 * design.md §6 "Clinical readings": a regimen criterion is read from the therapy around this order).
 *
 * An order of the regimen is a current order (`%currentMedications`), or an order (active, draft, on-hold or
 * completed) whose start (its first dosage's `timing.repeat.boundsPeriod.start`, else `dispenseRequest.validityPeriod
 * .start`, else `authoredOn`) is within the 180 days before this order's planned start or later: the window the
 * project reads a regimen's recent courses in (MMM's mini-hyper-CVD with inotuzumab). A POMP or induction course that
 * ended two years ago is not given with, nor alternating with, this order (acceptance review s42 F4). An older or
 * undated order is not read as no regimen either: the facts that read this variable ask when the record shows such
 * orders only, never deny on them (design.md §6 "Clinical readings": a denial never rests on the absence of something
 * the record cannot prove).
 */
export const REGIMEN_MEDICATIONS_VARIABLE = 'regimenMedications';

/** The start of a MedicationRequest (FHIRPath over the order as `$this`), as the order date is read (README "Variables"). */
const STATED_START =
  '(dosageInstruction.first().timing.repeat.bounds.ofType(Period).start | dispenseRequest.validityPeriod.start | authoredOn).first()';

/**
 * The FHIRPath `%regimenMedications` stands for: the current orders, and the orders started in the window. A union of
 * two filters of `%medications`, so the CQL Library reuses the current orders' define and adds only the window's
 * (src/cql/fhirpath-to-cql.ts shares a filter of the patient's orders): the OHSU Library is near the FHIR string limit.
 */
export const REGIMEN_MEDICATIONS_FHIRPATH =
  `(${CURRENT_MEDICATIONS_FHIRPATH} | %medications.where(status in ('active' | 'draft' | 'on-hold' | 'completed')` +
  ` and ${STATED_START}.toString().substring(0, 10).toDate() >= %orderDate.toDate() - 180 days))`;

/**
 * `%medicationsBefore`: the orders of `%medications` that do not start after the start this order states, written once
 * for every fact that reads the drug history as given or under way before this order (the cycles given and the
 * course's cycles, an earlier course, a renewal, "currently receiving"; cds-services/README.md "Variables"; design.md
 * §6 "Cycles"). An order is judged as of its start: an order that starts after it (the record of a retrospective
 * request holds the cycles that followed; an earlier cycle re-signed alone, or claimed in PAS, finds the course's
 * later cycle already active) was not given before it, and counting it would put the order to a limit it did not
 * reach when it began, or move it into another course.
 *
 * An order is kept when this order states no start (`%orderStart` empty: no upper end, as for the recency windows and
 * the history facts, since an order written before its work-up may begin after the orders already on record), when it
 * states no date at all, or when its start (its first dosage's `timing.repeat.boundsPeriod.start`, else
 * `dispenseRequest.validityPeriod.start`, else `authoredOn`, as the facts read an order's start) is on or before this
 * order's start: the start day counts, as in the history facts, since two orders starting the same day cannot be
 * ordered by their dates (counted, a limit is reviewed, never denied). The request's own orders keep their sequence
 * (`%requestOrdersBefore`; an order of the request under way after this one is already a draft in `%medications`).
 */
export const MEDICATIONS_BEFORE_VARIABLE = 'medicationsBefore';

/** The FHIRPath `%medicationsBefore` stands for (an `iif` so that an order whose start cannot be compared is kept). */
export const MEDICATIONS_BEFORE_FHIRPATH =
  `%medications.where(iif(${STATED_START}.toString().substring(0, 10).toDate() > %orderStart.toDate(), false, true))`;

const MACROS: ReadonlyArray<readonly [string, string]> = [
  [CURRENT_MEDICATIONS_VARIABLE, CURRENT_MEDICATIONS_FHIRPATH],
  [REGIMEN_MEDICATIONS_VARIABLE, REGIMEN_MEDICATIONS_FHIRPATH],
  [MEDICATIONS_BEFORE_VARIABLE, MEDICATIONS_BEFORE_FHIRPATH],
];

/**
 * A fact's FHIRPath with `%currentMedications`, `%regimenMedications` and `%medicationsBefore` written out (string literals are left as
 * they are).
 */
export function expandMedicationMacros(fhirpath: string): string {
  const used = MACROS.filter(([name]) => fhirpath.includes(`%${name}`));
  if (used.length === 0) return fhirpath;
  // Split on string literals so that only code is rewritten.
  return fhirpath
    .split(/('(?:[^'\\]|\\.)*')/)
    .map((part, i) =>
      i % 2 === 1 ? part : used.reduce((code, [name, fp]) => code.replace(new RegExp(`%${name}(?![A-Za-z0-9_])`, 'g'), () => fp), part),
    )
    .join('');
}
