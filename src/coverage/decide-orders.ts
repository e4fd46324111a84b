import { randomUUID } from 'node:crypto';
import type { Coverage, MedicationRequest } from '@medplum/fhirtypes';
import type { Content, Payer } from '../content.js';
import { drugNamedOnly, policiesFor } from '../content.js';
import type { Logger } from '../logger.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { evaluatePolicy } from '../policies/evaluate-policy.js';
import type { EvaluationData, FactValue, PolicyEvaluation } from '../policies/evaluate-policy.js';
import { evaluationDataFor, orderDateOf, orderStartOf, withMedicationCode } from '../policies/evaluation-data.js';
import type { PatientRecord } from '../policies/evaluation-data.js';
import type { AssertionRecord, AuthorizationRecord, OrderRecord } from '../storage/storage.js';
import type { EvaluationCache } from '../policies/evaluation-cache.js';
import { newApproval, withinCoverage } from './authorization.js';
import { coverageLastDay } from './payer.js';
import { laterStartThatQualifies } from './later-start.js';
import type { Determination } from './determination.js';
import { defaultDetermination, determinationOf, noActiveCoverageDetermination, unreadableDoseOf } from './determination.js';
import type { OrderResource } from './order.js';
import { withOrderRecord } from './order-record.js';
import { beyondApproval } from './reviewed-approval.js';
import { longDate } from '../fhir/long-date.js';

/** What PriorPath decided for one order: a policy evaluation, or the payer's default for ungoverned orders. */
export interface OrderDecision {
  order: OrderResource;
  assertionId: string;
  policy?: CompiledPolicy;
  evaluation?: PolicyEvaluation;
  /**
   * The facts of `evaluation` that the order's earlier DTR answers decided ({@link SigningEvaluation.answeredFacts}):
   * its assertion records them (`AssertionRecord.answeredFacts`), so that they never stand for what signing read from
   * the record (docs/design.md §7 "Answers and the record").
   */
  answeredFacts?: string[];
  /** For orders no policy governs and a payer with a default answer (design.md §6 last bullet). */
  defaultAnswer?: Exclude<Payer['defaultAnswer'], 'none'>;
  authorization?: AuthorizationRecord;
  orderDate: string;
  /** The start the order states (evaluation-data.ts `statedStartOf`), kept with its assertion (`AssertionRecord.orderStart`). */
  orderStart?: string;
  /**
   * The last day of the Coverage the order is decided under (payer.ts `coverageLastDay`; undefined: no end): every
   * approval the order is answered with, issued now or held by its record, ends no later (authorization.ts
   * `withinCoverage`, design.md §4 "Payer").
   */
  coverageEnd?: string;
  /**
   * `Coverage/<id>` the order is decided under, when the call spans a plan change and it is not the call's one
   * Coverage (payer.ts coverageOn): its coverage-information and assertion name it.
   */
  coverageRef?: string;
  /**
   * Why no Coverage of the payer is in force on the order's date, in a call across a plan change whose other orders
   * have one: the order is not judged and is answered "no active Coverage" on its own (design.md §4 "Payer").
   */
  noActiveCoverage?: string;
  /** The order's authorization record, once read or written (design.md §8). */
  record?: OrderRecord;
  /** Not covered only because of a window before the planned start: the first later start that would qualify. */
  laterStart?: { date: string; criteria: string[] };
  /**
   * The order judged again as of another order date: set only for an order that states no date of its own (so it was
   * judged on the day of the call) and whose dose could not be read. An approval at signing was given on the order
   * date it then had, and a re-sign of the unchanged order weeks later may find the height/weight window empty on
   * today's date; settleOrderDecisions judges it on the approval's date before letting the approval go, when that
   * approval is in force, was given at signing and the order is unchanged (docs/design.md §8 "What an approval
   * covers"). Kept only in that case: it holds the patient record past the hook's storage wait.
   */
  judgedOn?: (orderDate: string) => SigningEvaluation;
  /**
   * The number of a reviewer's approval on the order's record that the order as now signed asks more of (a higher dose,
   * more cycles than the reviewed request): the order is answered as evaluated, a limit review, and the approval stands
   * (docs/design.md §8 "What an approval covers"; set by settleOrderDecisions).
   */
  beyondApproval?: string;
  /**
   * The order judged again with answers: set only for an order with an id whose evaluation is documentation needed or
   * not covered. An approval given in DTR or PAS rested on answers signing does not have; when the order was changed
   * since and signed again, settleOrderDecisions judges the order as it now stands with that approval's answers, to
   * tell whether the approval still covers it (docs/design.md §8 "What an approval covers"). Let go of as soon as the
   * order's record is read: it holds the order's data.
   */
  withAnswers?: (answers: Record<string, FactValue>) => PolicyEvaluation;
  /** The policy governs the order by the drug's name alone, no listed code (content.ts drugNamedOnly): said in the reason. */
  drugByName?: { name: string; text: string };
  /**
   * The rules approve an order that carries no id: it gets no number, since no order record could keep it (docs/design.md
   * §8 "An order that cannot be named"), and its determination says what it needs.
   */
  unnamed?: true;
}

/** The determination of a decision: the order's record where it has a decision, else the policy's, else the payer's default. */
export function determinationFor(decision: OrderDecision, today: string): Determination {
  if (decision.noActiveCoverage) return noActiveCoverageDetermination(decision.noActiveCoverage);
  if (decision.defaultAnswer) return defaultDetermination(decision.defaultAnswer);
  const evaluated = determinationOf(decision.policy!, decision.evaluation!, decision.authorization, decision.unnamed);
  const d = withNameNote(
    decision.beyondApproval
      ? { ...evaluated, reasons: [...evaluated.reasons, { text: `${beyondApproval(decision.beyondApproval, 'order')}.` }] }
      : withOrderRecord(evaluated, decision.record, today, decision.coverageEnd),
    decision.drugByName,
  );
  if (!decision.laterStart || d.outcome !== 'not-covered' || d.reasons.length === 0) return d;
  // The clinician can act on a timing exclusion: say which start date would no longer be excluded.
  const [first, ...rest] = d.reasons;
  const start = `A planned start on or after ${longDate(decision.laterStart.date)}`;
  // A denial on the order's record (a PAS request decided A3) is the decision on the order as it was denied: the
  // order signed again with another start is judged afresh (docs/design.md §8 "A denial is the decision on the order
  // as it was denied"), so the same advice holds, after the denial's own (order-record.ts DENIAL_ADVICE).
  const act = 'change the start date and sign again';
  const hint = decision.laterStart.criteria.length
    ? `${start} would meet "${decision.laterStart.criteria.join('" and "')}": ${act}.`
    : `${start} would no longer be excluded: ${act}.`;
  return { ...d, reasons: [{ ...first, text: `${first.text.replace(/\.?$/, '.')} ${hint}` }, ...rest] };
}

/**
 * design.md §6 "Clinical readings": when a name decided, the reason says so. An order governed by its drug's name alone
 * (no code any value set lists) carries it in the first reason, whatever the outcome.
 */
function withNameNote(d: Determination, byName: OrderDecision['drugByName']): Determination {
  if (!byName || d.reasons.length === 0) return d;
  const [first, ...rest] = d.reasons;
  const note = `The drug was recognised by its name ("${byName.name}" in "${byName.text}"), not by a code the policy lists.`;
  return { ...d, reasons: [{ ...first, text: `${first.text.replace(/\.?$/, '.')} ${note}` }, ...rest] };
}

/**
 * How many of the orders a policy of this payer governs (the orders decideOrders would evaluate). Each is evaluated
 * over a record that holds the others too, so a call's cost grows faster than its governed orders: an edge refuses a
 * call with more than it can answer in time (docs/design.md §4 "Errors").
 */
export function governedOrderCount(content: Content, payer: Payer, record: PatientRecord, orders: readonly OrderResource[]): number {
  let n = 0;
  for (const order of orders) if (order.resourceType === 'MedicationRequest' && policiesFor(content, payer.key, withMedicationCode(order, record)).length > 0) n++;
  return n;
}

/**
 * Whether {@link decideOrders} answers this medication order for the payer: a policy of the payer governs its drug, or
 * the payer has a default answer for a coded drug no policy governs (the seed payers have none). Only the orders a
 * payer answers are the service its Coverage is judged on (design.md §4 "Payer": the order dates of the orders
 * decided); an ungoverned draft beside them (a premedication, a drug of the next plan year) is not.
 */
export function decidesOrder(content: Content, payer: Payer, order: MedicationRequest, record: Pick<PatientRecord, 'byReference'>): boolean {
  const coded = withMedicationCode(order, record);
  return policiesFor(content, payer.key, coded).length > 0 || (payer.defaultAnswer !== 'none' && !!coded.medicationCodeableConcept);
}

/**
 * The seam between protocol and policy: hook data + payer in, one decision per governed order out.
 * A policy that throws is contained here: the order gets an `error` evaluation, never a positive assertion.
 */
export function decideOrders(opts: {
  content: Content;
  payer: Payer;
  record: PatientRecord;
  orders: OrderResource[];
  today: string;
  log: Logger;
  /** Remembers evaluations of identical data (optional; see EvaluationCache). */
  cache?: EvaluationCache;
  /** Earlier assertions (CRD or DTR) named by the orders' own coverage-information, keyed by order id. */
  prior?: Map<string, AssertionRecord>;
  /**
   * Whether an order the rules approve gets a new authorization number (default true). False for a call that asks
   * for no unsolicited determination (CRD [found-35]): an approval already issued for the order still stands.
   */
  issueApprovals?: boolean;
  /**
   * The Coverage an order dated so is decided under, when the call spans a plan change (payer.ts coverageOn, the
   * payer's Coverage in force that day, or why none is); unset or undefined, the record's one Coverage.
   */
  coverageOn?: (orderDate: string) => { coverage: Coverage; notInForce?: string } | undefined;
}): OrderDecision[] {
  const decisions: OrderDecision[] = [];
  const callCoverageEnd = coverageLastDay(opts.record.coverage);
  // The Coverage each order is decided under (design.md §4 "Payer"): the call's, or across a plan change its own. Each
  // date is placed once per call: the orders of the request are placed to leave out those outside every Coverage, and
  // each is then decided under the same placing.
  const placedOn = new Map<string, Pick<OrderDecision, 'coverageEnd' | 'coverageRef' | 'noActiveCoverage'>>();
  const place = (orderDate: string): Pick<OrderDecision, 'coverageEnd' | 'coverageRef' | 'noActiveCoverage'> => {
    const placed = opts.coverageOn?.(orderDate);
    if (!placed) return callCoverageEnd ? { coverageEnd: callCoverageEnd } : {};
    const ref = placed.coverage.id ? { coverageRef: `Coverage/${placed.coverage.id}` } : {};
    if (placed.notInForce) return { ...ref, noActiveCoverage: placed.notInForce };
    const end = coverageLastDay(placed.coverage);
    return { ...ref, ...(end ? { coverageEnd: end } : {}) };
  };
  const under = (orderDate: string): Pick<OrderDecision, 'coverageEnd' | 'coverageRef' | 'noActiveCoverage'> => {
    let placed = placedOn.get(orderDate);
    if (!placed) placedOn.set(orderDate, (placed = place(orderDate)));
    return placed;
  };
  // An order no Coverage of the payer is in force on is not judged, so it is no part of the payer's request: the orders
  // signed with it do not count it among the orders of their request (design.md §6 "Orders signed or claimed
  // together"; review-diff s46 F1: it put the next plan year's one cycle to a limit review). Its cycle counts for a
  // course once the record shows it given, as any order's does.
  const outside = (o: MedicationRequest) => !!under(orderDateOf(o, opts.today)).noActiveCoverage;
  const record = opts.coverageOn && opts.record.requestOrders?.some(outside) ? { ...opts.record, requestOrders: opts.record.requestOrders.filter((o) => !outside(o)) } : opts.record;
  for (const [index, order] of opts.orders.entries()) {
    if (order.resourceType !== 'MedicationRequest') {
      // No policy governs devices or services; only a payer default (e.g. the conformance-kit payer) answers them.
      if (opts.payer.defaultAnswer !== 'none') decisions.push({ order, assertionId: randomUUID(), ...answeredOrNot(under(opts.today), opts.payer.defaultAnswer), orderDate: opts.today });
      continue;
    }
    const coded = withMedicationCode(order, opts.record);
    const [policy] = policiesFor(opts.content, opts.payer.key, coded);
    if (!policy) {
      if (opts.payer.defaultAnswer !== 'none' && coded.medicationCodeableConcept) {
        const orderDate = orderDateOf(order, opts.today);
        decisions.push({ order, assertionId: randomUUID(), ...answeredOrNot(under(orderDate), opts.payer.defaultAnswer), orderDate });
      }
      continue;
    }
    // An order no Coverage of the payer is in force on is not judged: it gets its own "no active Coverage" answer.
    const placed = under(orderDateOf(order, opts.today));
    if (placed.noActiveCoverage) {
      decisions.push({ order, assertionId: randomUUID(), orderDate: orderDateOf(order, opts.today), ...placed });
      continue;
    }
    const { coverageEnd } = placed;
    // Only governed orders pay for narrowing the record to FHIRPath variables.
    const data = evaluationDataFor(record, order, opts.today);
    let evaluation: PolicyEvaluation;
    let answeredFacts: string[] = [];
    const prior = order.id ? opts.prior?.get(order.id) : undefined;
    const usablePrior = prior && prior.policyId === policy.file.id && prior.payer === opts.payer.key ? prior : undefined;
    try {
      // The record's source digest names its data; the order's place and the date complete what the data is built from.
      const source = opts.record.sourceDigest !== undefined ? `${opts.record.sourceDigest}|${index}|${order.id ?? ''}|${opts.today}` : undefined;
      ({ evaluation, answeredFacts } = evaluateOrder(policy, data, usablePrior, (answers) => (opts.cache ? opts.cache.evaluate(policy, data, answers, source) : evaluatePolicy(policy, data, answers))));
    } catch (err) {
      opts.log.error({ policy: policy.file.id, err }, 'policy evaluation failed');
      evaluation = { policyId: policy.file.id, policyVersion: policy.file.version, outcome: 'error', facts: [], rules: [], missingFacts: [], failed: [], proposals: [] };
    }
    if (evaluation.outcome === 'error') {
      for (const r of [...evaluation.failed, ...evaluation.facts.filter((f) => f.error)]) {
        opts.log.error({ policy: policy.file.id, criterion: 'id' in r ? r.id : r.name, reason: r.error }, 'policy criterion failed at run time');
      }
    }
    const decision: OrderDecision = { order, assertionId: randomUUID(), policy, evaluation, answeredFacts, orderDate: data.orderDate, ...(data.orderStart ? { orderStart: data.orderStart } : {}), ...placed };
    const byName = drugNamedOnly(opts.content, coded);
    if (byName) decision.drugByName = { name: byName.name, text: byName.text };
    if (orderStartOf(order) === undefined && evaluation.outcome !== 'satisfied' && evaluation.outcome !== 'error' && unreadableDoseOf(policy, evaluation)) {
      const { record } = opts;
      decision.judgedOn = (orderDate) => {
        const then = evaluationDataFor(record, order, orderDate);
        return evaluateOrder(policy, then, usablePrior, (answers) => evaluatePolicy(policy, then, answers));
      };
    }
    if (order.id && (evaluation.outcome === 'documentation-needed' || evaluation.outcome === 'not-covered')) {
      decision.withAnswers = (answers) => evaluatePolicy(policy, data, answers);
    }
    const laterStart = laterStartThatQualifies(policy, data, evaluation);
    if (laterStart) decision.laterStart = laterStart;
    const priorAuth = usablePrior?.authorization;
    if (evaluation.outcome === 'satisfied' && priorAuth && priorAuth.end >= opts.today) {
      // The authorization already issued for this order stands: the EHR must not see a second number for it. Its period
      // is answered within the Coverage the order is decided under (it may have been issued under another, or before).
      decision.authorization = withinCoverage(priorAuth, coverageEnd);
    } else if (evaluation.outcome === 'satisfied' && !order.id) {
      // An order without an id has no record to keep a number on, so every signing would issue it another: it gets
      // none, and the answer says it needs its id (docs/design.md §8 "An order that cannot be named").
      decision.unnamed = true;
    } else if (evaluation.outcome === 'satisfied' && evaluation.pathway?.approval && opts.issueApprovals !== false) {
      decision.authorization = newApproval(opts.payer.key, opts.today, data.orderDate, evaluation.pathway.approval, evaluation.pathway.approvalFrom, coverageEnd);
    }
    decisions.push(decision);
  }
  return decisions;
}

/** A default-answered order's Coverage fields, its default answer only when a Coverage is in force on its date. */
function answeredOrNot(placed: Pick<OrderDecision, 'coverageEnd' | 'coverageRef' | 'noActiveCoverage'>, answer: Exclude<Payer['defaultAnswer'], 'none'>): Partial<OrderDecision> {
  return placed.noActiveCoverage ? placed : { ...placed, defaultAnswer: answer };
}

/** An order's evaluation at signing ({@link evaluateOrder}). */
export interface SigningEvaluation {
  evaluation: PolicyEvaluation;
  /**
   * The facts whose value in `evaluation` the order's earlier DTR answers gave: an answer filled, or a fact computed
   * from one that the record alone left unknown or read otherwise. Empty when the record alone decided.
   */
  answeredFacts: string[];
}

/**
 * One order's evaluation over its data: the chart alone, then, when it is not satisfied, with what the clinician
 * documented for this order in DTR (`prior`, CRD [resp-36]: take the previous decision into account) filling the facts
 * the chart still lacks; the chart wins wherever it speaks. The facts the answers decided are named
 * ({@link SigningEvaluation.answeredFacts}): they are the clinician's earlier answers, not what signing read from the
 * record, and a later response that corrects one is judged on the correction (docs/design.md §7 "Answers and the
 * record", review s41 F1).
 */
function evaluateOrder(
  policy: CompiledPolicy,
  data: EvaluationData,
  prior: AssertionRecord | undefined,
  evaluate: (answers: Record<string, FactValue>) => PolicyEvaluation,
): SigningEvaluation {
  const evaluation = evaluate({});
  if (!prior || evaluation.outcome === 'satisfied' || evaluation.outcome === 'error') return { evaluation, answeredFacts: [] };
  const unknown = new Set(evaluation.facts.filter((f) => f.source === 'unknown').map((f) => f.name));
  const answers = Object.fromEntries(
    Object.entries(prior.facts).filter(([name, v]) => unknown.has(name) && policy.factsByName.get(name)?.def.askable && isFactValue(v)),
  ) as Record<string, FactValue>;
  if (Object.keys(answers).length === 0) return { evaluation, answeredFacts: [] };
  const withAnswers = evaluate(answers);
  return { evaluation: withAnswers, answeredFacts: answeredFactsOf(evaluation, withAnswers) };
}

/**
 * The facts of `withAnswers` that the answers decided, compared with the record's own reading (`chart`): an answer,
 * or a fact read otherwise than the record alone read it. A fact read alike either way is the record's, whatever read it.
 */
export function answeredFactsOf(chart: PolicyEvaluation, withAnswers: PolicyEvaluation): string[] {
  const read = new Map(chart.facts.map((f) => [f.name, f.value]));
  return withAnswers.facts.filter((f) => f.value !== undefined && (f.source === 'answer' || read.get(f.name) !== f.value)).map((f) => f.name);
}

function isFactValue(v: unknown): v is FactValue {
  return typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string';
}
