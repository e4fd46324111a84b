/**
 * The result of one policy criterion in a reviewer's words (design.md §5 "One model, three uses": the PAS trace).
 * A requirement or covered use is met or not; a limit is within its bound, exceeded, or not applicable to this
 * patient (a limit on a covered use the patient is not on holds vacuously, and "Met" there read as checked).
 */

type Tri = true | false | 'unknown';

/** What the trace needs of a criterion: its kind, result and, for a limit, whether it concerns the patient. */
export interface CriterionOutcome {
  kind?: 'requirement' | 'pathway' | 'limit';
  result: Tri;
  /** Limits: whether the limit concerns the patient; absent on requests stored before it was recorded. */
  applies?: Tri;
}

/** The word shown and its tone (`true` ok, `false` bad, `unknown` to look at, `na` set aside). */
export interface ResultWords {
  word: string;
  tone: 'true' | 'false' | 'unknown' | 'na';
}

/** The result of a criterion as the trace shows it (see the module comment for why limits read apart). */
export function criterionResult(c: CriterionOutcome): ResultWords {
  if (c.kind !== 'limit') {
    if (c.result === 'unknown') return { word: 'Unknown', tone: 'unknown' };
    return c.result ? { word: 'Met', tone: 'true' } : { word: 'Not met', tone: 'false' };
  }
  if (c.applies === false) return { word: 'Not applicable', tone: 'na' };
  if (c.result === false) return { word: 'Exceeded', tone: 'false' };
  if (c.result === 'unknown') return { word: 'Unknown', tone: 'unknown' };
  if (c.applies === 'unknown') return { word: 'Not known to apply', tone: 'unknown' };
  // A request stored before applicability was recorded: only "not exceeded" is known.
  return c.applies === true ? { word: 'Within the limit', tone: 'true' } : { word: 'Not exceeded', tone: 'true' };
}
