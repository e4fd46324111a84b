import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { evaluatePolicy } from '../policies/evaluate-policy.js';
import type { EvaluationData, PolicyEvaluation } from '../policies/evaluate-policy.js';

/** How far ahead a later planned start is looked for (days). */
const HORIZON_DAYS = 42;

function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/**
 * The first later planned start (within six weeks) at which a not-covered order would no longer be excluded, when
 * what excludes it is a window before the start (design.md §6 "order date": criteria read the planned start, e.g.
 * "no live vaccine within 2 weeks before starting therapy"). The policy is evaluated again with the start moved a day
 * at a time; the same chart and answers, only `%orderDate` changes. Undefined when no such date exists (a diagnosis
 * excluded today is excluded next month too) or the evaluation fails.
 */
export function laterStartThatQualifies(
  policy: CompiledPolicy,
  data: EvaluationData,
  ev: PolicyEvaluation,
): { date: string; criteria: string[] } | undefined {
  if (ev.outcome !== 'not-covered') return undefined;
  const failedNow = new Set(ev.failed.map((r) => r.id));
  try {
    for (let days = 1; days <= HORIZON_DAYS; days++) {
      const date = addDays(data.orderDate, days);
      const later = evaluatePolicy(policy, { ...data, orderDate: date });
      if (later.outcome === 'not-covered' || later.outcome === 'error') continue;
      const lifted = ev.failed
        .filter((r) => !later.failed.some((f) => f.id === r.id) && failedNow.has(r.id))
        .map((r) => r.text);
      return { date, criteria: lifted };
    }
  } catch {
    return undefined;
  }
  return undefined;
}
