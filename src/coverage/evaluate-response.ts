import type { Extension, MedicationRequest, Questionnaire, QuestionnaireResponse } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import { DomainError } from '../errors.js';
import { COVERAGE_INFO_URL } from './coverage-information.js';
import { localReference } from '../fhir/references.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { askWhenFalse, evaluatePolicy, unusableAnswers } from '../policies/evaluate-policy.js';
import type { ChartContradiction, EvaluationData, FactValue, Outcome, PolicyEvaluation } from '../policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../policies/evaluation-data.js';
import type { PatientRecord } from '../policies/evaluation-data.js';
import { answersFromQuestionnaireResponse } from './questionnaire-answers.js';
import { answeredLinkIds, anyGated, hiddenLinkIds } from './hidden-answers.js';
import type { ParsedAnswers } from './questionnaire-answers.js';
import { askableClosure, recordVariablesOf } from '../policies/policy-structure.js';
import { adaptiveQuestionnaireUrl, questionnaireUrl } from '../policies/questionnaire-names.js';
import { sameAtDisplay } from '../policies/display-precision.js';

/**
 * The policy a Questionnaire canonical (`url` or `url|version`) belongs to, and the version asked for: the policy's
 * standard form or its adaptive form (`…-adaptive`, same version), whose `$next-question` route asks the same questions.
 */
export function policyForQuestionnaire(
  content: Content,
  canonical: string | undefined,
): { policy: CompiledPolicy; version?: string } | undefined {
  if (!canonical) return undefined;
  const [url, version] = canonical.split('|');
  const policy =
    content.policies.find((p) => questionnaireUrl(content.canonicalBase, p.file.id) === url) ??
    content.policies.find((p) => adaptiveQuestionnaireUrl(content.canonicalBase, p.file.id) === url);
  return policy ? { policy, version } : undefined;
}

/**
 * The Questionnaire canonical a response answers: `QuestionnaireResponse.questionnaire`, or for an adaptive response
 * (`#contained`) the contained Questionnaire's `derivedFrom` or `url` (SDC §Adaptive Questionnaires).
 */
export function answeredCanonical(qr: QuestionnaireResponse): string | undefined {
  const ref = qr.questionnaire;
  if (!ref?.startsWith('#')) return ref;
  const q = (qr.contained ?? []).find(
    (c): c is Questionnaire => c.resourceType === 'Questionnaire' && c.id === ref.slice(1),
  );
  return q?.derivedFrom?.[0] ?? q?.url;
}

/** The `coverage-assertion-id`s in a resource's CRD coverage-information extensions (an order, or a DTR 2.2 response). */
export function coverageAssertionIds(resource: { extension?: Extension[] } | undefined): string[] {
  return (resource?.extension ?? [])
    .filter((e) => e.url === COVERAGE_INFO_URL)
    .map((e) => e.extension?.find((s) => s.url === 'coverage-assertion-id')?.valueString)
    .filter((v): v is string => typeof v === 'string' && v !== '');
}

/** Input of {@link evaluateQuestionnaireResponse}. */
export interface EvaluateResponseInput {
  content: Content;
  qr: QuestionnaireResponse;
  /**
   * The patient's whole record (as at CRD time), when the caller has it: facts not answered are read from it. Absent:
   * only the answers (and `knownFacts`) count, and every other askable fact is unknown.
   */
  record?: PatientRecord;
  /** The order being decided, for a record (default: the record's first order). */
  order?: MedicationRequest;
  /**
   * Fact values already established for this order, e.g. `AssertionRecord.facts` found through the response's or the
   * order's `coverage-assertion-id`. Answers override them; a derived fact is dropped when an answer changed a fact it
   * is computed from, so it is recomputed from the answer.
   */
  knownFacts?: Record<string, unknown>;
  /**
   * What PriorPath itself read from the patient's record and the order when the order was signed: the facts of the CRD
   * assertion for this order (never a DTR determination's, which holds answers). An answer that contradicts one of
   * them and alone would approve the order sends it to clinical review (`PolicyEvaluation.contradicted`); without a
   * record, a fact of the order stated there stands over an answer (docs/design.md §7 "Answers and the record").
   */
  chartFacts?: Record<string, unknown>;
  /**
   * YYYY-MM-DD: the date CRD judged the order on, as the assertion found with `knownFacts` recorded it
   * (`AssertionRecord.orderDate`): the order date when neither the record's order nor the response's order-date item
   * states one (design.md §7 "One date per order").
   */
  assertedOrderDate?: string;
  /**
   * YYYY-MM-DD: the start the order stated when CRD judged it (`AssertionRecord.orderStart`): a record's order that
   * states none (a PAS copy that dropped it) is judged on it, windows and all (evaluation-data.ts evaluationDataFor).
   */
  assertedOrderStart?: string;
  /**
   * YYYY-MM-DD: the order date when neither the record's order, the response's order-date item (the start the payer
   * pre-filled) nor `assertedOrderDate` states one.
   */
  today: string;
}

export interface EvaluateResponseResult extends ParsedAnswers {
  policy: CompiledPolicy;
  evaluation: PolicyEvaluation;
  /**
   * YYYY-MM-DD: the date the order was judged on (the record's order start, else the response's order-date item, else
   * the asserted date, else today): the date an approval made on this evaluation starts on.
   */
  orderDate: string;
  /** e.g. the response answers an older version of the Questionnaire. */
  warnings: string[];
}

const answersOnlyCache = new WeakMap<CompiledPolicy, CompiledPolicy>();

/**
 * The policy as it runs over answers alone. An askable fact is known only when answered (its EHR expression would
 * read an empty record as "false" for history facts). A derived fact computed from other facts runs over the answers;
 * one that also reads the record runs only once every askable fact it is computed from is answered, and is unknown
 * before: over an empty record, "no Condition" or "no MedicationRequest" would otherwise turn an unanswered question
 * into a definite "false". A question that does not arise for this patient (its `askWhen` known false over the facts
 * read so far, as the form and hidden-answers.ts read it: e.g. "cycle 1 of this relapsed course?" for a patient in
 * first remission) is not waited for: the form hides it, so it is never answered and its fact stays unknown, which is
 * its value (design.md §7 "One record of what CRD knew": a question that does not arise holds nothing open), as
 * limitApplies reads it. A derived fact that reads nothing but the record is unknown.
 */
function answersOnly(policy: CompiledPolicy): CompiledPolicy {
  let view = answersOnlyCache.get(policy);
  if (!view) {
    const unknown = () => [];
    const isUnknown = (v: unknown) => v === undefined || (Array.isArray(v) && v.length === 0);
    view = {
      ...policy,
      facts: policy.facts.map((f) => {
        const doesNotArise = (d: string, env: Record<string, unknown>) => {
          const askWhen = policy.factsByName.get(d)?.askWhen;
          if (!askWhen) return false;
          const known: Record<string, FactValue> = {};
          for (const g of policy.facts) if (!isUnknown(env[g.name])) known[g.name] = env[g.name] as FactValue;
          return askWhenFalse(askWhen, known, String(env.orderDate));
        };
        const readsRecord = recordVariablesOf(policy, f).length > 0;
        // A question whose answer follows from other answers (its askWhen closes once they are given: "is this a
        // renewal?" after "not cycle 1 of this course", design.md §6 "Cycles") is not asked, so it is computed from
        // those facts, as a derived fact is, when its expression reads nothing but facts; otherwise a question is
        // known only when answered.
        if (f.def.askable) {
          if (!f.askWhen || f.deps.length === 0 || readsRecord) return { ...f, expr: unknown };
          return { ...f, expr: (resource: unknown, env: Record<string, unknown>) => (doesNotArise(f.name, env) ? f.expr(resource, env) : []) };
        }
        if (f.deps.length === 0) return { ...f, expr: unknown };
        if (!readsRecord) return f;
        const needs = [...askableClosure(policy, f.deps).askable];
        return {
          ...f,
          expr: (resource: unknown, env: Record<string, unknown>) =>
            needs.some((d) => isUnknown(env[d]) && !doesNotArise(d, env)) ? [] : f.expr(resource, env),
        };
      }),
    };
    answersOnlyCache.set(policy, view);
  }
  return view;
}

/** The evaluation data of an order nothing is known about (no record): every fact comes from answers, or is unknown. */
export function emptyData(today: string): EvaluationData {
  return {
    order: { resourceType: 'MedicationRequest' },
    conditions: [],
    observations: [],
    medications: [],
    immunizations: [],
    diagnoses: [],
    orderDate: today,
  };
}

const isFactValue = (v: unknown): v is FactValue =>
  typeof v === 'boolean' || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/**
 * Answers with each fact of the order (`readsOrder`) replaced by the value the order stated at signing (`stated`: the
 * CRD assertion's facts), where it stated one (docs/design.md §7 "Answers and the record"). An answer still fills a
 * fact of the order the order left unknown.
 */
export function withOrderStated(
  policy: CompiledPolicy,
  answers: Record<string, FactValue>,
  stated: Record<string, unknown> | undefined,
): Record<string, FactValue> {
  if (!stated) return answers;
  let out = answers;
  for (const name of Object.keys(answers)) {
    const f = policy.factsByName.get(name);
    const v = stated[name];
    if (f?.readsOrder && isFactValue(v) && v !== answers[name]) {
      if (out === answers) out = { ...answers };
      out[name] = v;
    }
  }
  return out;
}

/**
 * Answers plus the known facts they leave standing (see {@link EvaluateResponseInput.knownFacts}). A question's known
 * value stands unless the answers close the question (closedByAnswers): `orderDate` is the date its gate reads.
 */
export function withKnownFacts(
  policy: CompiledPolicy,
  answers: Record<string, FactValue>,
  known: Record<string, unknown> | undefined,
  orderDate = '',
): Record<string, FactValue> {
  if (!known) return answers;
  const out: Record<string, FactValue> = { ...answers };
  const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  for (const f of policy.facts) {
    const v = known[f.name];
    if (has(answers, f.name) || !isFactValue(v)) continue;
    if (f.def.askable) {
      if (!closedByAnswers(f, answers, known, orderDate)) out[f.name] = v;
    } else {
      const { askable } = askableClosure(policy, f.deps);
      if ([...askable].every((d) => !has(answers, d) || answers[d] === known[d])) out[f.name] = v;
    }
  }
  return out;
}

/**
 * Whether the answers close a question whose value was recorded earlier (CRD's pre-fill): its `askWhen` is false over
 * the answers (the recorded facts filling the rest) and reads a fact the answers changed. The recorded value was
 * computed while that answer was still open ("is this a renewal?" read "no" before the clinician answered "not cycle 1
 * of this course"), so it no more stands for the question than a hidden answer does (design.md §7 "Answers the form
 * does not show"): the fact follows from the answers (answersOnly) or the record.
 */
function closedByAnswers(
  f: CompiledPolicy['facts'][number],
  answers: Record<string, FactValue>,
  known: Record<string, unknown>,
  orderDate: string,
): boolean {
  if (!f.askWhen || !f.askWhenReads?.some((d) => Object.prototype.hasOwnProperty.call(answers, d) && !sameValue(answers[d], known[d]))) return false;
  const facts: Record<string, FactValue> = {};
  for (const [k, v] of Object.entries(known)) if (isFactValue(v)) facts[k] = v;
  return askWhenFalse(f.askWhen, Object.assign(facts, answers), orderDate);
}

/**
 * Evaluates a DTR QuestionnaireResponse with the same `evaluatePolicy` CRD runs (design.md §5, "One model, three
 * uses": uses 2 and 3), the answers overriding what the EHR data says. This is the function PAS reuses for the
 * QuestionnaireResponse attached to a prior-authorization request.
 *
 * Throws a DomainError `processing` (422 at the edges) when the response answers no Questionnaire of a loaded policy.
 */
export function evaluateQuestionnaireResponse(input: EvaluateResponseInput): EvaluateResponseResult {
  const { content, qr } = input;
  const canonical = answeredCanonical(qr);
  const found = policyForQuestionnaire(content, canonical);
  if (!found) {
    throw new DomainError(
      'processing',
      `QuestionnaireResponse.questionnaire ${canonical ?? '(missing)'} is not a Questionnaire of this payer service`,
      ['QuestionnaireResponse.questionnaire'],
    );
  }
  const { policy, version } = found;
  const warnings: string[] = [];
  if (version && version !== policy.file.version) {
    warnings.push(
      `The response answers version ${version} of the Questionnaire; it was evaluated against the current policy version ${policy.file.version}`,
    );
  }
  const valueSetBase = `${content.canonicalBase}/ValueSet`;
  // The record does not change between the readings below (only the answers do): it is indexed once.
  const recordData = recordDataOf(input);
  const read = (hidden?: ReadonlySet<string>) => {
    const parsed = withReadPrecision(policy, answersFromQuestionnaireResponse(policy, qr, content.valueSets, valueSetBase, hidden), input);
    return { parsed, ...judge(input, policy, parsed, recordData) };
  };
  let reading = read();

  // An answer the form hides for the response's other answers decides nothing (design.md §7 "Answers the form does
  // not show"): a stale answer kept after an earlier answer changed, a client that does not prune, a hand-built PAS
  // bundle. The form's gates are read from the compiled policy over the facts as this evaluation read them (the shown
  // answers, the facts CRD recorded, the record); with a hidden answer dropped the evaluation runs again, until the
  // hidden set settles (dropping one answer can close, or open, another gate). Nothing more runs when no answered
  // item has a gate.
  const answered = answeredLinkIds(qr.item);
  if (anyGated(policy, answered)) {
    let hidden = new Set<string>();
    const seen: string[] = [];
    for (let round = 0; round <= policy.facts.length; round++) {
      const next = hiddenLinkIds(policy, answered, factValuesOf(reading.evaluation), reading.orderDate);
      const key = [...next].sort().join(',');
      if (key === [...hidden].sort().join(',')) break;
      // Gates that close and open each other in turn: only the answers hidden either way are dropped.
      if (seen.includes(key)) {
        next.forEach((l) => { if (!hidden.has(l)) next.delete(l); });
        hidden = next;
        reading = read(hidden);
        break;
      }
      seen.push(key);
      hidden = next;
      reading = read(hidden);
    }
  }
  const { parsed, orderDate } = reading;
  let { evaluation } = reading;
  if (parsed.notShown.length > 0)
    warnings.push(`Answers to questions the form does not show for these answers were not read: ${parsed.notShown.join(', ')}`);
  const setAside = orderAnswersSetAside(policy, parsed.answers, evaluation);
  if (setAside.length > 0) warnings.push(`Answers about the order that differ from what the order states were not read: ${setAside.join(', ')}`);
  // A decision that rests on an answer contradicting the record is reviewed, not made by the rules: an approval, and
  // a denial or any other answer the record's values would change (docs/design.md §7 "Answers and the record"). The
  // second reading runs only when an answer differs from the record; nothing more runs otherwise.
  // An answer that cannot be true of a patient (MRD 150 %, 0 kg: evaluate-policy.ts factBounds) was not used: its fact
  // is unknown, and the determination names the answer rather than only asking again (review s44 M1). Not a
  // contradiction of the record either: nothing was decided on it.
  const unusable = unusableAnswers(policy, parsed.answers, orderDate).filter((u) => evaluation.facts.find((f) => f.name === u.fact)?.value === undefined);
  if (unusable.length > 0) evaluation = { ...evaluation, unusable };
  if (evaluation.outcome !== 'error' && input.chartFacts) {
    const usable = unusable.length > 0 ? Object.fromEntries(Object.entries(parsed.answers).filter(([k]) => !unusable.some((u) => u.fact === k))) : parsed.answers;
    const contradicted = contradictions(policy, usable, input.chartFacts);
    if (contradicted.length > 0) {
      const record = Object.fromEntries(contradicted.map((c) => [c.fact, c.record]));
      const onRecord = judge(input, policy, { ...parsed, answers: { ...parsed.answers, ...record } }, recordData).evaluation;
      if (restsOnContradiction(evaluation.outcome, onRecord.outcome)) evaluation = forReview(evaluation, contradicted);
    }
  }
  return { ...parsed, policy, evaluation, warnings, orderDate };
}

/**
 * Whether the outcome of the answers (`answered`) rests on the answers that contradict the record, given the outcome
 * with the record's values put back (`onRecord`): an approval the record's values would not give; a denial they would
 * not give (they leave the order approvable, unknown or a limit review); any other answer the record's values would
 * turn into an approval or into documentation still needed (a limit exceeded only on an answered weight). A denial, or
 * documentation needed, that the record's values leave as it is does not rest on them.
 */
function restsOnContradiction(answered: Outcome, onRecord: Outcome): boolean {
  if (answered === onRecord || onRecord === 'error') return false;
  if (answered === 'satisfied' || answered === 'not-covered') return true;
  return onRecord === 'satisfied' || onRecord === 'documentation-needed';
}

const sameValue = (a: unknown, b: unknown) => a === b || (typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase());

/**
 * The answers with each pre-filled amount sent back as the form showed it (rounded for display: display-precision.ts)
 * read as the unrounded value PriorPath read at signing (the CRD assertion's facts: the record's and the order's), so
 * the rounding the form shows never moves a decision across a limit's edge, nor reads as a contradiction of the record
 * or an answer about the order set aside (design.md §7 "Pre-filled amounts"). An answer the clinician changed is read
 * as given.
 */
function withReadPrecision(policy: CompiledPolicy, parsed: ParsedAnswers, input: EvaluateResponseInput): ParsedAnswers {
  let answers: Record<string, FactValue> | undefined;
  for (const [fact, answer] of Object.entries(parsed.answers)) {
    const def = policy.factsByName.get(fact)?.def;
    if (!def || typeof answer !== 'number') continue;
    const read = input.chartFacts?.[fact] ?? input.knownFacts?.[fact];
    if (typeof read === 'number' && read !== answer && sameAtDisplay(def, answer, read)) (answers ??= { ...parsed.answers })[fact] = read;
  }
  return answers ? { ...parsed, answers } : parsed;
}

/**
 * The answered facts whose answer differs from the value PriorPath read from the record at signing (`chartFacts`),
 * the facts of the order aside (the order's value stands: {@link orderAnswersSetAside}). Every answer is compared,
 * whatever its `information-origin`.
 */
function contradictions(policy: CompiledPolicy, answers: Record<string, FactValue>, chart: Record<string, unknown>): ChartContradiction[] {
  const out: ChartContradiction[] = [];
  for (const [fact, answer] of Object.entries(answers)) {
    const f = policy.factsByName.get(fact);
    const record = chart[fact];
    if (!f || f.readsOrder || !f.def.askable || !isFactValue(record) || sameValue(answer, record)) continue;
    out.push({ fact, record, answer });
  }
  return out;
}

/**
 * The evaluation of a response sent to clinical review: not `satisfied`, no approving pathway, the answers named, and
 * nothing more to ask (a reviewer decides it, so an adaptive form completes with the review rather than asking on).
 */
function forReview(ev: PolicyEvaluation, contradicted: ChartContradiction[]): PolicyEvaluation {
  const { pathway: _notApproving, ...rest } = ev;
  return { ...rest, outcome: 'documentation-needed', missingFacts: [], contradicted };
}

/** The linkIds of answers to facts of the order that the evaluation read from the order instead (evaluate-policy.ts). */
function orderAnswersSetAside(policy: CompiledPolicy, answers: Record<string, FactValue>, ev: PolicyEvaluation): string[] {
  const out: string[] = [];
  for (const [fact, answer] of Object.entries(answers)) {
    const f = policy.factsByName.get(fact);
    if (!f?.readsOrder) continue;
    const read = ev.facts.find((x) => x.name === fact);
    if (read?.source === 'ehr' && !sameValue(read.value, answer)) out.push(f.def.linkId ?? fact);
    else if (read?.source === 'answer' && read.value !== undefined && !sameValue(read.value, answer)) out.push(f.def.linkId ?? fact);
  }
  return out;
}

/** The fact values an evaluation read (answered, recorded or computed), for the form's gates. */
function factValuesOf(evaluation: PolicyEvaluation): Record<string, FactValue> {
  const out: Record<string, FactValue> = {};
  for (const f of evaluation.facts) if (f.value !== undefined) out[f.name] = f.value;
  return out;
}

/**
 * The record's evaluation data at an order date fallback, indexed once per response and made once per fallback (the
 * readings of one response nearly always share it), so that every reading shares one fact memo too: facts that read
 * no answer are evaluated once (evaluate-policy.ts shares only those). Undefined without a record.
 */
type RecordData = ((fallback: string) => EvaluationData) | undefined;

function recordDataOf(input: EvaluateResponseInput): RecordData {
  if (!input.record) return undefined;
  const indexed = indexRecord(input.record);
  const order = input.order ?? indexed.orders[0] ?? ({ resourceType: 'MedicationRequest' } as MedicationRequest);
  const made = new Map<string, EvaluationData>();
  return (fallback) => {
    let data = made.get(fallback);
    if (!data) made.set(fallback, (data = evaluationDataFor(indexed, order, fallback, input.assertedOrderStart)));
    return data;
  };
}

/** The policy evaluated over one reading of the response's answers, and the order date it was judged on. */
function judge(
  input: EvaluateResponseInput,
  policy: CompiledPolicy,
  parsed: ParsedAnswers,
  recordData: RecordData,
): { evaluation: PolicyEvaluation; orderDate: string } {
  // An attestation answered true without its document is unknown: a value recorded earlier (an assertion's facts)
  // must not stand in for it either.
  const known = input.knownFacts && parsed.unproven.length > 0
    ? Object.fromEntries(Object.entries(input.knownFacts).filter(([k]) => !parsed.unproven.includes(k)))
    : input.knownFacts;
  // Without the record (a DTR response), the order is what CRD read of it at signing: a fact of the order stated
  // there stands over an answer, as the order itself does where the record is read (evaluate-policy.ts).
  // The order is judged on the date CRD judged it on (design.md §8: one decision per order): the order's own start
  // when the record has the order, else the start the payer pre-filled in the form's order-date item, else the date
  // the CRD assertion the response names recorded; today only when none says (the same fallback as
  // evaluation-data.ts orderDateOf).
  const fallback = parsed.orderDate ?? input.assertedOrderDate ?? input.today;
  const answers = withKnownFacts(
    policy,
    input.record ? parsed.answers : withOrderStated(policy, parsed.answers, input.chartFacts),
    known,
    recordData ? recordData(fallback).orderDate : fallback,
  );

  if (recordData) {
    const data = recordData(fallback);
    return { evaluation: evaluatePolicy(policy, data, answers), orderDate: data.orderDate };
  }
  return { evaluation: evaluatePolicy(answersOnly(policy), emptyData(fallback), answers), orderDate: fallback };
}

/**
 * The references of a response's DTR context extensions, by resource type (qr-context and qr-coverage), and its
 * subject's Patient id, each as `Type/id` whether the EHR wrote it relative, absolute or versioned (the order's
 * record is keyed so: design.md §8).
 */
export function responseContext(qr: QuestionnaireResponse): { coverage?: string; orders: string[]; patientId?: string } {
  const refs = (qr.extension ?? [])
    .filter((e) => e.url.endsWith('/qr-context') || e.url.endsWith('/qr-coverage'))
    .map((e) => localReference(e.valueReference?.reference))
    .filter((r): r is string => typeof r === 'string');
  const subject = localReference(qr.subject?.reference);
  // The drug order first: qr-context may also name the Encounter (DTR 2.0.1 "a Request or Encounter"), which is not
  // the order whose record the determination belongs to.
  const others = refs.filter((r) => !r.startsWith('Coverage/'));
  return {
    coverage: refs.find((r) => r.startsWith('Coverage/')),
    orders: [...others.filter((r) => r.startsWith('MedicationRequest/')), ...others.filter((r) => !r.startsWith('MedicationRequest/'))],
    ...(subject?.startsWith('Patient/') ? { patientId: subject.slice('Patient/'.length) } : {}),
  };
}
