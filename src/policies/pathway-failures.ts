import type { CompiledPolicy, CompiledRule } from './compiled-policy.js';
import { ruleClosure, type FactValue, type PolicyEvaluation } from './evaluate-policy.js';
import { reviewerLabel } from './policy-loader.js';

/**
 * What failed when no covered use of a policy fits an order (design.md §6 "Clinical readings": a not-covered reason
 * cites the clause, and questions and citations concern only this patient). Each false pathway is read conjunct by
 * conjunct: the conjuncts that are false are what failed, named in the policy's words (the facts' labels). A pathway
 * is for other patients when one of its false conjuncts rests on the known age or renewal status alone (the infant
 * criteria for a 45-year-old, continued therapy on a first request); of the rest, the covered uses the order came closest to (fewest conditions not met) are the ones
 * that concern it, those for the treatment phase the order names first. Uses naming the same failure are one entry
 * with their clauses together.
 */
export interface FailedUse {
  /** The conditions not met, in the policy's words. */
  words: string;
  /** The clauses of the covered uses that failed on them. */
  cites: string[];
}

/** How many failed uses a reason names: a card shows a short reason, so the closest few, then a count. */
export const MAX_FAILED_USES = 3;

/**
 * The facts of a policy with a given `reasonRole` (cds-services/README.md "Facts"): 'audience', the facts that say
 * which covered uses a request is for at all (the shared library's `birthDate`: infant, pediatric, AYA and adult
 * criteria; `renewalRequest`: renewal criteria concern renewals only); 'request', the facts that say what the order
 * asks for rather than what the patient has (its treatment phase). Policy knowledge, so it is data, not code.
 */
function factsWithRole(policy: CompiledPolicy, role: 'audience' | 'request'): string[] {
  return policy.facts.filter((f) => f.def.reasonRole === role).map((f) => f.name);
}

/**
 * Whether a conjunct is decided by who the request is for: every fact it reads is computed from an audience fact. A
 * false conjunct computed from these alone gates a pathway out for this patient.
 */
function gate(policy: CompiledPolicy, audience: string[], facts: string[]): boolean {
  return (
    facts.length > 0 &&
    facts.every((f) => {
      const reads = ruleClosure(policy, [f]);
      return audience.some((g) => reads.includes(g));
    })
  );
}

function show(value: FactValue): string {
  return typeof value === 'boolean' ? (value ? 'yes' : 'no') : String(value);
}

/**
 * A fact in the policy's words: its label, else its question up to the question mark without its parenthesised
 * examples (a card has little room), else its name.
 */
function labelOf(policy: CompiledPolicy, name: string): string {
  const def = policy.factsByName.get(name)?.def;
  const words = def?.label ?? def?.question?.replace(/\s*\([^()]*\)/g, '').replace(/\?[\s\S]*$/, '?');
  return (words ?? (def ? reviewerLabel(def) : undefined))?.replace(/\s+/g, ' ').trim() ?? name;
}

/** "label: value", or "question? value" for a fact named by its question. */
function withValue(label: string, value: FactValue): string {
  return `${label}${label.endsWith('?') ? '' : ':'} ${show(value)}`;
}

/**
 * One false conjunct in words: a bare fact is its label (the condition itself); anything else names each fact it
 * reads with the value the record or the answers gave ("Treatment phase: induction").
 */
function conjunctWords(policy: CompiledPolicy, conjunct: { text: string; facts: string[] }, values: Map<string, FactValue>): string {
  const bare = /^[A-Za-z][A-Za-z0-9]*$/.test(conjunct.text) ? policy.factsByName.get(conjunct.text) : undefined;
  if (bare?.def.label) return bare.def.label.replace(/\s+/g, ' ').trim();
  const known = conjunct.facts.filter((f) => values.has(f));
  return known.map((f) => withValue(labelOf(policy, f), values.get(f)!)).join(', ');
}

/** The false conjuncts of a false pathway (its whole condition when it is not a chain of `and`). */
function falseConjuncts(rule: CompiledRule, factValues: Record<string, FactValue>): { text: string; facts: string[] }[] {
  const out: { text: string; facts: string[] }[] = [];
  for (const c of rule.conjuncts ?? []) {
    try {
      const v = c.when(factValues, {});
      if (v.length === 1 && v[0] === false) out.push(c);
    } catch {
      // A conjunct that cannot be read on its own says nothing; the pathway as a whole is false.
    }
  }
  return out;
}

/**
 * Whether a conjunct reads only what the order asks for (facts with `reasonRole: request`, its phase): a use missed
 * only by it is for another request (consolidation, when maintenance is ordered), so it is named after the uses the
 * order asks for and misses by a criterion.
 */
function aboutTheRequest(requestFacts: string[], conjunct: { facts: string[] }): boolean {
  return conjunct.facts.length > 0 && conjunct.facts.every((f) => requestFacts.includes(f));
}

/**
 * The covered uses that concern this order and what each lacked, closest first, at most {@link MAX_FAILED_USES};
 * `more` counts the others of the same closeness left unnamed. Empty when the evaluation has no false pathway.
 */
export function failedUses(policy: CompiledPolicy, ev: PolicyEvaluation): { uses: FailedUse[]; more: number } {
  const factValues: Record<string, FactValue> = {};
  const values = new Map<string, FactValue>();
  for (const f of ev.facts) {
    if (f.value === undefined) continue;
    factValues[f.name] = f.value;
    values.set(f.name, f.value);
  }
  const audience = factsWithRole(policy, 'audience');
  const requestFacts = factsWithRole(policy, 'request');
  const candidates = ev.rules
    .filter((r) => r.kind === 'pathway' && r.result === false)
    .map((r) => {
      const rule = policy.pathways.find((p) => p.id === r.id);
      const failed = rule ? falseConjuncts(rule, factValues) : [];
      return { result: r, failed, otherRequest: failed.some((c) => aboutTheRequest(requestFacts, c)), forOthers: failed.some((c) => gate(policy, audience, c.facts)) };
    })
    .filter((c) => c.failed.length > 0);
  // Uses for other ages are not cited, unless every use is (then the age is what failed, and those are named).
  const concerning = candidates.some((c) => !c.forOthers) ? candidates.filter((c) => !c.forOthers) : candidates;
  if (concerning.length === 0) return { uses: [], more: 0 };
  const fewest = Math.min(...concerning.map((c) => c.failed.length));
  const uses: FailedUse[] = [];
  // Of those, the uses for the phase the order names come first (policy order otherwise): an adult's Ph-negative
  // maintenance order without POMP names the maintenance use (I.A.4.c.iii) before Ph-negative consolidation (I.A.4.c.i),
  // which it misses only by asking for maintenance.
  const closest = [...concerning.filter((x) => !x.otherRequest), ...concerning.filter((x) => x.otherRequest)].filter((x) => x.failed.length === fewest);
  for (const c of closest) {
    const words = [...new Set(c.failed.map((x) => conjunctWords(policy, x, values)).filter((w) => w.length > 0))].join(' and ') || c.result.text;
    const same = uses.find((u) => u.words === words);
    if (same) {
      if (!same.cites.includes(c.result.cite)) same.cites.push(c.result.cite);
    } else uses.push({ words, cites: [c.result.cite] });
  }
  return { uses: uses.slice(0, MAX_FAILED_USES), more: Math.max(0, uses.length - MAX_FAILED_USES) };
}
