import { describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { askedAmountsOf } from '../../src/coverage/reviewed-approval.js';
import { mixedFactProblems, mixedFacts } from '../../src/policies/policy-structure.js';
import { repoRoot } from '../helpers/stories.js';

/**
 * A derived fact that reads the record and a fact the form may ask loses one side in DTR, which reads CRD's facts and
 * the answers but not the record (design.md §7 "One record of what CRD knew"; cds-services/README.md "Facts that read
 * the record and an answer"). Every such fact must be split (record side in record-only facts), or be listed here with
 * the reason its mix is safe, or the defect it still has (the audit of session 51 found eleven; session 52 split the
 * ten with a defect, and only the safe one is left).
 */
const AUDITED = new Map<string, string>([
  // Safe: every answer decides it without the record.
  ['inRemission', 'safe: every disease-status answer (the whole disease-status value set) decides it without the record; the record is read only while it is unanswered, when CRD\'s value stands'],
  // Awaiting the split (each: what DTR does once the asked fact is answered otherwise than CRD read it): none.
]);

describe('facts that read the record and a fact the form may ask (design.md §7 "One record of what CRD knew")', () => {
  const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });

  it('every policy keeps the record side of such a fact in record-only facts, or the fact is audited', () => {
    expect(content.policies.flatMap((p) => mixedFactProblems(p, AUDITED))).toEqual([]);
  });

  it('progressionOnCourse, split so, is not such a fact; nor are the record-only facts it is derived from', () => {
    const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const names = mixedFacts(centene).map((m) => m.fact);
    for (const f of ['progressionOnCourse', 'progressionRecordedFrom', 'progressionRecordedBy', 'statusOrderUncertain']) {
      expect(centene.factsByName.has(f)).toBe(true);
      expect(names).not.toContain(f);
    }
  });

  it('the body size, the dose, the infusion days, the diagnosis and the cycles of a phase, split so, are not such facts; nor are their record-only parts', () => {
    for (const id of ['centene-blinatumomab', 'mmm-blinatumomab', 'ohsu-blinatumomab', 'bcbsnc-blinatumomab']) {
      const policy = content.policies.find((p) => p.file.id === id)!;
      const names = mixedFacts(policy).map((m) => m.fact);
      const split = ['bsa', 'bsaRecorded', 'infusionOver28Days', 'orderBoundsOver28Days', 'orderCountedInfusionDays', 'orderInfusionDurationDays', 'orderSupplyDays'];
      if (policy.factsByName.has('startingDoseUg')) split.push('startingDoseUg', 'startingDoseOrderedUg', 'startingDoseOrderedPerM2');
      if (id === 'ohsu-blinatumomab' || id === 'bcbsnc-blinatumomab') split.push('requestCyclesBeforeThisPhase', 'requestCyclesBeforeConsolidation');
      if (id === 'ohsu-blinatumomab') split.push('allDiagnosis', 'allDiagnosisOnRecord', 'cyclesGivenThisPhase', 'cyclesGivenMaintenance');
      for (const f of split) {
        expect(policy.factsByName.has(f), `${id} ${f}`).toBe(true);
        expect(names, id).not.toContain(f);
      }
    }
  });

  it('the starting dose, computed from the order\'s dose read alone, is still an amount the order asks for (README "Amounts the order asks for")', () => {
    for (const id of ['centene-blinatumomab', 'mmm-blinatumomab', 'ohsu-blinatumomab']) {
      const policy = content.policies.find((p) => p.file.id === id)!;
      expect(policy.factsByName.get('startingDoseUg')!.asked, id).toBe(true);
      expect(askedAmountsOf(policy), id).toContain('startingDoseUg');
      // The body size it is computed with is the patient's, not asked by the order.
      expect(policy.factsByName.get('bsa')!.asked, id).toBeUndefined();
    }
  });

  it('refuses a fact not audited, and tells the author how to split it', () => {
    const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const problems = mixedFactProblems(centene, new Map([...AUDITED].filter(([f]) => f !== 'inRemission')));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('fact inRemission reads the record (%diagnoses, %conditions) and the asked fact diseaseStatus');
    expect(problems[0]).toContain('Move what it reads of the record into facts that read the record alone');
  });

  it('lists no fact that is not mixed (an audit entry outlives its fact only until the fact is split)', () => {
    const mixed = new Set(content.policies.flatMap((p) => mixedFacts(p).map((m) => m.fact)));
    expect([...AUDITED.keys()].filter((f) => !mixed.has(f))).toEqual([]);
  });
});
