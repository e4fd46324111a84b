import { createHash } from 'node:crypto';
import type { CompiledPolicy } from './compiled-policy.js';
import type { EvaluationData, FactValue, PolicyEvaluation } from './evaluate-policy.js';
import { evaluatePolicy } from './evaluate-policy.js';

/**
 * Remembers recent policy evaluations. Evaluation is a pure function of the policy, the order's data and the answers,
 * and EHRs send the same data again and again: order-select fires on every edit and order-sign repeats the last one,
 * a re-sign after a form or a retry after a timeout carries the same record (CRD [resp-35], [resp-36]). A hit skips
 * the FHIRPath work, which is most of a hook's cost. Any change to the input is a miss: the key is the digest of the
 * bytes the data was built from (`source`: the request body and EHR answers, with the order and the date), or else a
 * hash of the data itself.
 */
export class EvaluationCache {
  private readonly entries = new Map<string, PolicyEvaluation>();
  hits = 0;
  misses = 0;

  constructor(private readonly capacity = 500) {}

  evaluate(policy: CompiledPolicy, data: EvaluationData, answers: Record<string, FactValue> = {}, source?: string): PolicyEvaluation {
    const input = source !== undefined ? `${source}|${JSON.stringify(answers)}` : createHash('sha256').update(JSON.stringify([{ ...data, memo: undefined }, answers])).digest('base64');
    const key = `${policy.file.id}|${policy.file.version}|${input}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      // Refresh its place in the least-recently-used order.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    this.misses++;
    const result = evaluatePolicy(policy, data, answers);
    // Failures are not remembered: a later call should try again and log again.
    if (result.outcome !== 'error') {
      this.entries.set(key, result);
      if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    }
    return result;
  }
}
