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
  /** The planned start (YYYY-MM-DD): the earliest `timing.repeat.boundsPeriod.start` of the order's dosage instructions. */
  start?: string;
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
    start: plannedStartOf(order),
  };
}

const DAY = /^\d{4}-\d{2}-\d{2}/;

/**
 * The order's planned start, to the day: the earliest start of any dosage instruction (a step-dosed cycle's days 1-7
 * and 8-28 each have one; FHIR orders them by `sequence`, not by place), as the service reads it (design.md §6 "order
 * date"). Undefined when no instruction states one.
 */
export function plannedStartOf(order: MedicationRequest): string | undefined {
  return (order.dosageInstruction ?? [])
    .map((d) => d.timing?.repeat?.boundsPeriod?.start)
    .filter((d): d is string => !!d && DAY.test(d))
    .map((d) => d.slice(0, 10))
    .sort()[0];
}

/** A date or dateTime moved by whole days, its time of day (if any) kept. */
function shiftDays(value: string | undefined, days: number): string | undefined {
  if (!value || !DAY.test(value)) return value;
  const moved = new Date(Date.parse(`${value.slice(0, 10)}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
  return moved + value.slice(10);
}

/**
 * A new planned start: every dosage instruction's `timing.repeat.boundsPeriod` (start and end) and the prescription's
 * `dispenseRequest.validityPeriod` move by the same number of days, so a step-dosed cycle keeps its days 1-7 and 8-28;
 * an order that stated no start gets one on its first instruction.
 */
function moveStart(o: MedicationRequest, from: string | undefined, to: string): void {
  o.dosageInstruction ??= [{ sequence: 1 }];
  if (!from) {
    const di = o.dosageInstruction[0];
    di.timing = { ...(di.timing ?? {}), repeat: { ...(di.timing?.repeat ?? {}), boundsPeriod: { ...(di.timing?.repeat?.boundsPeriod ?? {}), start: to } } };
    return;
  }
  const days = Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
  for (const di of o.dosageInstruction) {
    const p = di.timing?.repeat?.boundsPeriod;
    if (!p) continue;
    if (p.start) p.start = shiftDays(p.start, days);
    if (p.end) p.end = shiftDays(p.end, days);
  }
  const v = o.dispenseRequest?.validityPeriod;
  if (v?.start) v.start = shiftDays(v.start, days);
  if (v?.end) v.end = shiftDays(v.end, days);
}

/**
 * The draft order with the form's edits: drug codes, the first dosage's dose, the treatment-phase extension,
 * `numberOfRepeatsAllowed` (cycles − 1, design.md §6 "Cycles") and the planned start (see moveStart). Everything else
 * is kept as the chart has it.
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
  if (f.start && DAY.test(f.start) && f.start.slice(0, 10) !== before.start) moveStart(o, before.start, f.start.slice(0, 10));
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
