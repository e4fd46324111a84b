import type { CodeableConcept, MedicationRequest } from '@medplum/fhirtypes';
import { formatDate } from '../shared/coverage.js';

/** Pure order editing for the demo EHR: what the form shows and how a form edit changes the draft order. */

export const UCUM = 'http://unitsofmeasure.org';
export const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
export const HCPCS = 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets';
export const TREATMENT_PHASE_URL = 'https://priorpath.dev/fhir/StructureDefinition/treatment-phase';

export type DrugKey = 'blinatumomab' | 'inotuzumab';

export interface DrugInfo {
  label: string;
  concept: CodeableConcept;
  hcpcs: { code: string; display: string; unit: string; perUnit: number };
  defaultDose: { value: number; unit: string };
}

/** The two drugs of the seed policies, coded as design.md §4 expects (RxNorm SCD + HCPCS; docs/terminology.md §2). */
export const DRUGS: Record<DrugKey, DrugInfo> = {
  blinatumomab: {
    label: 'Blincyto (blinatumomab)',
    concept: {
      coding: [
        { system: RXNORM, code: '1597262', display: 'blinatumomab 0.035 MG Injection' },
        { system: HCPCS, code: 'J9039', display: 'Injection, blinatumomab, 1 microgram' },
      ],
      text: 'Blincyto (blinatumomab) 35 mcg for injection',
    },
    hcpcs: { code: 'J9039', display: 'Injection, blinatumomab, 1 microgram', unit: 'ug', perUnit: 1 },
    defaultDose: { value: 28, unit: 'ug/d' },
  },
  inotuzumab: {
    label: 'Besponsa (inotuzumab ozogamicin)',
    concept: {
      coding: [
        { system: RXNORM, code: '1942954', display: 'inotuzumab ozogamicin 0.9 MG Injection' },
        { system: HCPCS, code: 'J9229', display: 'Injection, inotuzumab ozogamicin, 0.1 mg' },
      ],
      text: 'Besponsa (inotuzumab ozogamicin) 0.9 mg for injection',
    },
    hcpcs: { code: 'J9229', display: 'Injection, inotuzumab ozogamicin, 0.1 mg', unit: 'mg', perUnit: 0.1 },
    defaultDose: { value: 0.8, unit: 'mg/m2' },
  },
};

/** How a UCUM dose unit reads on the page and in `doseQuantity.unit`. */
export const UNIT_DISPLAY: Record<string, string> = { 'ug/d': 'mcg/day', 'ug/m2/d': 'mcg/m²/day', 'mg/m2': 'mg/m²' };
const UNIT_WIRE: Record<string, string> = { 'ug/d': 'mcg/d', 'ug/m2/d': 'mcg/m2/d', 'mg/m2': 'mg/m2' };

export interface OrderForm {
  drug: DrugKey;
  dose: number | undefined;
  unit: string;
  phase: string;
  cycles: number | undefined;
}

export function drugOf(order: MedicationRequest | undefined): DrugKey {
  const codes = (order?.medicationCodeableConcept?.coding ?? []).map((c) => c.code);
  return DRUGS.inotuzumab.concept.coding!.some((c) => codes.includes(c.code)) || codes.includes('1942950')
    ? 'inotuzumab'
    : 'blinatumomab';
}

/** The form's view of a draft order. */
export function formOf(order: MedicationRequest): OrderForm {
  const dose = order.dosageInstruction?.[0]?.doseAndRate?.[0]?.doseQuantity;
  const unit = dose?.code === 'mcg/d' ? 'ug/d' : (dose?.code ?? DRUGS[drugOf(order)].defaultDose.unit);
  const repeats = order.dispenseRequest?.numberOfRepeatsAllowed;
  return {
    drug: drugOf(order),
    dose: dose?.value,
    unit,
    phase: order.extension?.find((e) => e.url === TREATMENT_PHASE_URL)?.valueCode ?? '',
    cycles: 1 + (typeof repeats === 'number' ? repeats : 0),
  };
}

/**
 * The draft order with the form's edits: drug codes, the first dosage's dose, the treatment-phase extension and
 * `numberOfRepeatsAllowed` (cycles − 1, design.md §6 "Cycles"). Everything else is kept as the chart has it.
 */
export function applyForm(base: MedicationRequest, f: OrderForm): MedicationRequest {
  const o = structuredClone(base);
  const before = formOf(base);
  if (f.drug !== before.drug) o.medicationCodeableConcept = structuredClone(DRUGS[f.drug].concept);
  o.dosageInstruction ??= [{ sequence: 1 }];
  const di = o.dosageInstruction[0];
  di.doseAndRate ??= [{}];
  const dr = di.doseAndRate[0];
  if (f.dose !== undefined && Number.isFinite(f.dose)) {
    dr.doseQuantity = { value: f.dose, unit: UNIT_WIRE[f.unit] ?? f.unit, system: UCUM, code: f.unit };
    if (f.dose !== before.dose || f.unit !== before.unit || f.drug !== before.drug)
      di.text = sigWithDose(di.text, before, f);
  } else delete dr.doseQuantity;
  o.extension = (o.extension ?? []).filter((e) => e.url !== TREATMENT_PHASE_URL);
  if (f.phase) o.extension.unshift({ url: TREATMENT_PHASE_URL, valueCode: f.phase });
  if (o.extension.length === 0) delete o.extension;
  if (f.cycles !== undefined && Number.isInteger(f.cycles) && f.cycles >= 1) {
    o.dispenseRequest = { ...(o.dispenseRequest ?? {}), numberOfRepeatsAllowed: f.cycles - 1 };
  }
  return o;
}

const escapeRe = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The order's sig with the new dose: the prescriber's own words are kept and only the dose they state changes
 * ("56 mcg/day continuous IV infusion, days 1-28" → "28 mcg/day continuous IV infusion, days 1-28"). A sig that
 * states no dose stays as written; a new drug gets a sig of its dose alone (the old drug's directions do not apply).
 */
export function sigWithDose(text: string | undefined, before: OrderForm, f: OrderForm): string | undefined {
  const dose = `${f.dose} ${UNIT_DISPLAY[f.unit] ?? f.unit}`;
  if (f.drug !== before.drug || !text) return dose;
  if (before.dose === undefined) return text;
  const stated = new RegExp(
    `(^|[^\\d.])${escapeRe(String(before.dose))}\\s*(?:mcg|µg|ug|mg)(?:\\s*/\\s*m(?:2|²))?(?:\\s*/\\s*(?:day|d))?(?![\\w²])`,
  );
  return stated.test(text) ? text.replace(stated, (_m, lead: string) => `${lead}${dose}`) : text;
}

/** One line describing the order, for the clinician to check before signing. */
export function describeOrder(order: MedicationRequest): string {
  const drug =
    order.medicationCodeableConcept?.text ?? order.medicationCodeableConcept?.coding?.[0]?.display ?? 'Medication';
  const text = order.dosageInstruction
    ?.map((d) => d.text)
    .filter(Boolean)
    .join('; ');
  const start =
    order.dosageInstruction?.[0]?.timing?.repeat?.boundsPeriod?.start ?? order.dispenseRequest?.validityPeriod?.start;
  const repeats = order.dispenseRequest?.numberOfRepeatsAllowed;
  // design.md §6 "Cycles": the order asks for 1 + numberOfRepeatsAllowed cycles; the line says what is signed.
  const cycles = typeof repeats === 'number' ? `, ${repeats + 1} ${repeats === 0 ? 'cycle' : 'cycles'}` : '';
  return `${drug}${text ? ` — ${text}` : ''}${start ? `, starting ${formatDate(start)}` : ''}${cycles}`;
}

/** The whole numbers of cycles the demo form signs (its field's min and max). */
export const CYCLES_RANGE = { min: 1, max: 12 } as const;

/** Whether the form's cycles can be signed: a whole number from 1 to 12 (not 0, 2.5 or empty). */
export function validCycles(cycles: number | undefined): cycles is number {
  return cycles !== undefined && Number.isInteger(cycles) && cycles >= CYCLES_RANGE.min && cycles <= CYCLES_RANGE.max;
}
