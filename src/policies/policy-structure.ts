import type { CompiledFact, CompiledPolicy, CompiledRule } from './compiled-policy.js';
import { tokenize } from '../fhir/fhirpath-tokens.js';
import { factClosure } from './fact-closure.js';

/**
 * Which askable facts a policy's rules can ever ask for, and how they group on a form. This is the static view of
 * `evaluatePolicy`'s `missingFacts` (design.md §5 "One model, three uses"): a rule needs the askable facts it reads,
 * and for a derived fact (askable: false) the facts that fact is computed from, stopping at askable ones.
 */

export type GroupKind = 'requirements' | 'indication' | 'pathway' | 'limits' | 'justifications';

export interface FactGroup {
  kind: GroupKind;
  /** The pathway of a `pathway` group. */
  rule?: CompiledRule;
  facts: string[];
}

export interface PolicyStructure {
  /** Askable facts some rule needs, in policy (dependency) order. */
  asked: string[];
  /** For every asked fact, the rules that need it. */
  usedBy: Map<string, CompiledRule[]>;
  /** Askable facts each rule needs (keyed by rule id). */
  needs: Map<string, Set<string>>;
  /** Non-askable facts some rule reads, directly or through other derived facts. */
  derived: string[];
  groups: FactGroup[];
  /**
   * Per limit with a `justification`: the attestation facts that rescue it (boolean askable facts read only by
   * limits), or none, in which case the form asks a separate justification question.
   */
  justifications: { limit: CompiledRule; facts: string[] }[];
  /**
   * Per pathway with an approval period or a cycle cap, and per limit with a proposal: the facts that period, cap or
   * alternate order reads outside the rule's condition (`approval.from`, `approval.covers`, `cyclesRequested` for
   * `cycles`, the proposal's expressions), with every fact those are computed from, in policy order. A form needs
   * their answers whatever the conditions decide, so no use gate hides them (questionnaire-builder.ts useGateCandidates).
   */
  approvalReads: { rule: CompiledRule; facts: string[] }[];
}

/** Every rule of a policy in evaluation order: universal requirements, then indication pathways, then limits (design.md §5). */
export function allRules(policy: CompiledPolicy): CompiledRule[] {
  return [...policy.requirements, ...policy.pathways, ...policy.limits];
}

/** Askable facts behind a list of fact names, with the derived facts walked through. */
export function askableClosure(
  policy: CompiledPolicy,
  names: string[],
): { askable: Set<string>; derived: Set<string> } {
  const askable = new Set<string>();
  const derived = new Set<string>();
  const visit = (name: string) => {
    const f = policy.factsByName.get(name);
    if (!f || askable.has(name) || derived.has(name)) return;
    if (f.def.askable) askable.add(name);
    else {
      derived.add(name);
      f.deps.forEach(visit);
    }
  };
  names.forEach(visit);
  return { askable, derived };
}

/** Computes the structure; pure and deterministic (policy order throughout). */
export function policyStructure(policy: CompiledPolicy): PolicyStructure {
  const rules = allRules(policy);
  const needs = new Map<string, Set<string>>();
  const usedBy = new Map<string, CompiledRule[]>();
  const derivedAll = new Set<string>();
  for (const r of rules) {
    const { askable, derived } = askableClosure(policy, r.facts);
    needs.set(r.id, askable);
    derived.forEach((d) => derivedAll.add(d));
    for (const f of askable) usedBy.set(f, [...(usedBy.get(f) ?? []), r]);
  }
  const order = policy.facts.map((f) => f.name);
  const asked = order.filter((n) => usedBy.has(n));
  const derived = order.filter((n) => derivedAll.has(n));

  const kindsOf = (f: string) => new Set((usedBy.get(f) ?? []).map((r) => r.kind));
  const justifications = policy.limits
    .filter((l) => l.justification)
    .map((limit) => ({
      limit,
      facts: asked.filter((f) => {
        const def = policy.factsByName.get(f)!.def;
        const kinds = kindsOf(f);
        return def.type === 'boolean' && needs.get(limit.id)!.has(f) && kinds.size === 1 && kinds.has('limit');
      }),
    }));
  const justificationFacts = new Set(justifications.flatMap((j) => j.facts));

  const placed = new Set<string>();
  const take = (pred: (f: string) => boolean) => {
    const out = asked.filter((f) => !placed.has(f) && pred(f));
    out.forEach((f) => placed.add(f));
    return out;
  };
  const pathwaysOf = (f: string) => (usedBy.get(f) ?? []).filter((r) => r.kind === 'pathway');
  const groups: FactGroup[] = [];
  const push = (g: FactGroup) => {
    if (g.facts.length > 0) groups.push(g);
  };
  push({ kind: 'requirements', facts: take((f) => kindsOf(f).has('requirement')) });
  push({
    kind: 'indication',
    facts: take(
      (f) =>
        !justificationFacts.has(f) &&
        (pathwaysOf(f).length > 1 || (pathwaysOf(f).length === 1 && kindsOf(f).has('limit'))),
    ),
  });
  for (const p of policy.pathways) {
    push({ kind: 'pathway', rule: p, facts: take((f) => pathwaysOf(f).length === 1 && pathwaysOf(f)[0].id === p.id) });
  }
  push({ kind: 'limits', facts: take((f) => !justificationFacts.has(f)) });
  const remaining = take(() => true);
  const justificationGroupFacts = remaining.filter((f) => justificationFacts.has(f));
  if (justifications.length > 0) groups.push({ kind: 'justifications', facts: justificationGroupFacts });

  return { asked, usedBy, needs, derived, groups, justifications, approvalReads: approvalReadsOf(policy) };
}

/** {@link PolicyStructure.approvalReads}, from the compiled rules. */
function approvalReadsOf(policy: CompiledPolicy): { rule: CompiledRule; facts: string[] }[] {
  const out: { rule: CompiledRule; facts: string[] }[] = [];
  // Policy order, so the gates a form builds are listed as the facts are.
  const closure = (roots: string[]) => {
    const seen = new Set(factClosure(policy.factsByName, roots));
    return policy.facts.map((f) => f.name).filter((n) => seen.has(n));
  };
  for (const rule of policy.pathways) {
    const roots = [rule.approval?.from, rule.approval?.covers, rule.cycles !== undefined ? 'cyclesRequested' : undefined];
    const facts = closure(roots.filter((n): n is string => n !== undefined));
    if (facts.length > 0) out.push({ rule, facts });
  }
  for (const rule of policy.limits) {
    const facts = closure(rule.proposeFacts ?? []);
    if (facts.length > 0) out.push({ rule, facts });
  }
  return out;
}

/**
 * The pathways a fact serves, when only pathways read it (no requirement or limit): such a question is hidden once
 * every one of them is ruled out (the usage gate). Undefined otherwise. The form builder and the server's reading
 * of hidden answers share it, so both gate the same questions (docs/design.md §7 "Answers the form does not show").
 */
export function pathwaysOnlyRules(structure: PolicyStructure, fact: string): CompiledRule[] | undefined {
  const rules = structure.usedBy.get(fact) ?? [];
  return rules.length > 0 && rules.every((r) => r.kind === 'pathway') ? rules : undefined;
}

/**
 * The facts some question's or document's `askWhen` reads (the birth date, the Ph status): context for the form,
 * never hidden by a usage gate themselves.
 */
export function factsReadByAskWhen(policy: CompiledPolicy): Set<string> {
  return new Set(
    [...policy.facts.map((f) => f.def.askWhen), ...policy.file.attachments.map((a) => a.askWhen)]
      .filter((w): w is string => w !== undefined)
      .flatMap((w) => [...w.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)].map((m) => m[0]))
      .filter((n) => policy.factsByName.has(n)),
  );
}

/**
 * The questions the usage gate hides: an indication's facts that only pathways read ({@link pathwaysOnlyRules}), that
 * no askWhen gates and no askWhen reads ({@link factsReadByAskWhen}). Hidden once every pathway that reads them is ruled
 * out; the form builder and the server's reading of hidden answers gate the same set.
 */
export function usageGatedFacts(policy: CompiledPolicy, structure: PolicyStructure): string[] {
  const askWhenReads = factsReadByAskWhen(policy);
  return structure.groups
    .filter((g) => g.kind === 'indication')
    .flatMap((g) => g.facts)
    .filter((f) => pathwaysOnlyRules(structure, f) !== undefined && !policy.factsByName.get(f)!.def.askWhen && !askWhenReads.has(f));
}

/**
 * Variables that are not the patient's record or the order: a fact reading only these and other facts is computed from
 * facts alone, as DTR can recompute it from an answer (design.md §7 "One record of what CRD knew").
 */
const NOT_RECORD = new Set(['orderDate', 'orderDateTime', 'today', 'policyDrug', 'ucum', 'sct', 'loinc']);

/**
 * The record variables a fact's own expression reads (`%observations`, `%medicationsBefore`, `%order`, `%orderStart`
 * ...; not other facts, not the order date): what a DTR reading, which has only CRD's facts and the answers, cannot
 * read again (design.md §7 "One record of what CRD knew").
 */
export function recordVariablesOf(policy: CompiledPolicy, f: CompiledFact): string[] {
  const out = new Set<string>();
  for (const t of tokenize(f.def.fhirpath)) if (t.kind === 'var' && !policy.factsByName.has(t.name!) && !NOT_RECORD.has(t.name!)) out.add(t.name!);
  return [...out];
}

/** A derived fact that reads the record and, directly or through derived facts, a fact the form may ask. */
export interface MixedFact {
  fact: string;
  /** The record variables its own expression reads. */
  record: string[];
  /** The askable facts it is computed from. */
  asked: string[];
}

/**
 * The derived facts (askable: false) whose own expression reads the record and which are computed from a fact the
 * form may ask. Over CRD's facts, DTR keeps such a fact's CRD value while the answers leave its asked facts as CRD
 * read them, and recomputes it over the answers alone (no record) once one changes: either way one side is lost (an
 * answer that cannot move it, or a record reading that turns empty). The pattern that keeps both (design.md §7 "One
 * record of what CRD knew"): the record side in facts that read the record alone, whose CRD values stand, and the
 * fact derived from them and the asked fact (`progressionOnCourse` from `progressionRecordedFrom`,
 * `progressionRecordedBy`, `statusOrderUncertain` and `courseFirstCycleStart`).
 */
export function mixedFacts(policy: CompiledPolicy): MixedFact[] {
  const out: MixedFact[] = [];
  for (const f of policy.facts) {
    if (f.def.askable) continue;
    const record = recordVariablesOf(policy, f);
    if (record.length === 0) continue;
    const asked = [...askableClosure(policy, f.deps).askable];
    if (asked.length > 0) out.push({ fact: f.name, record, asked });
  }
  return out;
}

/**
 * The problems of a policy's mixed facts ({@link mixedFacts}) not in `audited` (fact name to the reason its mix is
 * safe or the fix it awaits): one message each, telling the author how to split the fact.
 */
export function mixedFactProblems(policy: CompiledPolicy, audited: ReadonlyMap<string, string>): string[] {
  return mixedFacts(policy)
    .filter((m) => !audited.has(m.fact))
    .map(
      (m) =>
        `${policy.file.id}: fact ${m.fact} reads the record (%${m.record.join(', %')}) and the asked fact${m.asked.length > 1 ? 's' : ''} ` +
        `${m.asked.join(', ')}; DTR, which has CRD's facts and the answers but not the record, would keep CRD's value against an ` +
        `answer or recompute it over an empty record. Move what it reads of the record into facts that read the record alone ` +
        `(askable: false, no asked fact in their closure: their CRD values stand in DTR and PAS), and derive ${m.fact} from ` +
        `them and the asked facts (as progressionOnCourse is derived from progressionRecordedFrom, progressionRecordedBy and ` +
        `statusOrderUncertain: cds-services/README.md "Facts that read the record and an answer")`,
    );
}
