import type { Extension, Questionnaire, QuestionnaireItem } from '@medplum/fhirtypes';
import { resolveValueSetUrl } from '../fhir/fhirpath.js';
import type { ValueSetIndex } from '../fhir/value-sets.js';
import type { CompiledPolicy, CompiledRule } from '../policies/compiled-policy.js';
import type { FactType } from '../policies/policy-schema.js';
import { factBounds, type BoundedFact } from '../policies/evaluate-policy.js';
import { answerPath, askWhenForRenderer, clientInitialExpression, CLIENT_QUERIES, ruleOverAnswers, splitTopLevel, useGuards } from './expressions.js';
import {
  DTR_STD_QUESTIONNAIRE,
  EXT_DESIGN_NOTE,
  EXT_ENABLE_WHEN_EXPRESSION,
  EXT_HIDDEN,
  EXT_INITIAL_EXPRESSION,
  EXT_ITEM_CONTROL,
  EXT_LAUNCH_CONTEXT,
  EXT_CQF_EXPRESSION,
  EXT_MAX_VALUE,
  EXT_MIN_VALUE,
  EXT_MIN_VALUE_EXCLUDED,
  EXT_QUESTIONNAIRE_UNIT,
  EXT_VARIABLE,
  ITEM_CONTROL_SYSTEM,
  LAUNCH_CONTEXT_SYSTEM,
  UCUM,
} from '../fhir/dtr-urls.js';
import { askableClosure, factsReadByAskWhen, pathwaysOnlyRules, policyStructure, usageGatedFacts } from '../policies/policy-structure.js';
import type { FactGroup, PolicyStructure } from '../policies/policy-structure.js';
import { justificationLinkId, ORDER_DATE_LINK_ID, ORDER_START_LINK_ID, questionnaireUrl } from '../policies/questionnaire-names.js';

/** What the builder needs besides the policy. */
export interface QuestionnaireBuildContext {
  /** CANONICAL_BASE, e.g. https://priorpath.dev/fhir */
  canonicalBase: string;
  valueSets: ValueSetIndex;
  /** The payer's label, for `publisher`. */
  payerLabel?: string;
}

/** Questionnaire item type of each fact type (SDC; R4 `QuestionnaireItemType`). */
export const ITEM_TYPE: Record<FactType, QuestionnaireItem['type']> = {
  boolean: 'boolean',
  decimal: 'decimal',
  integer: 'integer',
  code: 'choice',
  date: 'date',
  string: 'string',
};

const UNIT_DISPLAY: Record<string, string> = {
  'ug/d': 'mcg/day',
  'mg/d': 'mg/day',
  'ug/m2/d': 'mcg/m²/day',
  'mg/m2': 'mg/m²',
  'mg/m2/d': 'mg/m²/day',
  m2: 'm²',
  '%': '%',
  kg: 'kg',
  cm: 'cm',
  // A UCUM annotation ("{units}": billable HCPCS units) is a code, not words: the form shows what it counts.
  '{units}': 'units',
};

const GROUP_TEXT: Record<Exclude<FactGroup['kind'], 'pathway'>, string> = {
  requirements: 'Requirements for every covered use',
  indication: 'Indication',
  limits: 'Dose, quantity and course',
  justifications: 'Justification when a limit is exceeded',
};

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const pascal = (id: string) =>
  id
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');

/** A canonical with its version, for every reference inside a package (DTR: "all references SHALL be version-specific"). */
export function answerValueSetCanonical(ref: string, canonicalBase: string, valueSets: ValueSetIndex): string {
  const url = resolveValueSetUrl(ref, `${canonicalBase}/ValueSet`);
  const version = valueSets.get(url)?.version;
  return version ? `${url}|${version}` : url;
}

function ruleLabel(r: CompiledRule): string {
  return `${r.text.replace(/\s+/g, ' ').trim()} (${r.cite})`;
}

function helpItem(linkId: string, text: string): QuestionnaireItem {
  return {
    linkId: `${linkId}-help`,
    type: 'display',
    text,
    extension: [
      {
        url: EXT_ITEM_CONTROL,
        valueCodeableConcept: {
          coding: [{ system: ITEM_CONTROL_SYSTEM, code: 'help', display: 'Help-Button' }],
          text: 'Help-Button',
        },
      },
    ],
  };
}

/** The description of a shared question's gate (usageGate): the covered uses that need it are all ruled out. */
export const USAGE_GATE_DESCRIPTION = 'Asked unless the answers so far rule out every covered use that needs it';

function expressionExtension(url: string, expression: string, description?: string): Extension {
  return { url, valueExpression: { language: 'text/fhirpath', expression, ...(description ? { description } : {}) } };
}

/**
 * Adds a gate to an item's `enableWhenExpression`. SDC allows the extension 0..1 on an item, so a second gate (a
 * justification's beside a question's askWhen, e.g. CP.PHAR.312's dose attestation) is joined to the first with `and`
 * rather than added beside it: a renderer that kept only one of two would ask or hide the question by its own choice
 * (design.md §7 "Questions"; §6 "Questions are asked only of the patients they concern"). Every gate this builder
 * writes is `iif(…, false, true)`, never empty, so `and` shows the item exactly when each gate alone would.
 */
function addEnableWhen(item: { extension?: Extension[] }, expression: string, description: string): void {
  const extension = item.extension ?? [];
  const i = extension.findIndex((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION);
  if (i < 0) {
    item.extension = [...extension, expressionExtension(EXT_ENABLE_WHEN_EXPRESSION, expression, description)];
    return;
  }
  const prior = extension[i].valueExpression!;
  const joined = expressionExtension(
    EXT_ENABLE_WHEN_EXPRESSION,
    `(${prior.expression}) and (${expression})`,
    [prior.description, description].filter(Boolean).join('; '),
  );
  item.extension = extension.map((e, k) => (k === i ? joined : e));
}

/** The `enableWhenExpression` of a pathway's own questions: shown unless the answers so far make the pathway false. */
function pathwayGate(
  policy: CompiledPolicy,
  group: FactGroup,
  itemFor: (f: string) => { linkId: string; type: FactType } | undefined,
): string | undefined {
  const own = new Set(group.facts);
  const clauses = splitTopLevel(ruleText(policy, group.rule!), 'and')
    .map((c) => ruleOverAnswers(policy, c, { itemFor, unknown: own }))
    .filter((e): e is string => e !== undefined)
    .map((e) => `(${e}) = false`);
  return clauses.length === 0 ? undefined : `iif(${clauses.join(' or ')}, false, true)`;
}

/**
 * The `enableWhenExpression` of a question shared by several covered uses (the indication group) that only pathways
 * need: shown unless the answers so far rule out every pathway that reads it, e.g. the POMP question once the birth
 * date shows a child and the only pathway with POMP is for adults (design.md §6 "Clinical readings": questions are
 * asked only of the patients they concern). Facts in `unknown` (this question, the other questions gated this way and
 * the pathway groups' own questions, all of which can be hidden) are read as unanswered, so no two gates depend on
 * each other. Undefined when some pathway cannot be ruled out by the answers alone.
 */
function usageGate(
  policy: CompiledPolicy,
  pathways: CompiledRule[],
  itemFor: (f: string) => { linkId: string; type: FactType } | undefined,
  unknown: Set<string>,
): string | undefined {
  const perPathway: string[] = [];
  for (const p of pathways) {
    const clauses = splitTopLevel(ruleText(policy, p), 'and')
      .map((c) => ruleOverAnswers(policy, c, { itemFor, unknown }))
      .filter((e): e is string => e !== undefined)
      .map((e) => `(${e}) = false`);
    if (clauses.length === 0) return undefined;
    perPathway.push(clauses.length === 1 ? clauses[0] : `(${clauses.join(' or ')})`);
  }
  return perPathway.length === 0 ? undefined : `iif(${perPathway.join(' and ')}, false, true)`;
}

/**
 * The `enableWhenExpression` of a question or attachment with an `askWhen`: shown unless the answers so far (the
 * pre-filled ones included, e.g. the birth date) make the condition false. `%orderDate` is the order start the payer
 * pre-filled in the hidden order-date item, as CRD judged it (design.md §6 "Clinical readings": questions are asked
 * only of the patients they concern; §8: one decision per order).
 */
function askWhenGate(
  policy: CompiledPolicy,
  askWhen: string | undefined,
  ctx: {
    itemFor: (f: string) => { linkId: string; type: FactType } | undefined;
    valueSets: ValueSetIndex;
    valueSetBase: string;
  },
): string | undefined {
  if (!askWhen) return undefined;
  const e = askWhenForRenderer(policy, askWhen, ctx);
  return e === undefined ? undefined : `iif((${e}) = false, false, true)`;
}

/** A justification question is shown unless every limit it can rescue is already met by the answers so far. */
function justificationGate(
  policy: CompiledPolicy,
  limits: { limit: CompiledRule; facts: string[] }[],
  itemFor: (f: string) => { linkId: string; type: FactType } | undefined,
): string | undefined {
  const perLimit: string[] = [];
  for (const { limit, facts } of limits) {
    const met = splitTopLevel(ruleText(policy, limit), 'or')
      .map((d) => ruleOverAnswers(policy, d, { itemFor, unknown: new Set(facts) }))
      .filter((e): e is string => e !== undefined)
      .map((e) => `(${e}) = true`);
    if (met.length === 0) return undefined;
    perLimit.push(met.length === 1 ? met[0] : `(${met.join(' or ')})`);
  }
  return perLimit.length === 0 ? undefined : `iif(${perLimit.join(' and ')}, false, true)`;
}

/** The description of a limit question's use gate ({@link useGate}). */
export const USE_GATE_DESCRIPTION = 'Asked unless the answers so far decide every criterion that reads it without it';

/**
 * The questions a use gate ({@link useGate}) may hide: asked facts only limits read (a requirement's or a covered
 * use's question has its own gates), no justification, and none that an `askWhen`, an approval period or an
 * alternate order reads (those need the answer whatever the limits say). The builder's gates read them as unanswered,
 * so no two use gates depend on each other.
 */
export function useGateCandidates(policy: CompiledPolicy, structure: PolicyStructure): string[] {
  const justification = new Set(structure.justifications.flatMap((j) => j.facts));
  const askWhenReads = factsReadByAskWhen(policy);
  const outside = new Set(structure.approvalReads.flatMap((a) => a.facts));
  return structure.asked.filter((f) => {
    const rules = structure.usedBy.get(f) ?? [];
    return (
      rules.length > 0 &&
      rules.every((r) => r.kind === 'limit') &&
      !justification.has(f) &&
      !askWhenReads.has(f) &&
      !outside.has(f)
    );
  });
}

/**
 * The `enableWhenExpression` of a question only limits read (a use gate): shown unless the answers so far decide every
 * criterion that reads it without it, so a fact a limit uses only under some answers is asked only under them (design.md
 * §6 "Questions are asked only of the patients they concern"; the server lists it as still to document only where some
 * value of it could change a rule: evaluate-policy.ts couldChange). Each place a limit reads the fact (directly or
 * through a derived fact) is decided without it once a condition beside it has its deciding value (expressions.ts
 * useGuards: `false and x`, `true or x`, `false implies x`, `x implies true`), e.g. Besponsa's MRD level, read only
 * under "proceeding to HSCT", once that is answered no. A question that is never read from the record and is asked only
 * under its `askWhen` (the HSCT plan of an order within 2 cycles) is never answered once that `askWhen` is false: as a
 * limit's antecedent it then leaves the limit to its bound, which the policy's `askWhen` declares met, so its closed
 * `askWhen` decides too (the agreement test holds every policy to it). An askable fact computed from this one (B-ALL from
 * a CD22-positive result) reads it while that fact is unanswered, so the question stays until it is answered. Undefined
 * when some reading has no guard the answers can close.
 */
function useGate(
  policy: CompiledPolicy,
  structure: PolicyStructure,
  fact: string,
  ctx: {
    itemFor: (f: string) => { linkId: string; type: FactType } | undefined;
    unknown: Set<string>;
    valueSets: ValueSetIndex;
    valueSetBase: string;
  },
): string | undefined {
  const reads = (name: string) => {
    if (name === fact) return true;
    const f = policy.factsByName.get(name);
    return !!f && !f.def.askable && askableClosure(policy, [name]).askable.has(fact);
  };
  const clauses: string[] = [];
  // Askable facts whose own expression reads this one: their answer, once given, stands over it.
  for (const f of policy.facts) {
    if (!f.def.askable || f.name === fact || !askableClosure(policy, f.deps).askable.has(fact)) continue;
    if (!structure.usedBy.has(f.name)) continue;
    const item = ctx.itemFor(f.name);
    if (!item) return undefined;
    clauses.push(`${answerPath(item.linkId, item.type)}.exists()`);
  }
  const unknown = new Set([...ctx.unknown, fact]);
  for (const rule of structure.usedBy.get(fact) ?? []) {
    const readings = useGuards(ruleText(policy, rule), reads);
    if (readings.length === 0) return undefined;
    for (const guards of readings) {
      const alternatives: string[] = [];
      for (const g of guards) {
        const e = ruleOverAnswers(policy, g.expr, { itemFor: ctx.itemFor, unknown });
        if (e !== undefined) alternatives.push(`(${e}) = ${g.value}`);
        if (!g.antecedent) continue;
        for (const conjunct of splitTopLevel(g.expr, 'and')) {
          const q = policy.factsByName.get(conjunct.trim());
          if (!q?.def.askable || !q.def.askWhen || q.def.fhirpath.trim() !== '{}' || !ctx.itemFor(q.name)) continue;
          const closed = askWhenForRenderer(policy, q.def.askWhen, ctx);
          if (closed !== undefined) alternatives.push(`(${closed}) = false`);
        }
      }
      if (alternatives.length === 0) return undefined;
      const unique = [...new Set(alternatives)];
      clauses.push(unique.length === 1 ? unique[0] : `(${unique.join(' or ')})`);
    }
  }
  const unique = [...new Set(clauses)];
  return unique.length === 0 ? undefined : `iif(${unique.join(' and ')}, false, true)`;
}

/** The form's order date: the order-date item the payer pre-fills with the order's planned start (FHIRPath). */
const FORM_ORDER_DATE = `%resource.repeat(item).where(linkId = '${ORDER_DATE_LINK_ID}').answer.value`;

/**
 * The bounds of an item's answers, from the one definition of what a fact can be (evaluate-policy.ts factBounds, the
 * bounds the service applies to every answer): a renderer refuses MRD 150 % or a weight of 0 kg on the field instead of
 * the payer silently setting the answer aside (review s44 M1). R4 minValue/maxValue are inclusive: a bound that is
 * itself excluded ("more than 0 kg") is minValue 0 with PriorPath's min-value-excluded, which the project's DTR app
 * reads (a renderer that does not know it refuses what is below 0; the service names 0 as not possible). A date bound
 * of "today, or the order's start when earlier" changes with the day: it is a maxValue whose value is a FHIRPath
 * expression over the response (cqf-expression on the primitive, SDC §Expression extensions), which the DTR app evaluates.
 */
export function boundExtensions(def: BoundedFact): Extension[] {
  const b = factBounds(def);
  if (!b) return [];
  const out: Extension[] = [];
  const key = def.type === 'integer' ? 'valueInteger' : 'valueDecimal';
  if (b.min !== undefined) out.push({ url: EXT_MIN_VALUE, [key]: b.min });
  if (b.minExcluded) out.push({ url: EXT_MIN_VALUE_EXCLUDED, valueBoolean: true });
  if (b.max !== undefined) out.push({ url: EXT_MAX_VALUE, [key]: b.max });
  if (b.notAfter) {
    const expression = b.notAfter === 'order' ? FORM_ORDER_DATE : `iif(${FORM_ORDER_DATE} < today(), ${FORM_ORDER_DATE}, today())`;
    out.push({
      url: EXT_MAX_VALUE,
      _valueDate: { extension: [{ url: EXT_CQF_EXPRESSION, valueExpression: { language: 'text/fhirpath', expression } }] },
    } as Extension);
  }
  return out;
}

/** The source text of a rule's condition (the compiled rule keeps only the function). */
function ruleText(policy: CompiledPolicy, rule: CompiledRule): string {
  const f = policy.file;
  const src = [...f.requirements, ...f.pathways, ...f.limits].find((r) => r.id === rule.id);
  return src?.when ?? '';
}

/**
 * Generates the DTR Questionnaire of a policy (design.md §5, §7; DTR `dtr-std-questionnaire` on SDC 3.0): one question
 * per askable fact a rule can need (linkId = the fact's linkId), grouped by the rule kind or pathway that needs it,
 * each pre-populated by an `initialExpression` derived from the fact's own FHIRPath where a renderer can run it, with
 * a help display citing the policy clauses that use the answer. A pathway's own questions are hidden
 * (`enableWhenExpression`) once the answers so far make that pathway false; justification questions are hidden while
 * every limit they could rescue is met. Deterministic: the same policy gives byte-identical JSON.
 */
export function buildQuestionnaire(
  policy: CompiledPolicy,
  ctx: QuestionnaireBuildContext,
  structure: PolicyStructure = policyStructure(policy),
): Questionnaire {
  const file = policy.file;
  const itemFor = (name: string) => {
    const def = policy.factsByName.get(name)?.def;
    return def?.linkId && structure.usedBy.has(name) ? { linkId: def.linkId, type: def.type } : undefined;
  };

  const gateCtx = { itemFor, valueSets: ctx.valueSets, valueSetBase: `${ctx.canonicalBase}/ValueSet` };
  // Shared questions that only pathways need, and that no askWhen already gates (nor reads), are hidden once every
  // one of those pathways is ruled out; the questions of the pathway groups can be hidden by their group's gate.
  const pathwaysOnly = (f: string): CompiledRule[] | undefined => pathwaysOnlyRules(structure, f);
  const usageGated = new Set(usageGatedFacts(policy, structure));
  const hideable = new Set([...usageGated, ...structure.groups.filter((g) => g.kind === 'pathway').flatMap((g) => g.facts)]);
  // Questions only limits read are hidden once the answers decide those limits without them (useGate); every gate of
  // this kind reads the others, and the questions other gates hide, as unanswered.
  const useGated = new Set(useGateCandidates(policy, structure));
  const useCtx = { ...gateCtx, unknown: new Set([...hideable, ...useGated]) };

  const factItem = (name: string): QuestionnaireItem => {
    const def = policy.factsByName.get(name)!.def;
    const item: QuestionnaireItem = {
      linkId: def.linkId!,
      text: def.question!.replace(/\s+/g, ' ').trim(),
      type: ITEM_TYPE[def.type],
    };
    const extension: Extension[] = [];
    const init = clientInitialExpression(policy, name, {
      valueSets: ctx.valueSets,
      valueSetBase: `${ctx.canonicalBase}/ValueSet`,
    });
    if (init.expression) extension.push(expressionExtension(EXT_INITIAL_EXPRESSION, init.expression));
    if (def.type === 'decimal' && def.unit) {
      extension.push({
        url: EXT_QUESTIONNAIRE_UNIT,
        valueCoding: { system: UCUM, code: def.unit, display: UNIT_DISPLAY[def.unit] ?? def.unit },
      });
    }
    extension.push(...boundExtensions(def));
    if (init.portability !== 'portable') {
      extension.push({
        url: EXT_DESIGN_NOTE,
        valueMarkdown: `Pre-population: ${init.portability}${init.notes.length ? ` (${init.notes.join('; ')})` : ''}.`,
      });
    }
    if (extension.length > 0) item.extension = extension;
    if (def.type === 'code' && def.answerValueSet)
      item.answerValueSet = answerValueSetCanonical(def.answerValueSet, ctx.canonicalBase, ctx.valueSets);

    const rules = structure.usedBy.get(name) ?? [];
    const cites = rules.map(ruleLabel);
    if (def.cite && !rules.some((r) => r.cite === def.cite)) cites.unshift(def.cite);
    const help = [
      def.help?.replace(/\s+/g, ' ').trim(),
      `Policy criteria that use this answer: ${[...new Set(cites)].join('; ')}.`,
    ]
      .filter(Boolean)
      .join(' ');
    item.item = [helpItem(def.linkId!, help)];
    const gate = askWhenGate(policy, def.askWhen, gateCtx);
    if (gate) addEnableWhen(item, gate, 'Asked only of the patients this question concerns');
    const usage = usageGated.has(name) ? usageGate(policy, pathwaysOnly(name)!, itemFor, hideable) : undefined;
    if (usage) addEnableWhen(item, usage, USAGE_GATE_DESCRIPTION);
    const use = useGated.has(name) ? useGate(policy, structure, name, useCtx) : undefined;
    if (use) addEnableWhen(item, use, USE_GATE_DESCRIPTION);
    return item;
  };

  const groups: QuestionnaireItem[] = [];
  for (const g of structure.groups) {
    if (g.kind === 'justifications') {
      const items: QuestionnaireItem[] = [];
      const placed = new Set<string>();
      for (const j of structure.justifications) {
        const questions =
          j.facts.length > 0
            ? j.facts.filter((f) => !placed.has(f)).map((f) => ({ fact: f, item: factItem(f) }))
            : [{ fact: undefined, item: syntheticJustification(j.limit) }];
        for (const q of questions) {
          if (q.fact) placed.add(q.fact);
          const limits = q.fact ? structure.justifications.filter((x) => x.facts.includes(q.fact!)) : [j];
          const gate = justificationGate(policy, limits, itemFor);
          if (gate) addEnableWhen(q.item, gate, 'Asked unless the answers so far already meet the limit');
          items.push(q.item);
        }
      }
      if (items.length > 0)
        groups.push({ linkId: 'group-justifications', text: GROUP_TEXT.justifications, type: 'group', item: items });
      continue;
    }
    const group: QuestionnaireItem = {
      linkId: g.kind === 'pathway' ? `group-pathway-${g.rule!.id}` : `group-${g.kind}`,
      text: g.kind === 'pathway' ? `Covered use: ${ruleLabel(g.rule!)}` : GROUP_TEXT[g.kind],
      type: 'group',
      item: g.facts.map(factItem),
    };
    if (g.kind === 'pathway') {
      const gate = pathwayGate(policy, g, itemFor);
      if (gate)
        group.extension = [
          expressionExtension(
            EXT_ENABLE_WHEN_EXPRESSION,
            gate,
            'Asked unless the answers so far rule this covered use out',
          ),
        ];
    }
    groups.push(group);
  }

  if (policy.attachments.length > 0) {
    groups.push({
      linkId: 'group-attachments',
      text: 'Documents to attach',
      type: 'group',
      item: policy.attachments.map((a): QuestionnaireItem => {
        const gate = askWhenGate(policy, a.askWhenText, gateCtx);
        return {
          linkId: a.linkId,
          text: a.text.replace(/\s+/g, ' ').trim(),
          type: 'attachment',
          repeats: true,
          // A document that proves an attestation is not marked `required`: LHC-Forms (web/dtr) then gives no response
          // for the whole form even while the item is hidden. Its absence pends the request instead
          // (questionnaire-answers.ts unprovenAttestations), and $next-question asks for it.
          ...(gate
            ? { extension: [expressionExtension(EXT_ENABLE_WHEN_EXPRESSION, gate, 'Asked only when this document applies')] }
            : {}),
          item: [helpItem(a.linkId, `The policy asks for this document: ${a.cite}.`)],
        };
      }),
    });
  }

  const description =
    `Documentation for prior authorization under ${file.source.id} (${file.source.title}). ` +
    `Generated from PriorPath policy ${file.id} version ${file.version}: the answers are evaluated by the same rules as the ` +
    `coverage requirements (CRD) and prior authorization (PAS) decisions.`;

  return {
    resourceType: 'Questionnaire',
    id: file.id,
    meta: { profile: [DTR_STD_QUESTIONNAIRE] },
    text: { status: 'generated', div: narrative(file.title, description, groups) },
    extension: [
      ...launchContexts(),
      ...CLIENT_QUERIES.map(
        (q): Extension => ({
          url: EXT_VARIABLE,
          valueExpression: {
            name: q.name,
            language: 'application/x-fhir-query',
            expression: q.query,
            description: q.description,
          },
        }),
      ),
    ],
    url: questionnaireUrl(ctx.canonicalBase, file.id),
    version: file.version,
    name: pascal(file.id),
    title: `${file.title}: prior authorization documentation (${file.source.id})`,
    status: 'active',
    subjectType: ['Patient'],
    ...(ctx.payerLabel ? { publisher: ctx.payerLabel } : {}),
    description,
    item: [orderDateItem(), ...(readsOrderStart(policy) ? [orderStartItem()] : []), ...groups],
  };
}

/**
 * The hidden, read-only order start date ({@link ORDER_DATE_LINK_ID}): filled by the payer from the order (CRD's
 * order date), read by the form's age and askWhen gates and by the server, so all judge the order on one date.
 */
export function orderDateItem(): QuestionnaireItem {
  return {
    extension: [{ url: EXT_HIDDEN, valueBoolean: true }],
    linkId: ORDER_DATE_LINK_ID,
    text: "The order's start date: the date the coverage rules are applied on (filled in by the payer)",
    type: 'date',
    readOnly: true,
  };
}

/**
 * The hidden, read-only start the order states ({@link ORDER_START_LINK_ID}): filled by the payer only when the order
 * states one (planned or validity start, never authoredOn), read by the pre-fill's recency windows as `%orderStart`,
 * which end on it as the server's do (docs/design.md §6 "Recency").
 */
export function orderStartItem(): QuestionnaireItem {
  return {
    extension: [{ url: EXT_HIDDEN, valueBoolean: true }],
    linkId: ORDER_START_LINK_ID,
    text: "The start date the order states: recent results are read up to it (filled in by the payer)",
    type: 'date',
    readOnly: true,
  };
}

/** Whether any of the policy's facts reads `%orderStart` (only then does its form carry the order-start item). */
export function readsOrderStart(policy: CompiledPolicy): boolean {
  return policy.facts.some((f) => /%orderStart\b/.test(f.def.fhirpath ?? ''));
}

function syntheticJustification(limit: CompiledRule): QuestionnaireItem {
  const linkId = justificationLinkId(limit.id);
  return {
    linkId,
    type: 'boolean',
    text: `If the order exceeds this limit (${limit.text.replace(/\s+/g, ' ').trim()}): is the ${limit.justification!.replace(/\s+/g, ' ').trim()}?`,
    item: [
      helpItem(
        linkId,
        `The payer accepts an order above the limit when the prescriber documents it: ${limit.justification} (${limit.cite}).`,
      ),
    ],
  };
}

/** SDC launch contexts (patient, user, encounter), codes from the SDC launchContext code system. */
function launchContexts(): Extension[] {
  const ctx = (code: string, display: string, types: string[], description: string): Extension => ({
    url: EXT_LAUNCH_CONTEXT,
    extension: [
      { url: 'name', valueCoding: { system: LAUNCH_CONTEXT_SYSTEM, code, display } },
      ...types.map((t) => ({ url: 'type', valueCode: t })),
      { url: 'description', valueString: description },
    ],
  });
  return [
    ctx('patient', 'Patient', ['Patient'], 'The patient the order is for'),
    ctx('user', 'User', ['Practitioner', 'PractitionerRole'], 'The clinician completing the form'),
    ctx('encounter', 'Encounter', ['Encounter'], 'The encounter in which the order was written, if any'),
  ];
}

function narrative(title: string, description: string, groups: QuestionnaireItem[]): string {
  const list = groups
    .map(
      (g) =>
        `<li>${escapeHtml(g.text ?? '')}<ul>${(g.item ?? []).map((i) => `<li>${escapeHtml(i.text ?? '')}</li>`).join('')}</ul></li>`,
    )
    .join('');
  return `<div xmlns="http://www.w3.org/1999/xhtml"><p><b>${escapeHtml(title)}</b></p><p>${escapeHtml(description)}</p><ul>${list}</ul></div>`;
}

/** Every item of a Questionnaire, depth first. */
export function flattenItems(items: QuestionnaireItem[] | undefined): QuestionnaireItem[] {
  return (items ?? []).flatMap((i) => [i, ...flattenItems(i.item)]);
}
