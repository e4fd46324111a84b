import { describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { mixedFactProblems, mixedFacts } from '../../src/policies/policy-structure.js';
import { repoRoot } from '../helpers/stories.js';

/**
 * A derived fact that reads the record and a fact the form may ask loses one side in DTR, which reads CRD's facts and
 * the answers but not the record (design.md §7 "One record of what CRD knew"; cds-services/README.md "Facts that read
 * the record and an answer"). Every such fact must be split (record side in record-only facts), or be listed here with
 * the reason its mix is safe, or the defect it still has (audit of session 51: a fix needs record-only facts, and the
 * OHSU Library, which imports them all, has no ELM room for them without sharing more first).
 */
const AUDITED = new Map<string, string>([
  // Safe: every answer decides it without the record.
  ['inRemission', 'safe: every disease-status answer (the whole disease-status value set) decides it without the record; the record is read only while it is unanswered, when CRD\'s value stands'],
  // Awaiting the split (each: what DTR does once the asked fact is answered otherwise than CRD read it).
  ['bsa', 'pending: a recorded BSA (which CRD prefers over weight x height) is lost once weight or height is answered; DTR computes weight x height'],
  ['startingDoseUg', 'pending: the order\'s dose is lost once weight or height is answered; the starting dose turns unknown'],
  ['infusionOver28Days', 'pending: the order\'s timing is lost once cycles requested or the phase is answered (the order stated neither)'],
  ['requestCyclesBeforeThisPhase', 'pending: earlier requests of the phase are lost once the phase is answered (the order stated none)'],
  ['allDiagnosis', 'pending: a B-ALL answer "No" reads the diagnoses over an empty record (false) where CRD read ALL of unknown lineage (true)'],
  ['cyclesGivenThisPhase', 'pending: the phase\'s cycles on record are lost once the phase is answered (the order stated none)'],
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

  it('refuses a fact not audited, and tells the author how to split it', () => {
    const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const problems = mixedFactProblems(centene, new Map([...AUDITED].filter(([f]) => f !== 'bsa')));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('fact bsa reads the record (%observations, %orderStart) and the asked facts weightKg, heightCm');
    expect(problems[0]).toContain('Move what it reads of the record into facts that read the record alone');
  });

  it('lists no fact that is not mixed (an audit entry outlives its fact only until the fact is split)', () => {
    const mixed = new Set(content.policies.flatMap((p) => mixedFacts(p).map((m) => m.fact)));
    expect([...AUDITED.keys()].filter((f) => !mixed.has(f))).toEqual([]);
  });
});
