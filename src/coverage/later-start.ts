import type { CompiledPolicy, CompiledRule } from '../policies/compiled-policy.js';
import { evaluatePolicy, evaluateRules, ruleReadsOrderDate } from '../policies/evaluate-policy.js';
import type { EvaluationData, PolicyEvaluation } from '../policies/evaluate-policy.js';

/** How far ahead a later planned start is looked for (days). */
const HORIZON_DAYS = 42;

function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/**
 * Whether the exclusion cannot depend on the start date, so no later start can lift it: a false requirement, or
 * (when every pathway is false) every pathway, reads no dated fact. Only the order date changes between the
 * evaluations below, so such a rule keeps its result at every date; skipping them gives the same answer.
 */
function excludedAtEveryDate(policy: CompiledPolicy, ev: PolicyEvaluation): boolean {
  const dated = (id: string) => {
    const rule = [...policy.requirements, ...policy.pathways].find((r) => r.id === id);
    return rule === undefined || ruleReadsOrderDate(policy, rule);
  };
  const failedRequirements = ev.rules.filter((r) => r.kind === 'requirement' && r.result === false);
  if (failedRequirements.some((r) => !dated(r.id))) return true;
  const pathways = ev.rules.filter((r) => r.kind === 'pathway');
  return pathways.every((p) => p.result === false) && pathways.every((p) => !dated(p.id));
}

/**
 * The rules that make the order not covered now: its false requirements, or else every pathway (all false).
 * While any false requirement stays false, or every pathway stays false, the order stays not covered.
 */
function exclusionRules(policy: CompiledPolicy, ev: PolicyEvaluation): { kind: 'requirements' | 'pathways'; rules: CompiledRule[] } {
  const failed = new Set(ev.rules.filter((r) => r.kind === 'requirement' && r.result === false).map((r) => r.id));
  const requirements = policy.requirements.filter((r) => failed.has(r.id));
  return requirements.length > 0 ? { kind: 'requirements', rules: requirements } : { kind: 'pathways', rules: policy.pathways };
}

/** Whether the order is still not covered (or the evaluation fails) given those rules' results at another date. */
function stillExcluded(excluding: ReturnType<typeof exclusionRules>, results: ReturnType<typeof evaluateRules>): boolean {
  if (results === 'error') return true;
  return excluding.kind === 'requirements' ? results.some((r) => r === false) : results.every((r) => r === false);
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
  if (ev.outcome !== 'not-covered' || excludedAtEveryDate(policy, ev)) return undefined;
  const failedNow = new Set(ev.failed.map((r) => r.id));
  const excluding = exclusionRules(policy, ev);
  try {
    for (let days = 1; days <= HORIZON_DAYS; days++) {
      const date = addDays(data.orderDate, days);
      // Object.assign, not a spread with a property after it: see factEnvironment (evaluate-policy.ts). An order that
      // states its start is read as stating the later one, so its recency windows end there too (design.md §6).
      const dataThen: EvaluationData = Object.assign({}, data, data.orderStart !== undefined ? { orderDate: date, orderStart: date } : { orderDate: date });
      // Most dates change nothing: the rules that exclude the order now are read first, from their own facts only,
      // and the whole policy is evaluated only at a date where they no longer exclude it.
      if (stillExcluded(excluding, evaluateRules(policy, dataThen, excluding.rules))) continue;
      const later = evaluatePolicy(policy, dataThen);
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
