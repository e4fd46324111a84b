import type { MedicationRequest } from '@medplum/fhirtypes';
import type { Proposal } from './evaluate-policy.js';
import { DOSE_RATE_TYPE, prescribedDose } from '../fhir/dose.js';

// The Propose Alternate Request's order (design.md §4, §6 "Limits"), written here in the domain core rather than in the
// hook's response: the evaluation judges this very order again against every limit of the policy before it proposes it
// (evaluate-policy.ts `alternateOutcome`), and the card offers the same order.

/**
 * The same order within every limit it exceeds (design.md §4 Propose Alternate Request, §6 "Limits"): the dose at
 * the policy maximum, the dispense quantity at the amount limit and the number of cycles the course still allows, each
 * where the evaluation proposes one.
 * Undefined when there is nothing to propose or the order carries no dose to lower.
 */
export function alternateOrder(order: MedicationRequest, proposals: Proposal[]): { order: MedicationRequest; label: string; exceeds: string; within: string } | undefined {
  const dose = proposals.find((p) => p.kind === 'dose');
  const cycles = proposals.find((p) => p.kind === 'cycles');
  const quantity = proposals.find((p) => p.kind === 'quantity');
  if (!dose && !cycles && !quantity) return undefined;
  const updated = structuredClone(order);
  const changes: string[] = [];
  const within: string[] = [];
  let today = '';
  if (dose) {
    // An order written per m² is proposed per m² (design.md §6 "Limits": "15 mcg/m²/day below" 45 kg), so that the
    // accepted order still follows the patient's BSA; its label gives today's mcg/day equivalent. A flat order keeps the
    // flat dose.
    const perM2 = dose.perM2 && perM2DoseAbove(order, dose.perM2.value, dose.perM2.unit) ? dose.perM2 : undefined;
    // Without today's BSA the proposal is its per-m² form alone, which only an order written per m² can take.
    if (!perM2 && dose.perM2 && dose.unit === dose.perM2.unit) return undefined;
    const shown = perM2 ?? dose;
    const target = { value: Math.round(shown.value * 10) / 10, unit: shown.display ?? shown.unit, system: 'http://unitsofmeasure.org', code: shown.unit };
    if (!proposeDose(updated, target)) return undefined;
    const label = doseLabel(shown.value, shown.unit, shown.display);
    changes.push(`the dose to ${label}`);
    within.push(label);
    if (perM2 && dose.unit !== perM2.unit) today = `; ${doseLabel(dose.value, dose.unit, dose.display)} at today's BSA`;
  }
  if (quantity) {
    // The amount limit is per cycle (or per its period): the same cycles with less drug dispensed, so the order's
    // schedule, days supply and validity stay as written; only dispenseRequest.quantity changes (design.md §6 "Limits").
    const unit = quantity.display ?? quantity.unit;
    updated.dispenseRequest = { ...updated.dispenseRequest, quantity: { value: quantity.value, unit, system: 'http://unitsofmeasure.org', code: quantity.unit } };
    changes.push(`the quantity dispensed to ${quantity.value} ${unit}`);
    within.push(`${quantity.value} ${unit}`);
  }
  if (cycles) {
    // An order asks for 1 + numberOfRepeatsAllowed cycles (design.md §6 "Cycles").
    updated.dispenseRequest = { ...updated.dispenseRequest, numberOfRepeatsAllowed: cycles.value - 1 };
    const count = `${cycles.value} ${cycles.value === 1 ? 'cycle' : 'cycles'}`;
    changes.push(`the request to ${count}`);
    within.push(count);
  }
  return {
    order: updated,
    label: `Change ${changes.join(' and ')} (policy maximum${today})`,
    exceeds: [dose && 'dose', quantity && 'quantity', cycles && 'cycles'].filter((w): w is string => !!w).join(' and '),
    within: within.join(', '),
  };
}

/**
 * Writes the proposed dose into the order: every instruction whose dose in the same unit exceeds it (a step-dosed
 * cycle keeps its lower first-week dose), or, when units differ, the instruction holding the highest dose (the last).
 * Returns false when the order has no dose to change.
 */
export function proposeDose(order: MedicationRequest, target: { value: number; unit: string; system: string; code: string }): boolean {
  const dosed = (order.dosageInstruction ?? []).filter((i) => !!prescribedDose(i)?.doseQuantity);
  if (dosed.length === 0) return false;
  const sameUnit = (q: { code?: string; unit?: string }) =>
    q.code === target.code ||
    (target.code === 'ug/d' && (q.code === 'mcg/d' || q.unit === 'mcg/d')) ||
    (PER_M2_CODES.has(target.code) && isPerM2(q)) ||
    (q.code === undefined && q.unit !== undefined && (UNIT_TEXTS[target.code] ?? [target.code]).includes(q.unit));
  const over = dosed.filter((i) => sameUnit(prescribedDose(i)!.doseQuantity!) && (prescribedDose(i)!.doseQuantity!.value ?? 0) > target.value);
  const changed = over.length > 0 ? over : [dosed[dosed.length - 1]];
  // One spelling of a unit per order (acceptance review s48, 5): a line kept in the same UCUM unit ("mg/m2") gives the
  // changed lines its text, so the card never writes "mg/m²" beside "mg/m2".
  const kept = dosed.filter((i) => !changed.includes(i)).map((i) => prescribedDose(i)!.doseQuantity!).find((q) => q.code === target.code && q.unit);
  const unit = kept?.unit ?? target.unit;
  for (const instruction of changed) {
    const dose = prescribedDose(instruction)!;
    const before = dose.doseQuantity!.value;
    dose.doseQuantity = { ...target, unit };
    // A `calculated` entry beside the ordered one was worked out from the dose just replaced: kept, it would state the
    // old dose beside the new one (review-accept s46 F1).
    instruction.doseAndRate = instruction.doseAndRate!.filter((e) => e === dose || !e.type?.coding?.some((c) => c.system === DOSE_RATE_TYPE && c.code === 'calculated'));
    // The sig keeps its route and schedule, but never states the dose it replaced: an accepted suggestion whose text
    // said 60 mcg/day over a structured 28 would be an order that contradicts itself.
    if (instruction.text && before !== undefined) instruction.text = restateDose(instruction.text, before, `${target.value} ${unit}`);
  }
  return true;
}

/**
 * Rewrites each "60 mcg/day" (or "60mcg daily", "60 micrograms/m2/d", "1.8 mg/m2", ...) stating `before` in a sig as
 * `after`.
 */
function restateDose(text: string, before: number, after: string): string {
  const value = String(before).replace('.', '\\.');
  const stated = new RegExp(
    `(?<![\\d.])${value}(?:\\.0+)?\\s*(?:mcg|µg|ug|micrograms?|mg|milligrams?)(?:\\s*/\\s*m(?:2|²))?(?:\\s*/\\s*(?:day|d)\\b|\\s+(?:per|a)\\s+day\\b|\\s+daily\\b)?`,
    'gi',
  );
  return text.replace(stated, after);
}

/** UCUM codes (and, without a code, unit texts) of a dose per m² of body surface area per day, as the dose facts read. */
const PER_M2_CODES = new Set(['ug/m2/d', 'ug/(m2.d)', 'mcg/m2/d']);
const PER_M2_UNITS = new Set(['mcg/m2/day', 'mcg/m2/d']);

function isPerM2(q: { code?: string; unit?: string }): boolean {
  return q.code !== undefined ? PER_M2_CODES.has(q.code) : q.unit !== undefined && PER_M2_UNITS.has(q.unit);
}

/** Unit texts (a dose with no UCUM code) that state a proposal's UCUM unit, where they differ from the code. */
const UNIT_TEXTS: Record<string, string[]> = { 'mg/m2': ['mg/m2', 'mg/m²'] };

/**
 * Whether the order states a dose per m² above `limit` in the proposal's per-m² unit `unit` (the exceeding dose is
 * written per m²): mcg/m²/day for Blincyto, mg/m² a dose for Besponsa.
 */
function perM2DoseAbove(order: MedicationRequest, limit: number, unit: string): boolean {
  const perM2 = (q: { code?: string; unit?: string }) =>
    PER_M2_CODES.has(unit) ? isPerM2(q) : q.code !== undefined ? q.code === unit : q.unit !== undefined && (UNIT_TEXTS[unit] ?? [unit]).includes(q.unit);
  return (order.dosageInstruction ?? []).some((i) => {
    const q = prescribedDose(i)?.doseQuantity;
    return !!q && perM2(q) && (q.value ?? 0) > limit;
  });
}

function doseLabel(value: number, unit: string, display?: string): string {
  const v = Math.round(value * 10) / 10;
  return `${v} ${display ?? unit}`;
}
