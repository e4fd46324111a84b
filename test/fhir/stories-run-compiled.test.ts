import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { fhirPathStats } from '../../src/fhir/fhirpath.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { testContent } from '../helpers/app.js';
import { storyIds, storyOrder, storyResources } from '../helpers/stories.js';

/**
 * Every policy's facts over every sandbox story (real-shaped records, every result dated to the day) run as compiled
 * code, none handed to fhirpath.js (src/fhir/fhirpath-compiler.ts BAIL), which costs about 0.5 ms an evaluation: a
 * fact whose evaluations bail on ordinary records makes every hook slower. At 1fc2898 two OHSU facts calling
 * maybeRecent over an empty earlier-course date bailed on 71 of 75 policy x story evaluations, and order-sign lost
 * two thirds of its throughput.
 */
describe('content facts over the sandbox stories', () => {
  it('run compiled, without handing an evaluation to fhirpath.js', () => {
    const content = testContent();
    const bailed = new Map<string, number>();
    let evaluations = 0;
    for (const id of storyIds()) {
      const resources = structuredClone(storyResources(id)) as Resource[];
      const order = storyOrder(id, resources) as MedicationRequest;
      const data = evaluationDataFor(indexRecord(recordFromResources(resources, [order], order.requester?.reference)), order, '2026-11-23');
      const { memo: _memo, ...vars } = data;
      for (const policy of content.policies) {
        const env = { ...vars, diagnosesComplete: data.diagnosesComplete ?? true, orderDateTime: `${data.orderDate}T00:00:00Z`, orderStart: data.orderStart ?? [], policyDrug: policy.file.drug } as Record<string, unknown>;
        for (const f of policy.facts) {
          const before = fhirPathStats.bails + fhirPathStats.faults;
          let v: unknown[] = [];
          try {
            v = f.expr(data.order, env);
          } catch {
            /* an error leaves the fact unknown, as in readFacts */
          }
          env[f.name] = v.length === 1 ? v[0] : [];
          evaluations++;
          if (fhirPathStats.bails + fhirPathStats.faults > before) bailed.set(`${policy.file.id} ${f.name}`, (bailed.get(`${policy.file.id} ${f.name}`) ?? 0) + 1);
        }
      }
    }
    expect(evaluations).toBeGreaterThan(5000);
    expect(Object.fromEntries(bailed)).toEqual({});
  });
});
