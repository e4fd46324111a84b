/**
 * Which items of a QuestionnaireResponse the form showed: a Questionnaire's `enableWhen` and SDC
 * `enableWhenExpression` gates, compiled once per form and evaluated over a returned response, so the server reads a
 * response as the form shows it (docs/design.md §7 "Answers the form does not show"). FHIR R4 Questionnaire: an item
 * is enabled only while its own gate and every ancestor's hold; "if enableWhen logic depends on an item that is
 * disabled, the logic should proceed as though the item is not valued".
 *
 * @module
 */
import type {
  Questionnaire,
  QuestionnaireItem,
  QuestionnaireItemEnableWhen,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  QuestionnaireResponseItemAnswer,
} from '@medplum/fhirtypes';
import { compileFhirPath } from './fhirpath.js';
import type { FhirPathOptions } from './fhirpath.js';
import { EXT_ENABLE_WHEN_EXPRESSION } from './dtr-urls.js';

/** A compiled gate: false when the item is hidden for these answers; true or undefined (cannot tell) shows it. */
type Gate = (view: QuestionnaireResponse) => boolean | undefined;

/** A form's gates, compiled once (content is immutable). */
export interface FormGates {
  /** By linkId: the gates of the item and of every ancestor item (all must not be false for it to be shown). */
  chains: Map<string, Gate[]>;
}

const cache = new WeakMap<object, FormGates>();

/**
 * The gates of a Questionnaire, compiled on first use and kept for the form object's life (loadContent compiles every
 * committed form at start-up, so no request compiles one). A gate expression that does not compile shows its item:
 * an item the server cannot prove hidden is read.
 */
export function formGates(questionnaire: Questionnaire | Record<string, unknown>, options: FhirPathOptions): FormGates {
  let gates = cache.get(questionnaire);
  if (gates) return gates;
  const chains = new Map<string, Gate[]>();
  const walk = (items: QuestionnaireItem[] | undefined, above: Gate[]) => {
    for (const item of items ?? []) {
      const own = itemGates(item, options);
      const chain = own.length > 0 ? [...above, ...own] : above;
      if (chain.length > 0) chains.set(item.linkId, chain);
      walk(item.item, chain);
    }
  };
  walk((questionnaire as Questionnaire).item, []);
  gates = { chains };
  cache.set(questionnaire, gates);
  return gates;
}

function itemGates(item: QuestionnaireItem, options: FhirPathOptions): Gate[] {
  const out: Gate[] = [];
  for (const ext of item.extension ?? []) {
    if (ext.url !== EXT_ENABLE_WHEN_EXPRESSION) continue;
    const expression = ext.valueExpression?.expression;
    if (ext.valueExpression?.language !== 'text/fhirpath' || !expression) continue;
    let fn: ReturnType<typeof compileFhirPath>;
    try {
      fn = compileFhirPath(expression, options);
    } catch {
      continue;
    }
    out.push((view) => {
      try {
        const v = fn(view, { resource: view, rootResource: view })[0];
        return typeof v === 'boolean' ? v : undefined;
      } catch {
        // A variable the server does not hold (a client query), or a value the expression cannot read: not proven hidden.
        return undefined;
      }
    });
  }
  if (item.enableWhen && item.enableWhen.length > 0) {
    const conditions = item.enableWhen;
    const any = item.enableBehavior === 'any';
    out.push((view) => {
      const results = conditions.map((c) => enableWhenHolds(c, answersTo(view, c.question)));
      if (results.some((r) => r === undefined)) return undefined;
      return any ? results.some(Boolean) : results.every(Boolean);
    });
  }
  return out;
}

/** The answers to `linkId` anywhere in the response. */
function answersTo(qr: QuestionnaireResponse, linkId: string): QuestionnaireResponseItemAnswer[] {
  const out: QuestionnaireResponseItemAnswer[] = [];
  const walk = (items: QuestionnaireResponseItem[] | undefined) => {
    for (const i of items ?? []) {
      if (i.linkId === linkId) out.push(...(i.answer ?? []));
      walk(i.item);
      for (const a of i.answer ?? []) walk(a.item);
    }
  };
  walk(qr.item);
  return out;
}

const ANSWER_KEYS = [
  'Boolean',
  'Decimal',
  'Integer',
  'Date',
  'DateTime',
  'Time',
  'String',
  'Coding',
  'Quantity',
  'Reference',
] as const;

/** One `enableWhen` condition (R4 semantics: a comparison with no answer is false); undefined when it cannot be read. */
function enableWhenHolds(c: QuestionnaireItemEnableWhen, answers: QuestionnaireResponseItemAnswer[]): boolean | undefined {
  const key = ANSWER_KEYS.find((k) => (c as unknown as Record<string, unknown>)[`answer${k}`] !== undefined);
  if (!key) return undefined;
  const expected = (c as unknown as Record<string, unknown>)[`answer${key}`];
  if (c.operator === 'exists') return typeof expected === 'boolean' ? (answers.length > 0) === expected : undefined;
  const values = answers.map((a) => (a as unknown as Record<string, unknown>)[`value${key}`]).filter((v) => v !== undefined);
  const compare = (v: unknown): number | undefined => {
    if (key === 'Coding') {
      const a = v as { system?: string; code?: string };
      const b = expected as { system?: string; code?: string };
      return a.code === b.code && (!a.system || !b.system || a.system === b.system) ? 0 : undefined;
    }
    if (key === 'Quantity') {
      const a = v as { value?: number; code?: string };
      const b = expected as { value?: number; code?: string };
      if (typeof a.value !== 'number' || typeof b.value !== 'number' || (a.code && b.code && a.code !== b.code)) return undefined;
      return a.value - b.value;
    }
    if (key === 'Reference') return (v as { reference?: string }).reference === (expected as { reference?: string }).reference ? 0 : undefined;
    if (typeof v === 'number' && typeof expected === 'number') return v - expected;
    if (typeof v === 'string' && typeof expected === 'string') return v < expected ? -1 : v > expected ? 1 : 0;
    if (typeof v === 'boolean' && typeof expected === 'boolean') return v === expected ? 0 : 1;
    return undefined;
  };
  const test = (d: number | undefined): boolean => {
    switch (c.operator) {
      case '=':
        return d === 0;
      case '!=':
        return d !== 0;
      case '>':
        return d !== undefined && d > 0;
      case '<':
        return d !== undefined && d < 0;
      case '>=':
        return d !== undefined && d >= 0;
      case '<=':
        return d !== undefined && d <= 0;
      default:
        return false;
    }
  };
  // A comparison with no answer is false; "!=" with none is read differently by renderers: not proven hidden.
  if (values.length === 0) return c.operator === '!=' ? undefined : false;
  return values.some((v) => test(compare(v)));
}

/** The response without the items in `hidden` (and everything under them): what the form's gates read. */
function withoutItems(qr: QuestionnaireResponse, hidden: ReadonlySet<string>): QuestionnaireResponse {
  const prune = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] | undefined =>
    items?.filter((i) => !hidden.has(i.linkId)).map((i) => ({
      ...i,
      ...(i.item ? { item: prune(i.item) } : {}),
      ...(i.answer ? { answer: i.answer.map((a) => (a.item ? { ...a, item: prune(a.item) } : a)) } : {}),
    }));
  return { ...qr, item: prune(qr.item) };
}

/** The linkIds of the response's items (at any depth). */
function linkIdsOf(qr: QuestionnaireResponse): Set<string> {
  const out = new Set<string>();
  const walk = (items: QuestionnaireResponseItem[] | undefined) => {
    for (const i of items ?? []) {
      out.add(i.linkId);
      walk(i.item);
      for (const a of i.answer ?? []) walk(a.item);
    }
  };
  walk(qr.item);
  return out;
}

const same = (a: ReadonlySet<string>, b: ReadonlySet<string>) => a.size === b.size && [...a].every((x) => b.has(x));

/**
 * The linkIds of the response's items the form hides for the response's own answers: an item whose gate, or an
 * ancestor's, is false. Gates read the answers of shown items only (an answer kept under a hidden item is "not
 * valued"), so hiding is worked out again over the response without the hidden items until it settles; should it not
 * settle (gates that hide one another in turn), every item hidden in the last two rounds counts as hidden: an answer
 * is then not read, which leaves its fact unknown (asked, pended), never decided either way.
 */
export function hiddenItems(gates: FormGates, qr: QuestionnaireResponse): Set<string> {
  const present = [...linkIdsOf(qr)].filter((id) => gates.chains.has(id));
  if (present.length === 0) return new Set();
  let hidden = new Set<string>();
  for (let round = 0; round <= present.length; round++) {
    const view = withoutItems(qr, hidden);
    // A group's gate is every child's ancestor gate: read each gate once per round.
    const read = new Map<Gate, boolean | undefined>();
    const closed = (g: Gate) => {
      if (!read.has(g)) read.set(g, g(view));
      return read.get(g) === false;
    };
    const next = new Set(present.filter((id) => gates.chains.get(id)!.some(closed)));
    if (same(next, hidden)) return hidden;
    if (round === present.length) return new Set([...hidden, ...next]);
    hidden = next;
  }
  return hidden;
}
