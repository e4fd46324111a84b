/**
 * A QuestionnaireResponse to a policy's Questionnaire read in the policy's terms (docs/design.md §5 "One model, three
 * uses"): fact values, their information-origin, attachments and problems, and the response PriorPath writes back.
 * Core, because two edges read answers: DTR (a saved or adaptive response) and PAS (the response attached to a
 * request), and both must read them alike (DTR 2.2 §QuestionnaireResponse; PAS 2.2.1 §Additional Documentation).
 *
 * @module
 */
import type {
  Coding,
  Extension,
  Questionnaire,
  QuestionnaireItem,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  QuestionnaireResponseItemAnswer,
  Reference,
  ValueSet,
} from '@medplum/fhirtypes';
import { resolveValueSetUrl } from '../fhir/fhirpath.js';
import type { ValueSetIndex } from '../fhir/value-sets.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import type { FactValue } from '../policies/evaluate-policy.js';
import type { FactType } from '../policies/policy-schema.js';
import { CRD_TEMP_SYSTEM } from './coverage-information.js';
import {
  CRD_COVERAGE_INFORMATION_CODES,
  DTR_QR,
  EXT_INFORMATION_ORIGIN,
  EXT_INTENDED_USE,
  EXT_QR_CONTEXT,
  EXT_QR_COVERAGE,
} from '../fhir/dtr-urls.js';
import type { DtrVersion } from '../fhir/dtr-urls.js';
import { justificationLinkId, ORDER_DATE_LINK_ID, ORDER_START_LINK_ID } from '../policies/questionnaire-names.js';
import { forDisplay } from '../policies/display-precision.js';

/** DTR `information-origin` source, folded to the three values both DTR 2.0.1 and 2.2 mean. */
export type InformationOrigin = 'auto' | 'override' | 'manual';

/** One problem with an answer, located by FHIRPath-style path (for a 400 OperationOutcome). */
export interface AnswerProblem {
  path: string;
  message: string;
}

/** What a QuestionnaireResponse says, in the policy's terms. */
export interface ParsedAnswers {
  /** Fact values by fact name: what `evaluatePolicy` takes as `answers`. */
  answers: Record<string, FactValue>;
  /** `information-origin` of each answered item, by linkId. An answer without the extension counts as manual. */
  origins: Record<string, InformationOrigin>;
  /** Answers to justification questions that are not facts (`justification-<limitId>`), by limit id. */
  justifications: Record<string, boolean>;
  /** Answers that could not be read (wrong value type, code outside the answer value set, repeated answers). */
  problems: AnswerProblem[];
  /** The order's start from the hidden order-date item (YYYY-MM-DD), when the response carries it. */
  orderDate?: string;
  /**
   * Attestations answered true without the document that proves them (a policy attachment's `proves`): left out of
   * `answers`, so unknown (documentation needed), never false.
   */
  unproven: string[];
  /**
   * The linkIds of answered items the form hides for this response's answers (`enableWhenExpression` false, or an
   * ancestor's): not read, as if unanswered (design.md §7 "Answers the form does not show"). Empty unless the caller
   * passed the hidden items.
   */
  notShown: string[];
}

const ORIGIN: Record<string, InformationOrigin> = {
  auto: 'auto',
  'auto-client': 'auto',
  'auto-server': 'auto',
  override: 'override',
  manual: 'manual',
};

/** The DTR information-origin of an answer (DTR §QuestionnaireResponse "information-origin"; 2.0.1 and 2.2 codes). */
export function originOf(answer: QuestionnaireResponseItemAnswer): InformationOrigin {
  const ext = answer.extension?.find((e) => e.url === EXT_INFORMATION_ORIGIN);
  const code = ext?.extension?.find((e) => e.url === 'source')?.valueCode;
  return (code && ORIGIN[code]) || 'manual';
}

const isDate = (s: string) => /^\d{4}(-\d{2}(-\d{2})?)?$/.test(s);

/** Reads one answer as a value of the fact's type; returns an error message when it is the wrong kind. */
function readValue(
  a: QuestionnaireResponseItemAnswer,
  type: FactType,
  codes: Set<string> | undefined,
): FactValue | string[] {
  switch (type) {
    case 'boolean':
      return typeof a.valueBoolean === 'boolean' ? a.valueBoolean : ['expected valueBoolean'];
    case 'decimal': {
      const v = a.valueDecimal ?? a.valueInteger ?? a.valueQuantity?.value;
      return typeof v === 'number' && Number.isFinite(v) ? v : ['expected valueDecimal'];
    }
    case 'integer': {
      const v = a.valueInteger ?? a.valueDecimal;
      return typeof v === 'number' && Number.isInteger(v) ? v : ['expected valueInteger'];
    }
    case 'code': {
      const code = a.valueCoding?.code;
      if (typeof code !== 'string' || code === '') return ['expected valueCoding with a code'];
      return codes && !codes.has(code) ? [`code ${code} is not in the answer value set`] : code;
    }
    case 'date': {
      const v = a.valueDate ?? a.valueDateTime?.slice(0, 10);
      return typeof v === 'string' && isDate(v) ? v : ['expected valueDate'];
    }
    case 'string':
      return typeof a.valueString === 'string' ? a.valueString : ['expected valueString'];
  }
}

/**
 * Reads a QuestionnaireResponse into fact values by name (design.md §5): an answer fills what the record leaves
 * unknown, and stands over the record only as docs/design.md §7 "Answers and the record" allows (the order's own facts
 * keep the order's value; an answer contradicting what signing read pends for review).
 * Walks nested items (groups and items under answers); an item maps to the fact whose `linkId` it carries. Items
 * without an answer are unknown; items PriorPath does not know (display, groups, other forms' questions) are ignored,
 * and so are the items in `hidden` (those the form does not show for these answers: {@link ParsedAnswers.notShown}).
 */
export function answersFromQuestionnaireResponse(
  policy: CompiledPolicy,
  qr: QuestionnaireResponse,
  valueSets?: ValueSetIndex,
  valueSetBase?: string,
  hidden?: ReadonlySet<string>,
): ParsedAnswers {
  const byLinkId = new Map<string, string>();
  for (const f of policy.facts) if (f.def.linkId && f.def.askable) byLinkId.set(f.def.linkId, f.name);
  const justificationIds = new Map(
    policy.limits.filter((l) => l.justification).map((l) => [justificationLinkId(l.id), l.id]),
  );
  const out: ParsedAnswers = { answers: {}, origins: {}, justifications: {}, problems: [], unproven: [], notShown: [] };
  const hasAnswer = (item: QuestionnaireResponseItem): boolean =>
    (item.answer ?? []).length > 0 || (item.item ?? []).some(hasAnswer);
  const attachmentIds = new Set(policy.attachments.filter((a) => a.proves).map((a) => a.linkId));
  const attached = new Set<string>();

  const codesFor = (name: string): Set<string> | undefined => {
    const ref = policy.factsByName.get(name)?.def.answerValueSet;
    if (!ref || !valueSets || !valueSetBase) return undefined;
    const vs = valueSets.get(resolveValueSetUrl(ref, valueSetBase));
    return vs ? new Set((vs.expansion?.contains ?? []).map((c) => c.code).filter((c): c is string => !!c)) : undefined;
  };

  const walk = (items: QuestionnaireResponseItem[] | undefined, path: string) => {
    (items ?? []).forEach((item, i) => {
      const here = `${path}.item[${i}]`;
      // An item the form hides for these answers was not shown: its answer (and anything under it) decides nothing,
      // nor is a malformed one an error.
      if (hidden?.has(item.linkId)) {
        if (hasAnswer(item) && !out.notShown.includes(item.linkId)) out.notShown.push(item.linkId);
        return;
      }
      const answers = item.answer ?? [];
      const fact = byLinkId.get(item.linkId);
      const limit = justificationIds.get(item.linkId);
      if (attachmentIds.has(item.linkId) && answers.some((a) => !!a.valueAttachment && !!(a.valueAttachment.data || a.valueAttachment.url)))
        attached.add(item.linkId);
      if (item.linkId === ORDER_DATE_LINK_ID && answers.length > 0) {
        const v = readValue(answers[0], 'date', undefined);
        if (typeof v === 'string') out.orderDate = v.slice(0, 10);
        else out.problems.push({ path: `${here}.answer[0]`, message: `${item.linkId}: ${Array.isArray(v) ? v.join('; ') : 'expected valueDate'}` });
      }
      if ((fact || limit) && answers.length > 0) {
        if (answers.length > 1)
          out.problems.push({ path: here, message: `${item.linkId} takes one answer, got ${answers.length}` });
        const type = fact ? policy.factsByName.get(fact)!.def.type : 'boolean';
        const v = readValue(answers[0], type, fact ? codesFor(fact) : undefined);
        if (Array.isArray(v))
          out.problems.push({ path: `${here}.answer[0]`, message: `${item.linkId}: ${v.join('; ')}` });
        else {
          if (fact) out.answers[fact] = v;
          else out.justifications[limit!] = v as boolean;
          out.origins[item.linkId] = originOf(answers[0]);
        }
      }
      walk(item.item, here);
      answers.forEach((a, j) => walk(a.item, `${here}.answer[${j}]`));
    });
  };
  walk(qr.item, 'QuestionnaireResponse');
  out.unproven = unprovenAttestations(policy, out.answers, attached);
  for (const name of out.unproven) delete out.answers[name];
  return out;
}

/**
 * The attestations answered true whose proving document (an attachment with `proves`, e.g. CP.PHAR.312 I.A.5.b "the
 * prescriber must submit supporting evidence") is not among `attached` (attachment linkIds carrying data or a url).
 * The seed makes the evidence part of the criterion, so such a "Yes" is not yet the criterion met: it is unknown, and
 * the request waits for the document. A "No" needs no document and stands.
 */
export function unprovenAttestations(policy: CompiledPolicy, answers: Record<string, FactValue>, attached: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const a of policy.attachments) {
    if (!a.proves || attached.has(a.linkId)) continue;
    for (const name of a.proves) if (answers[name] === true) out.add(name);
  }
  return [...out];
}

/** The attachment item whose document proves a fact (its `proves`), if any: what to attach for it. */
export function provingAttachment(policy: CompiledPolicy, fact: string): CompiledPolicy['attachments'][number] | undefined {
  return policy.attachments.find((a) => a.proves?.includes(fact));
}

/** Options of a pre-filled response. */
export interface PrefillOptions {
  valueSets: ValueSetIndex;
  canonicalBase: string;
  subject?: Reference;
  coverage?: Reference;
  orders?: Reference[];
  /** Wire shape: 2.0.1 (Coverage in qr-context, origin `auto`) or 2.2 (qr-coverage, origin `auto-server`). */
  dtrVersion?: DtrVersion;
  /** Extensions to add, e.g. the CRD coverage-information that links the response to its assertion (DTR 2.2). */
  extension?: Extension[];
  id?: string;
  authored?: string;
  /** The order's start (evaluation-data.ts `orderStartOf`): the answer of the hidden order-date item. */
  orderDate?: string;
  /** The start the order states (evaluation-data.ts `statedStartOf`): the answer of the hidden order-start item. */
  orderStart?: string;
}

function answerValue(
  value: unknown,
  type: FactType,
  coding: (code: string) => Coding | undefined,
): QuestionnaireResponseItemAnswer | undefined {
  switch (type) {
    case 'boolean':
      return typeof value === 'boolean' ? { valueBoolean: value } : undefined;
    case 'decimal':
      return typeof value === 'number' && Number.isFinite(value) ? { valueDecimal: value } : undefined;
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value) ? { valueInteger: value } : undefined;
    case 'code': {
      const c = typeof value === 'string' ? coding(value) : undefined;
      return c ? { valueCoding: c } : undefined;
    }
    case 'date':
      return typeof value === 'string' && isDate(value.slice(0, 10)) ? { valueDate: value.slice(0, 10) } : undefined;
    case 'string':
      return typeof value === 'string' ? { valueString: value } : undefined;
  }
}

/** An askable fact as a pre-filled answer needs it. */
interface AskableFact {
  name: string;
  type: FactType;
  answerValueSet?: string;
  unit?: string;
}

/** By policy: its askable facts by linkId, made once (a compiled policy never changes). */
const askableCache = new WeakMap<CompiledPolicy, Map<string, AskableFact>>();

function askableByLinkId(policy: CompiledPolicy): Map<string, AskableFact> {
  let byLinkId = askableCache.get(policy);
  if (!byLinkId) {
    byLinkId = new Map();
    for (const f of policy.facts)
      if (f.def.linkId && f.def.askable)
        byLinkId.set(f.def.linkId, { name: f.name, type: f.def.type, answerValueSet: f.def.answerValueSet, unit: f.def.unit });
    askableCache.set(policy, byLinkId);
  }
  return byLinkId;
}

type ExpansionEntry = NonNullable<NonNullable<ValueSet['expansion']>['contains']>[number];

/** By ValueSet: its expansion's first entry for each code, made once (content ValueSets never change). */
const expansionCache = new WeakMap<ValueSet, Map<string, ExpansionEntry>>();

function expansionByCode(vs: ValueSet | undefined): Map<string, ExpansionEntry> | undefined {
  const contains = vs?.expansion?.contains;
  if (!vs || !contains) return undefined;
  let byCode = expansionCache.get(vs);
  if (!byCode) {
    byCode = new Map();
    // The first entry with a code, as `find` would answer.
    for (const c of contains) if (c.code !== undefined && !byCode.has(c.code)) byCode.set(c.code, c);
    expansionCache.set(vs, byCode);
  }
  return byCode;
}

/**
 * A draft QuestionnaireResponse for a Questionnaire, pre-filled from fact values the payer already holds (the facts
 * recorded at CRD time), each answer marked `information-origin` auto (DTR §"Populating the QuestionnaireResponse":
 * payer-filled answers are `auto` in 2.0.1, `auto-server` in 2.2). Status in-progress; no author (the payer did not
 * author it); the item tree follows the Questionnaire's groups.
 */
export function prefilledResponse(
  policy: CompiledPolicy,
  questionnaire: Questionnaire,
  facts: Record<string, unknown>,
  opts: PrefillOptions,
): QuestionnaireResponse {
  const version = opts.dtrVersion ?? '2.0.1';
  const byLinkId = askableByLinkId(policy);
  const origin: Extension = {
    url: EXT_INFORMATION_ORIGIN,
    extension: [{ url: 'source', valueCode: version === '2.2' ? 'auto-server' : 'auto' }],
  };

  const codingFor =
    (ref: string | undefined) =>
    (code: string): Coding | undefined => {
      if (!ref) return undefined;
      const c = expansionByCode(opts.valueSets.get(resolveValueSetUrl(ref, `${opts.canonicalBase}/ValueSet`)))?.get(code);
      if (!c) return undefined;
      const coding: Coding = { system: c.system, code: c.code };
      if (c.display) coding.display = c.display;
      return coding;
    };

  const fill = (items: QuestionnaireItem[] | undefined): QuestionnaireResponseItem[] => {
    const out: QuestionnaireResponseItem[] = [];
    for (const item of items ?? []) {
      if (item.type === 'display') continue;
      if (item.type === 'group') {
        const children = fill(item.item);
        if (children.length > 0) {
          const group = responseItem(item);
          group.item = children;
          out.push(group);
        }
        continue;
      }
      const fact = byLinkId.get(item.linkId);
      const answer =
        item.linkId === ORDER_DATE_LINK_ID
          ? answerValue(opts.orderDate, 'date', () => undefined)
          : item.linkId === ORDER_START_LINK_ID
            ? answerValue(opts.orderStart, 'date', () => undefined)
            : fact
            ? // A computed amount is shown as a clinician reads it (display-precision.ts: 0.87 mg/m², not
              // 0.8673675867890412); sent back unchanged it is read as the unrounded value (sameAtDisplay).
              answerValue(
                typeof facts[fact.name] === 'number' ? forDisplay(fact, facts[fact.name] as number) : facts[fact.name],
                fact.type,
                codingFor(fact.answerValueSet),
              )
            : undefined;
      if (answer) {
        // answerValue made the answer for this item alone, with no extension of its own.
        answer.extension = [origin];
        const answered = responseItem(item);
        answered.answer = [answer];
        out.push(answered);
      }
    }
    return out;
  };

  // DTR 2.0.1 requires at least one item (2.2 allows none): with no answers the response lists the questions, unanswered.
  const skeleton = (items: QuestionnaireItem[] | undefined): QuestionnaireResponseItem[] => {
    const out: QuestionnaireResponseItem[] = [];
    for (const i of items ?? []) {
      if (i.type === 'display') continue;
      const children = i.type === 'group' ? skeleton(i.item) : [];
      if (i.type === 'group' && children.length === 0) continue;
      const question = responseItem(i);
      if (children.length > 0) question.item = children;
      out.push(question);
    }
    return out;
  };
  const filled = fill(questionnaire.item);

  const extension: Extension[] = [];
  if (opts.coverage)
    extension.push({ url: version === '2.2' ? EXT_QR_COVERAGE : EXT_QR_CONTEXT, valueReference: opts.coverage });
  for (const o of opts.orders ?? []) extension.push({ url: EXT_QR_CONTEXT, valueReference: o });
  extension.push({
    url: EXT_INTENDED_USE,
    valueCodeableConcept: {
      // DTR 2.0.1 binds intendedUse to CRD's temporary code system; 2.2 to coverage-information-codes.
      coding: [
        {
          system: version === '2.2' ? CRD_COVERAGE_INFORMATION_CODES : CRD_TEMP_SYSTEM,
          code: 'withpa',
          display: 'With prior authorization',
        },
      ],
    },
  });
  extension.push(...(opts.extension ?? []));

  const meta = { profile: [DTR_QR] };
  const canonical = questionnaire.version ? `${questionnaire.url}|${questionnaire.version}` : questionnaire.url;
  const response: QuestionnaireResponse = opts.id
    ? { resourceType: 'QuestionnaireResponse', id: opts.id, meta, extension, questionnaire: canonical, status: 'in-progress' }
    : { resourceType: 'QuestionnaireResponse', meta, extension, questionnaire: canonical, status: 'in-progress' };
  if (opts.subject) response.subject = opts.subject;
  if (opts.authored) response.authored = opts.authored;
  response.item = filled.length > 0 || version === '2.2' ? filled : skeleton(questionnaire.item);
  return response;
}

/**
 * A response item for a question or group, its `linkId` and `text`, built property by property in that order (the
 * JSON is the same as a literal's). Not `{ linkId, ...(text ? { text } : {}), ... }`: in Node 20's V8 a literal that
 * spreads gets a hidden class of its own, made in the old generation (README "Memory"), and a pre-filled response has
 * one such object per question, two responses per `$questionnaire-package` (README "`$questionnaire-package`: where
 * the time goes").
 */
function responseItem(question: QuestionnaireItem): QuestionnaireResponseItem {
  const item: QuestionnaireResponseItem = { linkId: question.linkId };
  if (question.text) item.text = question.text;
  return item;
}
