import type { CompiledFact, CompiledPolicy, CompiledRule } from './compiled-policy.js';
import { policyStructure } from './policy-structure.js';
import { factClosure } from './fact-closure.js';
import { periodEnd } from './approval-period.js';
import type { ApprovalLength } from './approval-period.js';
import type { FactDefinition, FactType } from './policy-schema.js';
import type { MedicationRequest } from '@medplum/fhirtypes';
import { alternateOrder } from './alternate-order.js';
import { HeldValues } from '../fhir/fhirpath-compiler.js';

/** Three-valued truth: true, false, or unknown (FHIRPath's empty collection). */
export type Tri = true | false | 'unknown';

export type FactValue = boolean | number | string;

/** Where a fact's value came from: the EHR record, a DTR/PAS answer, or nowhere. */
export type FactSource = 'ehr' | 'answer' | 'unknown';

export interface FactResult {
  name: string;
  value?: FactValue;
  source: FactSource;
  error?: string;
}

export interface RuleResult {
  kind: CompiledRule['kind'];
  id: string;
  cite: string;
  text: string;
  result: Tri;
  /**
   * Limits only: whether the limit concerns this patient (false: it belongs to a covered use the patient is not on, and
   * its `true` result says nothing about the bound). True for a limit on every patient.
   */
  applies?: Tri;
  error?: string;
}

/** The row of design.md §5's determination table this evaluation falls in. */
export type Outcome = 'satisfied' | 'documentation-needed' | 'limit-exceeded' | 'not-covered' | 'error';

/**
 * What an alternate order changes to come within a limit (design.md §6 "Limits"): the dose at the limit's `propose`,
 * the dispense quantity at its `propose.quantity` (`value` in the UCUM `unit`), or the number of cycles
 * (`cyclesRequested`) that fits every limit on cycles. `limitIds` are the exceeded limits it
 * brings back within bounds.
 */
export interface Proposal {
  kind: 'dose' | 'cycles' | 'quantity';
  limitIds: string[];
  value: number;
  unit: string;
  display?: string;
  /**
   * A dose proposal's per-m² form (the limit's `propose.perM2`), for an order whose dose is written per m² of body
   * surface area; `value` above is then its flat equivalent at today's BSA (the per-m² form itself when the BSA is
   * unknown). Absent when the policy gives none or it is empty for this patient (e.g. 45 kg or more, where the
   * labelled dose is flat).
   */
  perM2?: { value: number; unit: string; display?: string };
}

/** Everything the policy said about one order, with a trace of every fact and criterion. */
export interface PolicyEvaluation {
  policyId: string;
  policyVersion: string;
  outcome: Outcome;
  facts: FactResult[];
  rules: RuleResult[];
  /**
   * The pathway that approved the order (outcome satisfied). `approvalFrom`: the date its approval is counted from
   * (the value of its `approval.from` fact, e.g. the first cycle of the course), when it has one and it is known; the
   * period then ends `approvalFrom` + the length, not the order's start + the length (authorization.ts `newApproval`).
   */
  pathway?: RuleResult & { approval?: CompiledRule['approval']; approvalFrom?: string };
  /** Askable facts whose answer would decide the order, in policy order. */
  missingFacts: string[];
  /** Rules that failed, for not-covered and limit-exceeded reasons. */
  failed: RuleResult[];
  proposals: Proposal[];
  /**
   * Where a drug was recognised by its name rather than a listed code (design.md §6 "Clinical readings"); the same
   * words are appended to the text of every rule that reads the fact, so reasons say when a name decided.
   */
  notes?: string[];
  /**
   * Limit exceeded with proposals: whether the order changed as proposed would be approved at signing: the alternate
   * order (alternate-order.ts), evaluated again, is satisfied. False when something is still unknown (the changed
   * order would still need documentation), so no card promises it is covered without review.
   */
  alternateApproved?: boolean;
  /**
   * Satisfied only: the limits the order is over that held on the prescriber's justification alone (a limit's
   * `justification`, e.g. Centene's "dose supported by practice guidelines", CP.PHAR.312 I.A.5.b, answered yes): the
   * approval's reason names each, so nobody reads an approval of 56 mcg/day as an order within 28 (review s42 F2).
   */
  justifiedLimits?: RuleResult[];
  /**
   * Answers of a QuestionnaireResponse that contradict what PriorPath read from the patient's record at signing, on
   * which alone the order would have been approved (docs/design.md §7 "Answers and the record"): the order is not
   * approved automatically but goes to clinical review (coverage/determination.ts). Set only by the evaluation of a
   * response (coverage/evaluate-response.ts), never at signing; the outcome is then not `satisfied`.
   */
  contradicted?: ChartContradiction[];
  /**
   * Answers of a QuestionnaireResponse that were not used because they cannot be true of a patient (factBounds: MRD
   * 150 %, a weight of 0 kg, a birth date after today): set by the evaluation of a response (coverage/evaluate-response.ts)
   * for the facts left unknown, so the determination names them and `$next-question` asks them again.
   */
  unusable?: UnusableAnswer[];
}

/** An answer that contradicts the value read from the record: the fact, the record's value and the answer. */
export interface ChartContradiction {
  fact: string;
  record: FactValue;
  answer: FactValue;
}

/** The hook data a fact expression reads as FHIRPath variables (see cds-services/README.md). */
export interface EvaluationData {
  order: unknown;
  patient?: unknown;
  coverage?: unknown;
  user?: unknown;
  conditions: unknown[];
  observations: unknown[];
  medications: unknown[];
  immunizations: unknown[];
  /**
   * `%requestOrdersBefore`: the other orders of the same request that come before this one (evaluation-data.ts
   * requestPlace: in the orders' own sequence, not the listing); empty, or absent, for an order judged alone.
   */
  requestOrdersBefore?: unknown[];
  /**
   * `%requestOrdersBeforeAny`: those orders whatever their status (requestOrdersBefore leaves out the ones under way,
   * which the record's facts count as given), for a limit per request that counts no cycles given; empty, or absent,
   * for an order judged alone.
   */
  requestOrdersBeforeAny?: unknown[];
  /** Diagnosis codes (CodeableConcepts): the order's reasons, else the patient's qualifying Conditions. */
  diagnoses: unknown[];
  /**
   * Whether `diagnoses` comes from the patient's whole problem list (CRD prefetch, EHR search: no diagnosis means none,
   * so a diagnosis fact is false) or from a partial source such as a PAS Bundle (no diagnosis means unknown: A4, never
   * A3). Read by facts as `%diagnosesComplete`; default true.
   */
  diagnosesComplete?: boolean;
  /** Planned start of the order, YYYY-MM-DD (design.md §6 "order date"). */
  orderDate: string;
  /**
   * `%orderStart`: the start the order states (evaluation-data.ts `statedStartOf`: planned start, else validity start,
   * never authoredOn), YYYY-MM-DD; absent when it states none. The recency windows end on it (docs/design.md §6
   * "Recency"); when it is absent they have no upper end. Equal to `orderDate` whenever present.
   */
  orderStart?: string;
  /**
   * Facts already evaluated over this data, shared by every policy evaluated over it (and by the same data at
   * another order date: copies made with `{ ...data, orderDate }` keep the memo). Without it nothing is shared.
   */
  memo?: FactMemo;
}

/** What one fact expression gave over one order's data: a plausible value, nothing (unknown), or an error. */
export interface FactRead {
  value?: FactValue;
  error?: string;
}

/**
 * Fact results by `CompiledFact.shareKey` over one order's data (`reads`; a dated fact's under its order date,
 * `readsOn`): a fact defined the same way in several policies (the shared fact library) is evaluated once per order,
 * not once per policy (design.md §9). `evaluated` counts the expressions actually run.
 */
export class FactMemo {
  readonly reads = new Map<string, FactRead>();
  /**
   * Dated facts' results by order date, then share key. Two maps, not one keyed `shareKey@orderDate`: that key was a new
   * string to hash on every read and write of every dated fact (most of them), a visible share of readFacts' own time.
   */
  readonly readsOn = new Map<string, Map<string, FactRead>>();
  evaluated = 0;

  /** The results of the dated facts at one order date. */
  on(orderDate: string): Map<string, FactRead> {
    let reads = this.readsOn.get(orderDate);
    if (!reads) this.readsOn.set(orderDate, (reads = new Map()));
    return reads;
  }
}

function coerce(type: FactType, values: unknown[]): FactValue | undefined {
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new Error(`expected at most one value, got ${values.length}`);
  const v = values[0];
  switch (type) {
    case 'boolean':
      if (typeof v !== 'boolean') throw new Error(`expected a boolean, got ${JSON.stringify(v)}`);
      return v;
    case 'decimal':
    case 'integer': {
      const n = typeof v === 'number' ? v : Number.NaN;
      if (!Number.isFinite(n)) throw new Error(`expected a number, got ${JSON.stringify(v)}`);
      if (type === 'integer' && !Number.isInteger(n)) throw new Error(`expected an integer, got ${n}`);
      return n;
    }
    case 'code':
    case 'string':
    case 'date':
      if (typeof v !== 'string') throw new Error(`expected a string, got ${JSON.stringify(v)}`);
      return v;
  }
}

/**
 * The values a fact can take for a patient (design.md §6 "How absence reads"): the one definition of what is possible,
 * which `plausible` applies to every value read or answered, the DTR Questionnaire states on its items (minValue and
 * maxValue: questionnaire-builder.ts) and the determination names when an answer falls outside it. A measured amount
 * (a number with a unit: dose, weight, height, BSA) is never negative, and never zero unless it is a percentage (MRD 0 %
 * is a result), which is never above 100. A count (an integer without a unit: cycles) is never negative. A date the
 * record states (birth date) is not after the order date or today (`notAfter: 'latest'`); an order's planned start not
 * after this order's date (`'order'`); a day the order plans after its start is not bounded. Undefined: any value.
 */
export interface FactBounds {
  /** The lowest possible value; with `minExcluded`, values above it only ("> 0"). */
  min?: number;
  minExcluded?: true;
  /** The highest possible value. */
  max?: number;
  /** A date: not after the earlier of the order date and today (`latest`), or not after this order's date (`order`). */
  notAfter?: 'latest' | 'order';
}

export type BoundedFact = Pick<FactDefinition, 'type' | 'unit'> & { dateOf?: 'record' | 'order' | 'plan'; min?: number };

export function factBounds(def: BoundedFact): FactBounds | undefined {
  if ((def.type === 'decimal' || def.type === 'integer') && def.unit) {
    // A percentage (MRD: the share of cells) is at most 100: 101 is a slip (0.101? 0.01?), not a result.
    if (def.unit === '%') return { min: 0, max: 100 };
    return { min: 0, minExcluded: true };
  }
  // A count of cycles or doses: 0 is a count (no cycle given yet), -1 is not. A count of what the request asks for
  // states its own least value (`min: 1`, cycles requested: a request for 0 cycles requests nothing).
  if (def.type === 'integer') return { min: def.min ?? 0 };
  // An order's planned start (dateOf: order) is routinely ahead of today: it is bounded by this order's date only. A day
  // the order plans after its start (dateOf: plan: the end of its cycles) is computed from it, not stated: unbounded.
  if (def.type === 'date' && def.dateOf === 'plan') return undefined;
  if (def.type === 'date') return { notAfter: def.dateOf === 'order' ? 'order' : 'latest' };
  return undefined;
}

/**
 * Whether a fact value can be true of a patient ({@link factBounds}). Anything else is treated as not known, so DTR
 * asks for it and no rule approves on it.
 */
export function plausible(def: BoundedFact, value: FactValue, latestDate: string, orderDate = latestDate): boolean {
  const b = factBounds(def);
  if (!b) return true;
  if (typeof value === 'number') {
    if (b.min !== undefined && (b.minExcluded ? value <= b.min : value < b.min)) return false;
    return b.max === undefined || value <= b.max;
  }
  if (b.notAfter && typeof value === 'string') return value.slice(0, 10) <= (b.notAfter === 'order' ? orderDate : latestDate);
  return true;
}

/** The date a date the record states can be at the latest: the order date or today, whichever is earlier. */
export function latestPlausibleDate(orderDate: string): string {
  return [orderDate, new Date().toISOString().slice(0, 10)].sort()[0];
}

/** An answer no rule reads because it cannot be true of a patient ({@link factBounds}): the fact and the answer. */
export interface UnusableAnswer {
  fact: string;
  answer: FactValue;
}

/**
 * The answers `readFacts` sets aside as implausible (out of {@link factBounds}), in policy order: the determination
 * names each instead of only asking again, and the adaptive form asks the question again (review s44 M1).
 */
export function unusableAnswers(policy: CompiledPolicy, answers: Record<string, FactValue>, orderDate: string): UnusableAnswer[] {
  const latest = latestPlausibleDate(orderDate);
  return policy.facts
    .filter((f) => Object.prototype.hasOwnProperty.call(answers, f.name) && !plausible(f.def, answers[f.name], latest, orderDate))
    .map((f) => ({ fact: f.name, answer: answers[f.name] }));
}

function tri(values: unknown[]): Tri {
  if (values.length === 0) return 'unknown';
  if (values.length === 1 && typeof values[0] === 'boolean') return values[0];
  throw new Error(`a criterion must give true, false or nothing; got ${JSON.stringify(values)}`);
}

/**
 * The rules still undecided in an evaluation: every unknown requirement and limit, and the unknown pathways only while
 * none holds (once one does, the others' answers decide nothing: design.md §6 "Questions are asked only of the
 * patients they concern"). What DTR asks and what the reason cites as left to document.
 */
export function undecidedRules(rules: RuleResult[]): RuleResult[] {
  const pathwayHolds = rules.some((r) => r.kind === 'pathway' && r.result === true);
  return rules.filter((r) => r.result === 'unknown' && !(pathwayHolds && r.kind === 'pathway'));
}

/**
 * Evaluates one policy for one order (design.md §5, "One model, three uses"). `answers` are facts supplied by a
 * QuestionnaireResponse (DTR/PAS), or at signing the order's earlier DTR answers for what the record leaves unknown
 * (coverage/decide-orders.ts). An answer given stands for its fact here and facts derived from it are recomputed,
 * except a fact of the order (`readsOrder`) that the order states: the order's value stands. Which answers are given,
 * and when one contradicting the record is reviewed instead, is the callers' (docs/design.md §7 "Answers and the
 * record"). Never throws for data problems: a failing fact or rule makes the outcome `error`, which the caller
 * turns into `conditional`/`indeterminate`, never a positive assertion (design.md §4 "Errors").
 */
export function evaluatePolicy(
  policy: CompiledPolicy,
  data: EvaluationData,
  answers: Record<string, FactValue> = {},
): PolicyEvaluation {
  return evaluate(policy, data, answers, false);
}

/**
 * {@link evaluatePolicy}, or, with `alternate`, the judgement of an alternate order (`data.order` changed as proposed):
 * its facts of the order are read afresh from it (never from the memo, which holds the order as sent), and no
 * proposal of its own is made, since only its outcome is wanted (design.md §6 "Limits").
 */
function evaluate(policy: CompiledPolicy, data: EvaluationData, answers: Record<string, FactValue>, alternate: boolean): PolicyEvaluation {
  const { factValues, facts, broken: factsBroken } = readFacts(policy, data, answers, undefined, undefined, alternate);
  let broken = factsBroken;

  const nameNotes = namesThatDecided(policy, data, factValues);
  const requestNotes = requestCounts(policy, data, factValues);
  const run = (r: CompiledRule): RuleResult => {
    // Nearly every order's drugs are coded: with no name deciding, no rule's text changes (no closure walked).
    const named = nameNotes.size === 0 ? NO_NOTES : ruleClosure(policy, r.facts).flatMap((f) => nameNotes.get(f) ?? []);
    // A count of the request's other orders a rule reads is named in its text (design.md §6 "Cycles"): the clinician
    // and the reviewer see that the orders signed or claimed with this one brought it over the course.
    const notes = requestNotes.size === 0 ? named : [...named, ...r.facts.flatMap((f) => requestNotes.get(f) ?? [])];
    let text = notes.length > 0 ? `${r.text} [${[...new Set(notes)].join('; ')}]` : r.text;
    // Each result is written out as one literal: an object made by spreading another and adding a property gets a
    // hidden class of its own in V8 (Node 20), allocated in the old generation, about 40 per policy evaluation and
    // kept for as long as the evaluation cache keeps the result (README "Memory").
    const applies = r.kind === 'limit' ? limitApplies(policy, r, factValues, data.orderDate) : undefined;
    const outcome = ruleOutcome(r, factValues);
    if (outcome.error !== undefined) broken = true;
    const result: Tri = outcome.error === undefined ? outcome.result : 'unknown';
    // An exceeded limit that names facts (`names`) says what the record showed, e.g. the relapse date and the phase the
    // order states, so the reviewer and the card read the conflict itself, not only the rule (design.md §6).
    if (r.names && result === false) {
      const shown = r.names.filter((n) => factValues[n.fact] !== undefined).map((n) => `${n.words} ${String(factValues[n.fact])}`);
      if (shown.length > 0) text = `${text} [${shown.join('; ')}]`;
    }
    if (applies === undefined) {
      return outcome.error === undefined ? { kind: r.kind, id: r.id, cite: r.cite, text, result } : { kind: r.kind, id: r.id, cite: r.cite, text, result, error: outcome.error };
    }
    return outcome.error === undefined
      ? { kind: r.kind, id: r.id, cite: r.cite, text, applies, result }
      : { kind: r.kind, id: r.id, cite: r.cite, text, applies, result, error: outcome.error };
  };
  const requirements = policy.requirements.map(run);
  const pathways = policy.pathways.map(run);
  const limits = policy.limits.map(run);
  // A pathway whose approval runs from a date (`approval.from`: e.g. a course's initial authorization, counted from the
  // course's first cycle) approves only an order that starts before that authorization ends: the first pathway that
  // holds and whose authorization is not over approves. When every pathway that holds has ended its authorization
  // before the order's start, the order is outside it: a limit exceeded (design.md §5 row 3; clinical review, where a
  // renewal is judged), never an approval ending before it starts, and never a denial.
  // The first pathway that holds and is not over approves, counted from its `approval.from` date. While that date is
  // unknown (e.g. the indication the earlier course was given for, on which the course's start depends), the period
  // cannot be placed: the order is documentation needed, the date's questions asked, never approved with a period
  // counted from the order, which would give a later cycle a fresh authorization (design.md §6 "Cycles"; acceptance
  // review s47 H).
  const holding = pathways.filter((p) => p.result === true);
  const firstOpen = holding.find((p) => !approvalEnded(approvalWindow(policy, p.id, factValues, data.orderDate)));
  const unplacedFrom = firstOpen === undefined ? undefined : unknownApprovalFrom(policy, firstOpen.id, factValues);
  const approvingNow = unplacedFrom === undefined ? firstOpen : undefined;
  const endedWindow = firstOpen === undefined && holding.length > 0 ? approvalWindow(policy, holding[0].id, factValues, data.orderDate) : undefined;
  const periodLimit: RuleResult | undefined = endedWindow && {
    kind: 'limit',
    id: `${holding[0].id}-initial-period`,
    cite: holding[0].cite,
    applies: true,
    text: `The authorization of this use lasts ${lengthText(endedWindow.length)} from the first cycle of the course (${endedWindow.from} to ${endedWindow.end}); ${
      endedWindow.end < data.orderDate ? `the order starts on ${data.orderDate}, after it ended` : `the order's cycle starts on ${data.orderDate} and runs to ${endedWindow.needs}, after it ends`
    }`,
    result: false,
  };
  if (periodLimit) limits.push(periodLimit);
  const startLimit: RuleResult | undefined = firstOpen && unplacedFrom && {
    kind: 'limit',
    id: `${firstOpen.id}-course-start`,
    cite: firstOpen.cite,
    applies: true,
    text: `The authorization of this use lasts ${lengthText(unplacedFrom.length)} from the first cycle of the course; where that course began (or the indication it was given for) must be known`,
    result: 'unknown',
  };
  if (startLimit) limits.push(startLimit);
  // A pathway's `cycles` is what one approval covers: when the pathway that would approve is asked for more cycles
  // (cyclesRequested), that is a limit exceeded (design.md §5 row 3), not an approval of the whole request.
  const approvingRule = firstOpen && policy.pathways.find((r) => r.id === firstOpen.id);
  const requested = factValues.cyclesRequested;
  if (approvingRule?.cycles !== undefined && typeof requested === 'number' && requested > approvingRule.cycles) {
    limits.push({
      kind: 'limit',
      id: `${approvingRule.id}-cycles`,
      cite: approvingRule.cite,
      applies: true,
      text: `One approval of this use covers at most ${approvingRule.cycles} cycle${approvingRule.cycles === 1 ? '' : 's'}; the order asks for ${requested}`,
      result: false,
    });
  }
  const rules = [...requirements, ...pathways, ...limits];

  const allNotes = nameNotes.size === 0 ? NO_NOTES : [...new Set([...nameNotes.values()].flat())];
  // Written field by field, not `{ ...base, outcome }`: see the rule results above.
  const result = (outcome: Outcome, missingFacts: string[], failed: RuleResult[], proposals: Proposal[] = []): PolicyEvaluation => {
    const e: PolicyEvaluation = { policyId: policy.file.id, policyVersion: policy.file.version, facts, rules, proposals, outcome, missingFacts, failed };
    if (allNotes.length > 0) e.notes = allNotes;
    return e;
  };
  if (broken) return result('error', [], rules.filter((r) => r.error));

  const failedRequirements = requirements.filter((r) => r.result === false);
  const allPathwaysFalse = pathways.every((p) => p.result === false);
  if (failedRequirements.length > 0 || allPathwaysFalse) {
    return result('not-covered', [], failedRequirements.length > 0 ? failedRequirements : pathways);
  }

  const exceeded = limits.filter((l) => l.result === false);
  if (exceeded.length > 0 && alternate) return result('limit-exceeded', [], exceeded);
  if (exceeded.length > 0) {
    const proposals: Proposal[] = [];
    for (const l of exceeded) {
      const rule = policy.limits.find((r) => r.id === l.id);
      if (!rule?.propose) continue;
      const v = safeNumber(() => rule.propose!.value(factValues, {}));
      const perM2 = rule.propose.perM2;
      const m2 = perM2 ? safeNumber(() => perM2.value(factValues, {})) : undefined;
      // An order written per m² can be proposed per m² without today's BSA (a Besponsa cycle in mg/m² with no BSA on
      // record): the per-m² form then stands for the proposal alone.
      if (v === undefined && (m2 === undefined || !perM2)) continue;
      const flat = v !== undefined ? { value: v, unit: rule.propose.unit, display: rule.propose.display } : { value: m2!, unit: perM2!.unit, display: perM2!.display };
      const proposal: Proposal = {
        kind: 'dose',
        limitIds: [l.id],
        ...flat,
        ...(perM2 && m2 !== undefined ? { perM2: { value: m2, unit: perM2.unit, display: perM2.display } } : {}),
      };
      // Several dose limits can each propose (the daily cap beside a regimen's per-m² dose): the alternate order must
      // come within every one (design.md §6 "Limits": the highest dose within every limit), so one dose proposal
      // stands for them all, the lowest of a unit.
      const same = proposals.findIndex((p) => p.kind === 'dose' && p.unit === proposal.unit);
      if (same < 0) proposals.push(proposal);
      else {
        const limitIds = [...proposals[same].limitIds, l.id];
        proposals[same] = proposal.value < proposals[same].value ? { ...proposal, limitIds } : { ...proposals[same], limitIds };
      }
    }
    const quantity = quantityProposal(policy, data, exceeded, factValues);
    if (quantity) proposals.push(quantity);
    const onCycles = cycleLimitIds(policy, exceeded, approvingRule);
    const cycles = onCycles.length > 0 ? cyclesWithinLimits(policy, data, answers, onCycles, requested, approvingRule) : undefined;
    if (cycles) proposals.push(cycles);
    // The alternate order must come within every limit of the policy (design.md §6 "Limits"), not only the ones each
    // proposal names: it is written with every change the proposals make (alternate-order.ts, the order the card
    // offers) and judged again as a whole. A change can bring another limit within bounds (a lower Besponsa day-1 dose
    // lowers the cycle's total too), or leave one exceeded that nothing proposes (a first week above the step dose, a
    // course already complete, more than 28 days of infusion, an authorization that ended before the order starts):
    // then nothing is offered. Only an alternate the rules would approve is "covered without review"; one still
    // needing documentation is offered as such.
    const judged = proposals.length > 0 ? alternateOutcome(policy, data, answers, proposals) : undefined;
    if (judged !== 'satisfied' && judged !== 'documentation-needed') proposals.length = 0;
    const alternateApproved = judged === 'satisfied';
    // DTR asks what could lift the limit (its unknown facts, e.g. a guideline-support attestation) and whatever is
    // still undecided elsewhere.
    // When what is exceeded is the approving pathway's own cycles, an undecided pathway that would cover the cycles
    // asked for can still change the outcome (e.g. Centene's MRD-positive course of 4 beside Ph-negative consolidation's
    // 1 when the remission is not on record): its facts are asked too, though a pathway already holds.
    const widerPathways =
      approvingRule?.cycles !== undefined && exceeded.some((l) => l.id === `${approvingRule.id}-cycles`)
        ? pathways.filter((p) => p.result === 'unknown' && coversCycles(policy, p.id, requested))
        : [];
    const e = result('limit-exceeded', missingFor(policy, [...exceeded, ...undecidedRules(rules), ...widerPathways], factValues, data.orderDate, unplacedFrom && [unplacedFrom.fact]), exceeded, proposals);
    e.alternateApproved = alternateApproved;
    return e;
  }

  const approving = approvingNow;
  const unknownRequirements = requirements.filter((r) => r.result === 'unknown');
  const unknownLimits = limits.filter((r) => r.result === 'unknown');
  if (approving && unknownRequirements.length === 0 && unknownLimits.length === 0) {
    const rule = policy.pathways.find((r) => r.id === approving.id);
    const e = result('satisfied', [], []);
    const justified = justifiedLimits(policy, limits, factValues, answers);
    if (justified.length > 0) e.justifiedLimits = justified;
    const window = approvalWindow(policy, approving.id, factValues, data.orderDate);
    e.pathway = window ? Object.assign({}, approving, { approval: rule?.approval, approvalFrom: window.from }) : Object.assign({}, approving, { approval: rule?.approval });
    return e;
  }

  return result('documentation-needed', missingFor(policy, undecidedRules(rules), factValues, data.orderDate, unplacedFrom && [unplacedFrom.fact]), []);
}

/**
 * The authorization a pathway whose approval runs from a date (`approval.from`) gives: from that date to its end
 * (`periodEnd`, the last day covered), and `needs`, the last day the order needs covered: the date of its
 * `approval.covers` fact (the end of the cycle's infusion) when known and later than its start, else its start.
 * Undefined when the pathway has no `from` or the date is unknown: the period is then counted from the order's start,
 * as for any other pathway.
 */
function approvalWindow(
  policy: CompiledPolicy,
  id: string,
  factValues: Record<string, FactValue>,
  orderDate: string,
): { from: string; end: string; needs: string; length: ApprovalLength } | undefined {
  const length = policy.pathways.find((r) => r.id === id)?.approval;
  const value = length?.from === undefined ? undefined : factValues[length.from];
  if (!length || typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(value)) return undefined;
  const from = value.slice(0, 10);
  const end = periodEnd(from, length);
  const covers = length.covers === undefined ? undefined : factValues[length.covers];
  const needs = typeof covers === 'string' && /^\d{4}-\d{2}-\d{2}/.test(covers) && covers.slice(0, 10) > orderDate ? covers.slice(0, 10) : orderDate;
  // `afterEnd: order`: a period the seed does not state (the policy's own reading of a course's length) caps a later
  // cycle's approval while the course's window lasts, but an order it does not cover (past it, or whose cycle runs past
  // it) is counted from its own start, not reviewed, and not approved for a period ending mid-cycle.
  if (length.afterEnd === 'order' && end < needs) return undefined;
  return { from, end, needs, length };
}

/**
 * The pathway's `approval.from` date fact and length when it has one whose value is unknown (not a date) and the seed
 * sets the period (no `afterEnd: order`): the period cannot be placed, so the pathway does not approve yet (design.md §6 "Cycles": a course's initial authorization runs
 * from its first cycle, never counted from this order's date while that start is unknown). Undefined otherwise.
 */
function unknownApprovalFrom(
  policy: CompiledPolicy,
  id: string,
  factValues: Record<string, FactValue>,
): { fact: string; length: ApprovalLength } | undefined {
  const length = policy.pathways.find((r) => r.id === id)?.approval;
  // `afterEnd: order`: the length is the policy's own reading of a course whose seed states no period (BCBSNC), and an
  // order its window does not cover is approved for the length from its own start: a start not known is no more a
  // reason to hold the order than one whose window has ended (the course's cycle limits still count the course).
  if (length?.from === undefined || length.afterEnd === 'order') return undefined;
  const value = factValues[length.from];
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? undefined : { fact: length.from, length };
}

/**
 * Whether an authorization counted from a date does not cover the order: it ended before the order starts, or before
 * the last day the order needs covered (pharmacist review s41: an approval ending on day 8 of a 28-day infusion).
 */
function approvalEnded(window: { end: string; needs: string } | undefined): boolean {
  return window !== undefined && window.end < window.needs;
}

/** An approval length in words: "30 weeks", "6 months", "1 day". */
function lengthText(d: ApprovalLength): string {
  const [n, unit] = d.months ? [d.months, 'month'] : d.weeks ? [d.weeks, 'week'] : [d.days ?? 0, 'day'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** Whether the pathway `id`, were it to hold, would cover `requested` cycles in one approval (no cap, or a cap as large). */
function coversCycles(policy: CompiledPolicy, id: string, requested: FactValue | undefined): boolean {
  const rule = policy.pathways.find((r) => r.id === id);
  return typeof requested === 'number' && rule !== undefined && (rule.cycles === undefined || rule.cycles >= requested);
}

/** The exceeded limits on cycles: a limit reading `cyclesRequested`, and the approving pathway's own `cycles`. */
function cycleLimitIds(policy: CompiledPolicy, exceeded: RuleResult[], pathway: { id: string; cycles?: number } | undefined): string[] {
  const pathwayLimit = pathway?.cycles !== undefined ? `${pathway.id}-cycles` : undefined;
  return exceeded
    .filter((l) => {
      if (l.id === pathwayLimit) return true;
      const rule = policy.limits.find((r) => r.id === l.id);
      return rule !== undefined && ruleClosure(policy, rule.facts).includes('cyclesRequested');
    })
    .map((l) => l.id);
}

/**
 * The most cycles, fewer than the order asks for, that bring every exceeded limit on cycles (`limitIds`) back within
 * bounds, each limit read again with `cyclesRequested` answered as that number; undefined when not even one cycle
 * fits (a course already complete).
 */
function cyclesWithinLimits(
  policy: CompiledPolicy,
  data: EvaluationData,
  answers: Record<string, FactValue>,
  limitIds: string[],
  requested: FactValue | undefined,
  pathway: { cycles?: number } | undefined,
): Proposal | undefined {
  if (typeof requested !== 'number' || requested <= 1) return undefined;
  const rules = policy.limits.filter((r) => limitIds.includes(r.id));
  const only = new Set(ruleClosure(policy, rules.flatMap((r) => r.facts)));
  for (let k = Math.min(requested - 1, pathway?.cycles ?? Infinity); k >= 1; k--) {
    // The order changed as proposed: its cycles are the proposal's, not the order's as sent.
    const { factValues, broken } = readFacts(policy, data, { ...answers, cyclesRequested: k }, only, PROPOSED_CYCLES);
    if (broken) return undefined;
    if (rules.every((r) => ruleOutcome(r, factValues).result === true)) {
      return { kind: 'cycles', limitIds, value: k, unit: '{cycle}', display: k === 1 ? 'cycle' : 'cycles' };
    }
  }
  return undefined;
}

/**
 * The FHIRPath variables a policy's fact expressions run with (cds-services/README.md "Facts"): the order's
 * evaluation data, `%orderDateTime`, `%orderStart` (empty when the order states no start), `%policyDrug`, and
 * `%diagnosesComplete` (true unless the data says otherwise).
 * Each fact's value is added under its name as it is read.
 */
export function factEnvironment(policy: CompiledPolicy, data: EvaluationData): Record<string, unknown> {
  const { memo: _memo, ...vars } = data;
  // Object.assign, not `{ ...vars, … }`: readFacts adds every fact to this object, and in V8 (Node 20) each property
  // added to an object made by a spread gives that object a hidden class of its own, allocated in the old generation
  // (about 50 a policy evaluation; README "Memory"). EvaluationData is built by our code, so no key is `__proto__`.
  return Object.assign({}, vars, {
    requestOrdersBefore: data.requestOrdersBefore ?? [],
    requestOrdersBeforeAny: data.requestOrdersBeforeAny ?? [],
    diagnosesComplete: data.diagnosesComplete ?? true,
    orderDateTime: `${data.orderDate}T00:00:00Z`,
    // Empty when the order states no start: `recent()` then has no upper end.
    orderStart: data.orderStart ?? [],
    policyDrug: policy.file.drug,
  });
}

/**
 * The order's dispense quantity at its amount limit (design.md §4 Propose Alternate Request "a dose or quantity exceeds
 * the policy", §6 "Limits"): the lowest `propose.quantity` of the exceeded limits that state one. Undefined when no
 * exceeded limit proposes a quantity, their units differ, or the order states no dispense quantity (its amount is then
 * read from its dose, which a dose proposal lowers). Whether the order at that quantity is within them, and within
 * every other limit, is judged on the whole alternate order (`alternateOutcome`).
 */
function quantityProposal(policy: CompiledPolicy, data: EvaluationData, exceeded: RuleResult[], factValues: Record<string, FactValue>): Proposal | undefined {
  const rules = policy.limits.filter((r) => r.proposeQuantity && exceeded.some((l) => l.id === r.id));
  const order = data.order as { dispenseRequest?: { quantity?: unknown } } | undefined;
  if (rules.length === 0 || !order?.dispenseRequest?.quantity) return undefined;
  const unit = rules[0].proposeQuantity!.unit;
  if (rules.some((r) => r.proposeQuantity!.unit !== unit)) return undefined;
  let lowest: { value: number; display?: string } | undefined;
  for (const r of rules) {
    const value = safeNumber(() => r.proposeQuantity!.value(factValues, {}));
    if (value === undefined || value <= 0) return undefined;
    if (!lowest || value < lowest.value) lowest = { value, display: r.proposeQuantity!.display };
  }
  const { value, display } = lowest!;
  return { kind: 'quantity', limitIds: rules.map((r) => r.id), value, unit, ...(display ? { display } : {}) };
}

/**
 * The outcome of the order changed as every proposal says (alternate-order.ts `alternateOrder`, the very order the
 * Propose Alternate Request card offers), judged against the whole policy with the order's facts read from it:
 * undefined when the proposals cannot be written into the order (no dose to change, a per-m² dose with no BSA for an
 * order in mg). The record's facts are the same order's, so they come from the memo; the compiled expressions are
 * run again, nothing is parsed.
 */
function alternateOutcome(policy: CompiledPolicy, data: EvaluationData, answers: Record<string, FactValue>, proposals: Proposal[]): Outcome | undefined {
  const order = data.order as MedicationRequest | undefined;
  if (order?.resourceType !== 'MedicationRequest') return undefined;
  const alternate = alternateOrder(order, proposals);
  return alternate && evaluate(policy, { ...data, order: alternate.order }, answers, true).outcome;
}

/** The facts of the order a cycles proposal changes (cyclesWithinLimits). */
const PROPOSED_CYCLES: ReadonlySet<string> = new Set(['cyclesRequested']);

/**
 * Reads the policy's facts over the data, in dependency order (answers first, then the memo, then the expression);
 * `only` limits it to those facts (a closure: every fact's dependencies included).
 */
function readFacts(
  policy: CompiledPolicy,
  data: EvaluationData,
  answers: Record<string, FactValue>,
  only?: Set<string>,
  /** Facts of the order given in `answers` as an alternate order would state them: they stand over the order's. */
  proposed?: ReadonlySet<string>,
  /**
   * `data.order` is an alternate order, not the order the memo was read over: the facts of the order (and those read
   * from them) are read afresh, the record's still shared.
   */
  orderChanged = false,
): { factValues: Record<string, FactValue>; facts: FactResult[]; broken: boolean } {
  const env = factEnvironment(policy, data);
  // Sub-expressions several facts contain are evaluated once over this env (each fact's value is added to it once,
  // before any fact that reads it runs: what HeldValues needs to be exact).
  const held = new HeldValues(data.order, env);
  const factValues: Record<string, FactValue> = {};
  const facts: FactResult[] = [];
  let broken = false;

  const latestDate = latestPlausibleDate(data.orderDate);
  const datedReads = data.memo?.on(data.orderDate);
  // Facts that are answered, or read an answered fact, have values of their own in this evaluation: never shared.
  const fromAnswers = new Set<string>();
  for (const f of policy.facts) {
    if (only && !only.has(f.name)) continue;
    if (Object.prototype.hasOwnProperty.call(answers, f.name) && plausible(f.def, answers[f.name], latestDate, data.orderDate)) {
      // A fact of the order (the cycles, the dose, the phase) that the order states is the order's: an answer fills it
      // only where the order says nothing (docs/design.md §7 "Answers and the record"). A form saying "2 cycles" does
      // not make a 10-cycle order a 2-cycle one (review s40 F11). Read only for answered order facts a form asks, so an
      // evaluation without answers (nearly every signing: only an order carrying its DTR determination, with facts the
      // record leaves unknown, gives any) does no more work; a derived one given as an answer is CRD's reading of the order.
      if (f.readsOrder && f.def.askable && !proposed?.has(f.name)) {
        const stated = readFact(f, data, env, latestDate, held);
        if (stated.error === undefined && stated.value !== undefined) {
          factValues[f.name] = stated.value;
          env[f.name] = stated.value;
          facts.push({ name: f.name, value: stated.value, source: 'ehr' });
          fromAnswers.add(f.name);
          continue;
        }
      }
      const value = answers[f.name];
      factValues[f.name] = value;
      env[f.name] = value;
      facts.push({ name: f.name, value, source: 'answer' });
      fromAnswers.add(f.name);
      continue;
    }
    const shared = data.memo !== undefined && !(orderChanged && f.readsOrder) && (fromAnswers.size === 0 || !f.deps.some((d) => fromAnswers.has(d)));
    if (!shared) fromAnswers.add(f.name);
    const reads = f.dated ? datedReads! : data.memo?.reads;
    let read = shared ? reads!.get(f.shareKey) : undefined;
    if (read === undefined && f.pureOf) {
      // Computed from facts alone: the same input values give the same value, whichever patient they belong to.
      // By share key, then by the input values: a key made of the share key (the fact's whole FHIRPath text) and the
      // values was a new string of hundreds of characters to hash on every read.
      let byValues = pureReads.get(f.shareKey);
      if (!byValues) pureReads.set(f.shareKey, (byValues = new Map()));
      const valuesAt = valuesKey(f.pureOf, env, undefined);
      read = byValues.get(valuesAt);
      if (read === undefined) {
        if (++pureEntries > PURE_MEMO_ENTRIES) {
          pureReads.clear();
          pureEntries = 1;
          pureReads.set(f.shareKey, byValues);
          byValues.clear();
        }
        byValues.set(valuesAt, (read = readFact(f, data, env, latestDate, held)));
      }
    }
    if (read === undefined) {
      read = readFact(f, data, env, latestDate, held);
      if (shared) {
        data.memo!.evaluated++;
        reads!.set(f.shareKey, read);
      }
    }
    if (read.error !== undefined) {
      broken = true;
      env[f.name] = [];
      facts.push({ name: f.name, source: 'unknown', error: read.error });
    } else if (read.value === undefined) {
      env[f.name] = [];
      facts.push({ name: f.name, source: 'unknown' });
    } else {
      factValues[f.name] = read.value;
      env[f.name] = read.value;
      facts.push({ name: f.name, value: read.value, source: 'ehr' });
    }
  }
  return { factValues, facts, broken };
}

/**
 * The results of some of a policy's rules, reading only the facts they need (with no answers): what the later-start
 * search asks at each date. `error` when one of those facts or rules fails, as the whole evaluation would.
 */
export function evaluateRules(policy: CompiledPolicy, data: EvaluationData, rules: CompiledRule[]): Tri[] | 'error' {
  const { factValues, broken } = readFacts(policy, data, {}, new Set(ruleClosure(policy, rules.flatMap((r) => r.facts))));
  if (broken) return 'error';
  const results: Tri[] = [];
  for (const r of rules) {
    const outcome = ruleOutcome(r, factValues);
    if (outcome.error !== undefined) return 'error';
    results.push(outcome.result);
  }
  return results;
}

/** Entries kept per memo below; past it the memo starts again (a bound, not an eviction policy). */
const PURE_MEMO_ENTRIES = 4096;
/** Values of facts computed from facts alone, by share key and input values (`CompiledFact.pureOf`). */
const pureReads = new Map<string, Map<string, FactRead>>();
/** The values pureReads holds in all (at most PURE_MEMO_ENTRIES; all are dropped past it). */
let pureEntries = 0;
/** Rule results by the values of the facts the rule reads: a rule is a function of those values alone. */
const ruleOutcomes = new WeakMap<CompiledRule, Map<string, { result: Tri; error?: undefined } | { result?: undefined; error: string }>>();

function remember<V>(memo: Map<string, V>, key: string, value: V): void {
  if (memo.size >= PURE_MEMO_ENTRIES) memo.clear();
  memo.set(key, value);
}

/** One FHIRPath variable value's part of a key (a fact value, `[]` for unknown, a string): equal parts, equal values. */
function valueKey(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? 'n-0' : `n${v}`;
  if (typeof v === 'boolean') return v ? 'T' : 'F';
  if (typeof v === 'string') return JSON.stringify(v);
  return Array.isArray(v) && v.length === 0 ? '{}' : `j${JSON.stringify(v)}`;
}

/**
 * A key for the values of the named variables, `absent` standing for one `values` does not have: the parts joined by
 * commas, built in one pass, with no array of values or of parts (a key is made for every rule and computed fact of
 * every evaluation).
 */
function valuesKey(names: readonly string[], values: Record<string, unknown>, absent: unknown): string {
  let key = '';
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    if (i > 0) key += ',';
    key += valueKey(Object.prototype.hasOwnProperty.call(values, n) ? values[n] : absent);
  }
  return key;
}
const EMPTY: readonly unknown[] = [];
const NO_NOTES: string[] = [];

/** A rule's result over the fact values (or the error it throws), remembered by the values it reads. */
const justificationFactsByPolicy = new WeakMap<CompiledPolicy, Map<string, string[]>>();

/**
 * The limits that hold only because a justification fact (policy-structure.ts `justifications`: an attestation read
 * by that limit alone) was answered yes: with that answer put to no, the limit is exceeded. Limits without a
 * justification, or with no such answer, cost a map lookup.
 */
function justifiedLimits(policy: CompiledPolicy, limits: RuleResult[], factValues: Record<string, FactValue>, answers: Record<string, FactValue>): RuleResult[] {
  let byLimit = justificationFactsByPolicy.get(policy);
  if (!byLimit) justificationFactsByPolicy.set(policy, (byLimit = new Map(policyStructure(policy).justifications.map((j) => [j.limit.id, j.facts]))));
  const out: RuleResult[] = [];
  for (const l of limits) {
    const facts = l.result === true ? byLimit.get(l.id)?.filter((f) => answers[f] === true) : undefined;
    if (!facts || facts.length === 0) continue;
    const rule = policy.limits.find((r) => r.id === l.id)!;
    const without = { ...factValues, ...Object.fromEntries(facts.map((f) => [f, false])) };
    if (ruleOutcome(rule, without).result === false) out.push(l);
  }
  return out;
}

function ruleOutcome(r: CompiledRule, factValues: Record<string, FactValue>): { result: Tri; error?: undefined } | { result?: undefined; error: string } {
  let memo = ruleOutcomes.get(r);
  if (!memo) ruleOutcomes.set(r, (memo = new Map()));
  const key = valuesKey(r.facts, factValues, EMPTY);
  let outcome = memo.get(key);
  if (outcome === undefined) {
    try {
      outcome = { result: tri(r.when(factValues, {})) };
    } catch (err) {
      outcome = { error: (err as Error).message };
    }
    remember(memo, key, outcome);
  }
  return outcome;
}

/**
 * Whether a limit concerns the patient (CompiledRule.applies). A condition left empty only by facts whose question
 * does not arise for this patient (`askWhen` false: e.g. the indication of an earlier course, on a first request) does
 * not apply: those facts have no value because there is nothing to know, not because it is unknown. A condition that
 * cannot be read is not known.
 */
function limitApplies(policy: CompiledPolicy, r: CompiledRule, factValues: Record<string, FactValue>, orderDate: string): Tri {
  if (!r.applies) return true;
  try {
    const values = r.applies(factValues, {});
    if (values.length === 1 && typeof values[0] === 'boolean') return values[0];
    if (values.length > 0) return 'unknown';
    const empty = (r.appliesFacts ?? []).filter((f) => !Object.prototype.hasOwnProperty.call(factValues, f));
    const doesNotArise = (f: string) => askWhenFalse(policy.factsByName.get(f)?.askWhen, factValues, orderDate);
    return empty.length > 0 && empty.every(doesNotArise) ? false : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Runs one fact's expression: its value when plausible, nothing when unknown, or the error it threw. */
function readFact(f: CompiledFact, data: EvaluationData, env: Record<string, unknown>, latestDate: string, held: HeldValues): FactRead {
  try {
    const read = coerce(f.def.type, f.expr(data.order, env, held));
    return read !== undefined && plausible(f.def, read, latestDate, data.orderDate) ? { value: read } : {};
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/**
 * Per known fact that counts the request's other orders (its expression reads `%requestOrdersBefore` or
 * `%requestOrdersBeforeAny`, or it is a number computed from such a count: requestCyclesBeforeThisPhase selects the
 * count of its phase, design.md §7 "One record of what CRD knew") and is above
 * zero: its label and value, for the text of the rules that read it. None for an order judged alone.
 */
function requestCounts(policy: CompiledPolicy, data: EvaluationData, known: Record<string, FactValue>): Map<string, string> {
  const out = new Map<string, string>();
  if (!data.requestOrdersBefore?.length && !data.requestOrdersBeforeAny?.length) return out;
  const counts = new Map<string, boolean>();
  const countsRequest = (name: string): boolean => {
    const f = policy.factsByName.get(name);
    if (!f || typeof f.def.fhirpath !== 'string') return false;
    let c = counts.get(name);
    if (c === undefined) {
      counts.set(name, false);
      c = f.def.fhirpath.includes('%requestOrdersBefore') || ((f.def.type === 'integer' || f.def.type === 'decimal') && f.deps.some(countsRequest));
      counts.set(name, c);
    }
    return c;
  };
  for (const f of policy.facts) {
    const v = known[f.name];
    if (typeof v === 'number' && v > 0 && countsRequest(f.name)) {
      out.set(f.name, `${f.def.label ?? f.name}: ${v}`);
    }
  }
  return out;
}

const NAME_MATCH_STATUSES = new Set(['active', 'draft', 'on-hold', 'completed']);

/** Per known fact over a name-matching drug set: the orders it counted by name only. */
function namesThatDecided(policy: CompiledPolicy, data: EvaluationData, known: Record<string, FactValue>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  // The orders a name can match are picked once, not per fact, and a fact's notes are made only when a name decided:
  // three arrays per name-matching fact per evaluation were about 2.5 % of what an order-sign allocates (2026-12-07).
  let matchable: unknown[] | undefined;
  for (const f of policy.facts) {
    if (!f.nameOnly || !Object.prototype.hasOwnProperty.call(known, f.name)) continue;
    matchable ??= data.medications.filter((m) => NAME_MATCH_STATUSES.has(String((m as { status?: string }).status)));
    let notes: string[] | undefined;
    for (const m of matchable) {
      const n = f.nameOnly(m);
      if (n !== undefined) (notes ??= []).push(n);
    }
    if (notes) out.set(f.name, notes);
  }
  return out;
}

const closureCache = new WeakMap<CompiledPolicy, Map<string, string[]>>();
/** The facts a rule (or any expression) reads, with the facts those are computed from; cached per policy. */
export function ruleClosure(policy: CompiledPolicy, names: string[]): string[] {
  let cache = closureCache.get(policy);
  if (!cache) closureCache.set(policy, (cache = new Map()));
  const key = names.join(',');
  const hit = cache.get(key);
  if (hit) return hit;
  const out = factClosure(policy.factsByName, names);
  cache.set(key, out);
  return out;
}

/** Whether a rule's result can change with the order date: a fact it reads, directly or not, is dated. */
export function ruleReadsOrderDate(policy: CompiledPolicy, rule: Pick<CompiledRule, 'facts'>): boolean {
  return ruleClosure(policy, rule.facts).some((n) => policy.factsByName.get(n)?.dated === true);
}

/** An `askWhen` condition's value for this patient: true or false, or undefined while the facts it reads leave it open. */
function askWhenValue(askWhen: CompiledPolicy['facts'][number]['askWhen'], known: Record<string, FactValue>, orderDate: string): boolean | undefined {
  if (!askWhen) return undefined;
  try {
    const v = askWhen(known, { orderDate, orderDateTime: `${orderDate}T00:00:00Z` });
    return v.length === 1 && typeof v[0] === 'boolean' ? v[0] : undefined;
  } catch {
    return undefined;
  }
}

/** True only when an `askWhen` condition is known to be false for this patient; unknown shows the question. */
export function askWhenFalse(
  askWhen: CompiledPolicy['facts'][number]['askWhen'],
  known: Record<string, FactValue>,
  orderDate: string,
): boolean {
  return askWhenValue(askWhen, known, orderDate) === false;
}

/**
 * Whether an `askWhen` condition is known for this patient (true or false), not left open by facts still unknown: a
 * question whose condition is open waits, in `$next-question`, for the facts its condition reads (the birth date before
 * the AYA question; the renewal question before its follow-ups). No condition is known.
 */
export function askWhenKnown(
  askWhen: CompiledPolicy['facts'][number]['askWhen'],
  known: Record<string, FactValue>,
  orderDate: string,
): boolean {
  return !askWhen || askWhenValue(askWhen, known, orderDate) !== undefined;
}

function safeNumber(fn: () => unknown[]): number | undefined {
  try {
    const v = fn();
    return v.length === 1 && typeof v[0] === 'number' && Number.isFinite(v[0]) ? v[0] : undefined;
  } catch {
    return undefined;
  }
}

/** Most combinations of the other unknown facts' values {@link couldChange} tries before it keeps a fact asked. */
const MAX_COMBINATIONS = 512;
const ruleTexts = new WeakMap<CompiledPolicy, Map<string, string>>();

/**
 * The values worth trying for an unknown fact in a rule: both booleans; for a code, every string literal the rule's
 * text compares with and one it does not name; for a number, the rule's numeric literals and their neighbours (the
 * edges of its comparisons), 0 and a large value. Undefined when the type offers no finite set to try (a date, a
 * string): such a fact is kept, never dropped on a guess.
 */
function candidateValues(type: FactType, text: string): FactValue[] | undefined {
  if (type === 'boolean') return [true, false];
  if (type === 'code') {
    // A code the rule names no value of (read through a function or another fact) offers nothing to try: kept asked.
    const named = [...new Set([...text.matchAll(/'([^'\\]*)'/g)].map((m) => m[1]))];
    return named.length > 0 ? [...named, '\u0000other'] : undefined;
  }
  if (type === 'integer' || type === 'decimal') {
    const literals = [...text.matchAll(/(?<![A-Za-z0-9_.])(\d+(?:\.\d+)?)/g)].map((m) => Number(m[1]));
    const steps = type === 'integer' ? [1] : [1, literals.reduce((m, x) => (x > 0 && x < m ? x : m), 1) / 10];
    const values = new Set<number>([0, 1e6]);
    for (const x of literals) for (const d of [0, ...steps, ...steps.map((v) => -v)]) if (x + d >= 0) values.add(x + d);
    return [...values];
  }
  return undefined;
}

/** {@link candidateValues} per rule and fact: `null` where there is none (the rule's text is unknown, or the type lists no values). */
const candidatesByRule = new WeakMap<CompiledRule, Map<string, readonly FactValue[] | null>>();

/**
 * The candidate values of fact `name` in `rule`, read from the rule's text once per rule and fact (the text and the
 * fact's type are content, fixed at load): the hook path asks for them on every undecided rule of every
 * documentation-needed order, and scanning the text with regular expressions each time was wasted. Never changed by
 * callers.
 */
function ruleCandidates(policy: CompiledPolicy, rule: CompiledRule, name: string): readonly FactValue[] | undefined {
  let byFact = candidatesByRule.get(rule);
  if (!byFact) candidatesByRule.set(rule, (byFact = new Map()));
  let values = byFact.get(name);
  if (values === undefined) {
    let texts = ruleTexts.get(policy);
    if (!texts) {
      texts = new Map([...policy.file.requirements, ...policy.file.pathways, ...policy.file.limits].map((r) => [r.id, r.when]));
      ruleTexts.set(policy, texts);
    }
    const text = texts.get(rule.id);
    const type = policy.factsByName.get(name)?.def.type;
    values = (text !== undefined && type !== undefined ? candidateValues(type, text) : undefined) ?? null;
    byFact.set(name, values);
  }
  return values ?? undefined;
}

/**
 * Whether some value of `name` could change the value of `rule`, the rule's other unknown facts taking any value
 * (or none), and so do the facts computed from it: every combination is tried while there are at most
 * {@link MAX_COMBINATIONS}; beyond that, or where a
 * fact's values cannot be listed, the fact is kept (asked), as before. A derived fact is tried as the rule reads it:
 * when no value of it changes the rule, nothing it is computed from can either.
 */
function couldChange(policy: CompiledPolicy, rule: CompiledRule, name: string, known: Record<string, FactValue>): boolean {
  if (Object.prototype.hasOwnProperty.call(known, name)) return false;
  const own = ruleCandidates(policy, rule, name);
  if (!own) return true;
  const others: { name: string; values: (FactValue | undefined)[] }[] = [];
  let combinations = 1;
  // A rule's value is a function of the values of the facts it reads alone (ruleOutcome remembers it by them): each
  // combination is tried on an object of those facts only, not on a copy of every known fact of the policy (about 70),
  // which was most of this function's time on a documentation-needed order.
  const free: Record<string, FactValue> = {};
  for (const f of rule.facts) if (Object.prototype.hasOwnProperty.call(known, f)) free[f] = known[f];
  // A fact computed from this one (the cycles of the order's phase, from its unknown phase) was read without it: it
  // takes any value too.
  for (const other of rule.facts) {
    if (other === name) continue;
    if (Object.prototype.hasOwnProperty.call(known, other)) {
      if (!ruleClosure(policy, [other]).includes(name)) continue;
      delete free[other];
    }
    const values = ruleCandidates(policy, rule, other);
    if (!values) return true;
    others.push({ name: other, values: [undefined, ...values] });
    combinations *= values.length + 1;
    if (combinations > MAX_COMBINATIONS) return true;
  }
  const at = (values: Record<string, FactValue>): string => {
    const o = ruleOutcome(rule, values);
    return o.error !== undefined ? 'error' : String(o.result);
  };
  const assign = (i: number, values: Record<string, FactValue>): boolean => {
    if (i === others.length) {
      const first = at({ ...values, [name]: own[0] });
      return own.slice(1).some((v) => at({ ...values, [name]: v }) !== first);
    }
    const { name: other, values: options } = others[i];
    return options.some((v) => {
      const next = { ...values };
      if (v === undefined) delete next[other];
      else next[other] = v;
      return assign(i + 1, next);
    });
  };
  return assign(0, free);
}

/**
 * The askable facts behind undecided rules: an unknown fact that the clinician can answer, or, for a derived fact
 * (askable: false), the unknown facts it is computed from.
 */
function missingFor(policy: CompiledPolicy, undecided: RuleResult[], known: Record<string, FactValue>, orderDate: string, alsoRead: string[] = []): string[] {
  const out = new Set<string>();
  const visit = (name: string, seen: Set<string>) => {
    if (seen.has(name) || Object.prototype.hasOwnProperty.call(known, name)) return;
    seen.add(name);
    const f = policy.factsByName.get(name);
    if (!f) return;
    if (f.def.askable) {
      // A question for other patients (askWhen false: e.g. the AYA question for a 4-month-old) is never asked.
      if (!askWhenFalse(f.askWhen, known, orderDate)) out.add(name);
    }
    else for (const d of f.deps) visit(d, seen);
  };
  for (const r of undecided) {
    const rule = [...policy.requirements, ...policy.pathways, ...policy.limits].find((x) => x.id === r.id);
    if (!rule) continue;
    // design.md §6: questions are asked only of the patients they concern. A fact the rule reads is still to document
    // only if some value of it could change the rule's value (acceptance review s48, 2: MRD beside a Besponsa order
    // of 6 cycles, whose HSCT limit only a third cycle after 2 given could meet).
    for (const name of rule.facts) if (couldChange(policy, rule, name, known)) visit(name, new Set());
  }
  // Facts a synthetic rule reads (a pathway's unknown `approval.from` date: its `-course-start` limit).
  for (const name of alsoRead) visit(name, new Set());
  return policy.facts.map((f) => f.name).filter((n) => out.has(n));
}
