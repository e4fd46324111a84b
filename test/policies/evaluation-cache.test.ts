import { describe, expect, it } from 'vitest';
import { EvaluationCache } from '../../src/policies/evaluation-cache.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { testContent } from '../helpers/app.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

describe('evaluation cache', () => {
  const policy = testContent().policies.find((p) => p.file.id === 'centene-blinatumomab')!;
  const resources = storyResources('centene-missing-mrd');
  const order = storyOrder('centene-missing-mrd', resources);
  const data = () => evaluationDataFor(indexRecord(recordFromResources(resources, [order], order.requester?.reference)), order, '2026-11-23');

  it('answers identical data from memory and recomputes when anything changes', () => {
    const cache = new EvaluationCache();
    const first = cache.evaluate(policy, data());
    const again = cache.evaluate(policy, data());
    expect(again).toBe(first);
    expect(cache.hits).toBe(1);
    const withAnswer = cache.evaluate(policy, data(), { mrdPercent: 0.5 });
    expect(withAnswer.outcome).not.toBe(first.outcome);
    expect(cache.misses).toBe(2);
  });

  it('keys on the digest of the bytes the data came from when it is given', () => {
    const cache = new EvaluationCache();
    const first = cache.evaluate(policy, data(), {}, 'body-digest-1|0|order|2026-11-23');
    expect(cache.evaluate(policy, data(), {}, 'body-digest-1|0|order|2026-11-23')).toBe(first);
    expect(cache.hits).toBe(1);
    // Another body (another digest), or the same body with answers, is evaluated afresh.
    cache.evaluate(policy, data(), {}, 'body-digest-2|0|order|2026-11-23');
    const answered = cache.evaluate(policy, data(), { mrdPercent: 0.5 }, 'body-digest-1|0|order|2026-11-23');
    expect(answered.outcome).not.toBe(first.outcome);
    expect(cache.misses).toBe(3);
  });

  it('forgets the least recently used entry beyond its capacity', () => {
    const cache = new EvaluationCache(1);
    cache.evaluate(policy, data());
    cache.evaluate(policy, data(), { mrdPercent: 0.5 });
    cache.evaluate(policy, data());
    expect(cache.misses).toBe(3);
  });
});
