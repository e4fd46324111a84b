import type { QuestionnaireResponseItem } from '@medplum/fhirtypes';
import type { CompiledPolicy, CompiledRule } from '../policies/compiled-policy.js';
import { askWhenFalse } from '../policies/evaluate-policy.js';
import type { FactValue } from '../policies/evaluate-policy.js';
import { pathwaysOnlyRules, policyStructure, usageGatedFacts } from '../policies/policy-structure.js';
import { justificationLinkId } from '../policies/questionnaire-names.js';
import { readsRecord } from '../policies/reads-record.js';
import { tokenize } from '../fhir/fhirpath-tokens.js';

/**
 * Which answered items the policy's DTR form hides for the answers and facts at hand (design.md §7 "Answers the form
 * does not show"). Read from the compiled policy, never from the form's FHIRPath text: each gate the builder
 * (src/dtr/questionnaire-builder.ts) writes into the form has its counterpart here over the same compiled expressions
 * CRD runs, so nothing is parsed per response or at start-up.
 *
 * - a question's or a document's `askWhen` (askWhenGate): hidden when it is known false;
 * - a covered use's own group (pathwayGate): hidden when the pathway is false with its own questions unanswered;
 * - a shared question only covered uses need (usageGate, `USAGE_GATE_DESCRIPTION`): hidden when every one of them is
 *   false with the questions gated this way and the pathway groups' questions unanswered;
 * - a justification (justificationGate): hidden while every limit it can rescue is met without it.
 *
 * A group's gate hides every question in it (an ancestor hides its descendants).
 *
 * Each gate reads only what the form's own gate can read, the rest unknown (so the server never hides a question the
 * form shows): a group, usage or justification gate reads the questions' answers and the derived facts computed from
 * them alone, not one that reads the record (expressions.ts ruleOverAnswers). An `askWhen` reads every fact it names
 * through the fact's question or its pre-filled initialExpression (test/dtr/hidden-answers.test.ts holds every policy
 * to that), so its reading over the server's facts is the form's.
 */
interface Gate {
  /** The linkIds the gate hides. */
  linkIds: string[];
  /** True only when the gate is known closed over the reading's values (the rest unknown shows the item). */
  closed: (reading: Reading) => boolean;
}

/**
 * The facts one evaluation read, on its order date, with the rule results the gates ask for remembered for the one
 * call: several gates read the same pathway over the same values.
 */
class Reading {
  private readonly views = new Map<ReadonlySet<string>, Record<string, FactValue>>();
  private readonly results = new Map<CompiledRule, Map<ReadonlySet<string> | undefined, boolean | 'unknown'>>();
  constructor(
    readonly values: Record<string, FactValue>,
    readonly orderDate: string,
  ) {}

  /** The rule's result over the values, with the facts in `drop` (when given) read as unanswered. */
  result(rule: CompiledRule, drop?: ReadonlySet<string>): boolean | 'unknown' {
    let byDrop = this.results.get(rule);
    if (!byDrop) this.results.set(rule, (byDrop = new Map()));
    let r = byDrop.get(drop);
    if (r === undefined) {
      let view = this.values;
      if (drop) {
        view = this.views.get(drop) ?? without(this.values, drop);
        this.views.set(drop, view);
      }
      byDrop.set(drop, (r = ruleResult(rule, view)));
    }
    return r;
  }
}

const gatesCache = new WeakMap<CompiledPolicy, { gates: Gate[]; gated: Set<string> }>();

/** The facts to treat as unanswered: `names` and every derived fact computed from one of them. */
function withDependents(policy: CompiledPolicy, names: Iterable<string>): Set<string> {
  const out = new Set(names);
  // Facts are in dependency order: one pass sees every dependency before its dependents.
  for (const f of policy.facts) if (!out.has(f.name) && !f.def.askable && f.deps.some((d) => out.has(d))) out.add(f.name);
  return out;
}

/** The values with the named facts removed (read as unanswered, the way the form's gate reads them). */
function without(values: Record<string, FactValue>, drop: ReadonlySet<string>): Record<string, FactValue> {
  const out: Record<string, FactValue> = {};
  for (const k of Object.keys(values)) if (!drop.has(k)) out[k] = values[k];
  return out;
}

/** A rule's three-valued result over the values: 'unknown' when it gives nothing or throws. */
function ruleResult(rule: CompiledRule, values: Record<string, FactValue>): boolean | 'unknown' {
  try {
    const v = rule.when(values, {});
    return v.length === 1 && typeof v[0] === 'boolean' ? v[0] : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The policy's form gates (built once per policy on first use; no expression is compiled). A group, usage or
 * justification gate closes only when its rule comes out the same with and without the answers it hides (a pathway
 * false, a limit met), so dropping them cannot change the rule, whatever FHIRPath's empty-collection reading of a
 * rule (an `iif` or `exists()` over a hidden answer) does with them unanswered: the form leaves such a rule ungated too
 * (expressions.ts ruleOverAnswers gives no gate for a condition that is not monotone).
 */
function formGates(policy: CompiledPolicy): { gates: Gate[]; gated: Set<string> } {
  const hit = gatesCache.get(policy);
  if (hit) return hit;
  const structure = policyStructure(policy);
  const linkIdOf = (f: string) => policy.factsByName.get(f)?.def.linkId;
  // A fact the form asks (questionnaire-builder.ts itemFor).
  const onForm = (f: string) => linkIdOf(f) !== undefined && structure.usedBy.has(f);
  const gates: Gate[] = [];

  for (const f of policy.facts) {
    const linkId = f.def.linkId;
    if (!f.askWhen || !linkId || !onForm(f.name)) continue;
    const askWhen = f.askWhen;
    gates.push({ linkIds: [linkId], closed: (r) => askWhenFalse(askWhen, r.values, r.orderDate) });
  }
  for (const a of policy.attachments) {
    const askWhen = a.askWhen;
    if (askWhen) gates.push({ linkIds: [a.linkId], closed: (r) => askWhenFalse(askWhen, r.values, r.orderDate) });
  }

  // What a group, usage or justification gate cannot read (expressions.ts ruleOverAnswers): facts the form does not
  // ask, derived facts that read the record, and what is computed from either.
  const unreadable = withDependents(
    policy,
    policy.facts
      .filter((f) => (f.def.askable ? !onForm(f.name) : readsRecord(policy, tokenize(f.def.fhirpath))))
      .map((f) => f.name),
  );

  // The same sets the builder gates by (questionnaire-builder.ts buildQuestionnaire).
  const pathwaysOnly = (f: string): CompiledRule[] | undefined => pathwaysOnlyRules(structure, f);
  const usageGated = usageGatedFacts(policy, structure);
  const pathwayFacts = structure.groups.filter((g) => g.kind === 'pathway').flatMap((g) => g.facts);
  const hideable = withDependents(policy, [...unreadable, ...usageGated, ...pathwayFacts]);

  for (const g of structure.groups) {
    if (g.kind !== 'pathway' || !g.rule) continue;
    const rule = g.rule;
    const own = withDependents(policy, [...unreadable, ...g.facts]);
    const linkIds = g.facts.map(linkIdOf).filter((l): l is string => l !== undefined);
    gates.push({ linkIds, closed: (r) => r.result(rule) === false && r.result(rule, own) === false });
  }
  for (const f of usageGated) {
    const linkId = linkIdOf(f);
    const pathways = pathwaysOnly(f)!;
    if (linkId) {
      gates.push({
        linkIds: [linkId],
        closed: (r) => pathways.every((p) => r.result(p) === false && r.result(p, hideable) === false),
      });
    }
  }
  for (const j of structure.justifications) {
    const limit = j.limit;
    const linkIds = j.facts.length > 0 ? j.facts.map(linkIdOf).filter((l): l is string => l !== undefined) : [justificationLinkId(limit.id)];
    for (const linkId of linkIds) {
      // A justification fact rescues every limit that lists it: hidden only while all of those are met without it.
      const fact = j.facts.find((f) => linkIdOf(f) === linkId);
      const limits = fact ? structure.justifications.filter((x) => x.facts.includes(fact)) : [j];
      const drops = limits.map((x) => ({ rule: x.limit, drop: withDependents(policy, [...unreadable, ...x.facts]) }));
      gates.push({
        linkIds: [linkId],
        closed: (r) => drops.every(({ rule, drop }) => r.result(rule) === true && r.result(rule, drop) === true),
      });
    }
  }

  const out = { gates, gated: new Set(gates.flatMap((g) => g.linkIds)) };
  gatesCache.set(policy, out);
  return out;
}

/** The linkIds of the response's items that carry an answer (at any depth, under items or answers). */
export function answeredLinkIds(items: QuestionnaireResponseItem[] | undefined, out = new Set<string>()): Set<string> {
  for (const i of items ?? []) {
    if ((i.answer ?? []).length > 0) out.add(i.linkId);
    answeredLinkIds(i.item, out);
    for (const a of i.answer ?? []) answeredLinkIds(a.item, out);
  }
  return out;
}

/** Whether any of these answered linkIds has a gate in the policy's form (else nothing can be hidden). */
export function anyGated(policy: CompiledPolicy, answered: ReadonlySet<string>): boolean {
  const { gated } = formGates(policy);
  for (const l of answered) if (gated.has(l)) return true;
  return false;
}

/**
 * The answered linkIds the form hides over `values` (the facts as the evaluation read them: the shown answers, the
 * facts CRD recorded, the record) on `orderDate`. Only a gate known closed hides: one that cannot be read shows.
 */
export function hiddenLinkIds(
  policy: CompiledPolicy,
  answered: ReadonlySet<string>,
  values: Record<string, FactValue>,
  orderDate: string,
): Set<string> {
  const out = new Set<string>();
  const reading = new Reading(values, orderDate);
  for (const g of formGates(policy).gates) {
    if (!g.linkIds.some((l) => answered.has(l) && !out.has(l))) continue;
    if (g.closed(reading)) for (const l of g.linkIds) if (answered.has(l)) out.add(l);
  }
  return out;
}
