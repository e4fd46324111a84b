import { describe, expect, it } from 'vitest';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';
import { approvingPathway } from '../../src/policies/evaluate-policy.js';
import type { Tri } from '../../src/policies/evaluate-policy.js';

/** A policy with only what the choice reads: each pathway's id, approval period and cycle cap. */
function policyOf(pathways: { id: string; approval?: { days?: number; weeks?: number; months?: number }; cycles?: number }[]): CompiledPolicy {
  return { pathways } as unknown as CompiledPolicy;
}

const held = (...ids: [string, Tri][]) => ids.map(([id, result]) => ({ id, result }));

describe('which pathway approves when several hold', () => {
  it('of two uses with the same approval period, the one covering more cycles (Centene Ph- consolidation 1, MRD+ consolidation 4)', () => {
    const policy = policyOf([
      { id: 'ph-negative-consolidation', approval: { months: 6 }, cycles: 1 },
      { id: 'consolidation-single-agent-mrd-positive', approval: { months: 6 }, cycles: 4 },
    ]);
    const pick = approvingPathway(policy, held(['ph-negative-consolidation', true], ['consolidation-single-agent-mrd-positive', true]));
    expect(pick?.id).toBe('consolidation-single-agent-mrd-positive');
  });

  it('a use without a cycle cap covers more than one with a cap', () => {
    const policy = policyOf([
      { id: 'capped', approval: { months: 6 }, cycles: 4 },
      { id: 'uncapped', approval: { months: 6 } },
    ]);
    expect(approvingPathway(policy, held(['capped', true], ['uncapped', true]))?.id).toBe('uncapped');
  });

  it('uses with different periods keep policy order: the specific use listed first names its own authorization', () => {
    // OHSU: a sixth relapsed/refractory cycle is a 24-week renewal, not a new 30-week course, though both hold.
    const policy = policyOf([
      { id: 'relapsed-refractory-continued', approval: { weeks: 24 }, cycles: 2 },
      { id: 'adult-relapsed-refractory', approval: { weeks: 30 }, cycles: 5 },
    ]);
    expect(approvingPathway(policy, held(['relapsed-refractory-continued', true], ['adult-relapsed-refractory', true]))?.id).toBe(
      'relapsed-refractory-continued',
    );
  });

  it('ties go to the first in policy order; pathways that do not hold are never chosen', () => {
    const policy = policyOf([
      { id: 'a', approval: { months: 6 }, cycles: 4 },
      { id: 'b', approval: { months: 6 }, cycles: 4 },
      { id: 'c', approval: { months: 6 }, cycles: 9 },
    ]);
    expect(approvingPathway(policy, held(['a', true], ['b', true], ['c', 'unknown']))?.id).toBe('a');
    expect(approvingPathway(policy, held(['a', false], ['b', 'unknown']))).toBeUndefined();
  });
});
