import type { CompiledPolicy, CompiledRule } from './compiled-policy.js';

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

  return { asked, usedBy, needs, derived, groups, justifications };
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
