import type { FactType } from './policy-schema.js';

/**
 * How many decimals a clinician reads a computed amount to, by its UCUM unit (design.md §7 "Pre-filled amounts"). A
 * dose divided by the body surface area (Besponsa 0.8673675867890412 mg/m²) or a weight converted from pounds is
 * shown rounded, never to 16 digits: mg/m² and m² to 2 decimals (BSA is recorded to 0.01 m²), mcg, mcg/day,
 * mcg/m²/day, billable units, kg and cm to 1 decimal (doses and amounts stated in whole mcg; a scale or stadiometer
 * reads to 0.1). Units not listed (MRD %, whose levels run to 0.001 %) are shown as read. Display only: the server keeps
 * deciding on the unrounded value it read, and an answer that is that value so rounded is read as it
 * ({@link sameAtDisplay}). A value that rounding would put on a coarser step, where limits are stated (0.804 mg/m²
 * shown 0.80 beside the label's 0.8; 44.95 kg shown 45.0 beside the 45 kg weight class), is shown with more decimals
 * ({@link shownDecimals}).
 */
const DISPLAY_DECIMALS: Record<string, number> = {
  'mg/m2': 2,
  'mg/m2/d': 2,
  m2: 2,
  ug: 1,
  'ug/d': 1,
  'ug/m2/d': 1,
  '{units}': 1,
  kg: 1,
  cm: 1,
};

/** The decimals a decimal fact's pre-filled answer is shown to; undefined: shown as read. */
export function displayDecimals(def: { type: FactType; unit?: string }): number | undefined {
  return def.type === 'decimal' && def.unit !== undefined ? DISPLAY_DECIMALS[def.unit] : undefined;
}

/**
 * A value rounded to `decimals` as FHIRPath's `round(precision)` does in fhirpath.js (the renderers' engine), so the
 * payer's pre-filled answer and a renderer's initialExpression show the same number.
 */
export function roundTo(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}

/** At most this many decimals past a unit's own are added so a rounded value does not land on a coarser step. */
export const EXTRA_DECIMALS = 2;

/**
 * The decimals a value is shown to: its unit's `decimals`, plus one while the value so rounded is not the value and
 * lands on the step one decimal coarser, up to {@link EXTRA_DECIMALS} more. The labels and seeds state their bounds on
 * those coarser steps (0.8 mg/m², 45 kg, 28 mcg/day), so a value just past a bound would otherwise read as the bound
 * itself: 0.804 mg/m² is shown 0.804 (not 0.80, which reads as the label's 0.8), 44.95 kg is 44.95 (not 45.0), 0.8673
 * mg/m² stays 0.87. The FHIRPath `initialExpression` (src/dtr/expressions.ts `shownExpression`) and the CQL
 * `"<fact>AsShown"` define (src/cql/cql-library-source.ts) spell the same rule, so every client shows one number.
 */
export function shownDecimals(value: number, decimals: number): number {
  let d = decimals;
  while (d < decimals + EXTRA_DECIMALS && roundTo(value, d) !== value && roundTo(value, d) === roundTo(value, d - 1)) d++;
  return d;
}

/** The value a pre-filled answer shows: rounded to the fact's display decimals ({@link shownDecimals}), or as read. */
export function forDisplay(def: { type: FactType; unit?: string }, value: number): number {
  const d = displayDecimals(def);
  return d === undefined ? value : roundTo(value, shownDecimals(value, d));
}

/**
 * Whether an answer is the value read from the record or the order as the form showed it (rounded to the fact's display
 * decimals, or to any of the {@link EXTRA_DECIMALS} more a form of an earlier version may have shown): the pre-filled
 * answer sent back unchanged. Such an answer is read as the unrounded value, so rounding never moves a decision across a
 * limit's edge (e.g. 0.804 mg/m² stays above Besponsa's 0.8 whether the form showed 0.804 or 0.80).
 */
export function sameAtDisplay(def: { type: FactType; unit?: string }, answer: unknown, read: unknown): boolean {
  if (answer === read) return true;
  const d = displayDecimals(def);
  if (d === undefined || typeof answer !== 'number' || typeof read !== 'number' || !Number.isFinite(read)) return false;
  for (let k = d; k <= d + EXTRA_DECIMALS; k++) if (roundTo(read, k) === answer) return true;
  return false;
}
