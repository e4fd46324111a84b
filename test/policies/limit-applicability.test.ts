import { describe, expect, it } from 'vitest';
import { applicabilityOf } from '../../src/policies/limit-applicability.js';

describe('when a limit applies (the trace tells "not applicable" apart from "within the limit")', () => {
  it('reads the condition of a limit on one covered use, written with implies or iif', () => {
    expect(applicabilityOf("(relapsedOrRefractory or earlierCourseIndication = 'relapsed-refractory') implies courseCyclesGiven + cyclesRequested <= 9")).toBe(
      "(relapsedOrRefractory or earlierCourseIndication = 'relapsed-refractory')",
    );
    expect(applicabilityOf("iif(treatmentPhase = 'maintenance', cyclesGivenThisPhase + cyclesRequested <= 5, true)")).toBe("treatmentPhase = 'maintenance'");
    // Applies unless the condition holds (an unknown condition takes the otherwise branch: the bound is checked).
    expect(applicabilityOf('iif(weightClassRow = false, true, dailyDoseUg <= doseCapUg)')).toBe('iif(weightClassRow = false, false, true)');
  });

  it('a limit on every patient, or one whose iif is only part of the expression, has no condition', () => {
    expect(applicabilityOf('dailyDoseUg <= 28 or (doseGuidelineSupported.exists() and doseGuidelineSupported)')).toBeUndefined();
    expect(applicabilityOf('iif(a, b, true) and c')).toBeUndefined();
    expect(applicabilityOf("requestedUnits <= 980 and note != 'a implies b'")).toBeUndefined();
  });
});
