import type { CodeableConcept, Condition, MedicationRequest, Quantity, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import { askedAmountsOf } from '../coverage/reviewed-approval.js';
import type { Content, Payer } from '../content.js';
import { drugNamedOnly, policiesFor, policiesForCodings } from '../content.js';
import { resolveValueSetUrl } from '../fhir/fhirpath.js';
import { codingsWithBillingOptions } from '../fhir/value-sets.js';
import { answeredCanonical, evaluateQuestionnaireResponse, policyForQuestionnaire } from '../coverage/evaluate-response.js';
import { signingFactsKey, type AssertedOrderDate } from './asserted-order-dates.js';
import { newApproval, periodEnd, withinCoverage } from '../coverage/authorization.js';
import { coverageLastDay, notActiveOn } from '../coverage/payer.js';
import type { ApprovalLength } from '../coverage/authorization.js';
import { determinationOf } from '../coverage/determination.js';
import { DomainError, HttpError, badRequest } from '../errors.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { evaluatePolicy } from '../policies/evaluate-policy.js';
import type { Outcome, PolicyEvaluation, Tri } from '../policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord, orderStartOf, withMedicationCode } from '../policies/evaluation-data.js';
import { reviewerLabel } from '../policies/policy-loader.js';
import { recordFromResources } from '../policies/record-from-resources.js';
import type { AuthorizationRecord, ItemActionCode, OrderKey } from '../storage/storage.js';
import { orderKeyOf } from '../coverage/order-record.js';
import type { recordedDecision } from '../coverage/order-record.js';
import type { PasRequest, RequestedItem } from './request-bundle.js';

/** What PriorPath decided for one Claim item; stored with the submission (no fact values, only criterion results). */
export interface ItemDecision {
  sequence: number;
  policyId?: string;
  policyVersion?: string;
  outcome: Outcome | 'ungoverned';
  /** X12 306: the decision (A1, A3, A4), or C once its submitter cancelled the item (PAS Claim Update). */
  reviewAction: ItemActionCode;
  /** Pended: what is needed, in words (the unanswered questions, the limit a clinician must review). */
  needed: string[];
  /** Why: the approving pathway (A1) or the clause the request fails (A3), each citing the policy. */
  reasons: string[];
  /** Each criterion's result (true/false/unknown) with its citation, for the reviewer. */
  /** `applies`: limits only, whether the limit concerns the patient (RuleResult.applies). */
  criteria: { id: string; kind?: 'requirement' | 'pathway' | 'limit'; cite: string; text: string; result: Tri; applies?: Tri; evidence?: CriterionEvidence[] }[];
  orderDate: string;
  authorization?: AuthorizationRecord;
  /**
   * The period a reviewer's approval grants unless the reviewer gives one. No `end` when the policy's period runs from
   * a date the request does not give (`periodFrom`): the reviewer sets it (design.md §8 "The reviewer API").
   */
  reviewPeriod: { start: string; end?: string };
  /**
   * Set when the policy's approval runs from a course's first cycle (the pathway's `approval.from`: OHSU's "Initial 30
   * weeks for a total of five cycles") and the request does not give that date: the fact, its words, and the
   * approval's length. No period is proposed counted from the order's date, which would give a later cycle a fresh
   * course's period (design.md §6 "Cycles"); the reviewer's approval must carry one.
   */
  periodFrom?: { fact: string; label: string; length: string };
  /** The clinical reviewer's decision, once made. */
  review?: { decision: 'approve' | 'deny'; reason: string; decidedAt: string };
  /** The order's record key (design.md §8), when the item names an order of a known patient. */
  order?: OrderKey;
  /** The order's dose when it cannot be read (Determination.unreadableDose): no recorded approval answers for it. */
  unreadableDose?: string;
  /** Set when the order already had this decision before the request (approved or denied elsewhere). */
  fromOrderRecord?: boolean;
  /**
   * Set when the item's policy states no amount limit, so its quantity was never judged: an approval certifies the drug
   * for the order, never the quantity asked (design.md §8 "What PAS certifies"). Decisions stored before it lack it.
   */
  quantityNotJudged?: true;
  /**
   * The Claim item's quantity as asked (the whole authorization), kept so that a later request is compared with what
   * a reviewer approved without reading the stored request again (approval-covers.ts); null when the item stated
   * none. Absent from decisions stored before it was kept: their request is read for it.
   */
  quantity?: Quantity | null;
  /**
   * The facts of its policy's limits that are amounts the order asks for (CompiledFact.asked: the dose, the cycles, the
   * amount dispensed): the only ones a later request is compared on with what a reviewer approved (approval-covers.ts).
   * Absent from decisions stored before it was kept: every fact of a limit is compared, as then.
   */
  askedAmounts?: string[];
  /** Set when its submitter cancelled the item (reviewAction C): when, and what it had been before. */
  cancelled?: { at: string; was: ItemActionCode };
}

/**
 * An item answered by its order's recorded decision (design.md §8: one decision per order, whichever path made it):
 * A1 with the order's number and period, or A3 with the denial's reason.
 */
export function itemFromOrderRecord(item: ItemDecision, decided: NonNullable<ReturnType<typeof recordedDecision>>): ItemDecision {
  return decided.reviewAction === 'A1'
    ? { ...item, reviewAction: 'A1', needed: [], reasons: [decided.reason], authorization: decided.authorization, fromOrderRecord: true }
    : { ...item, reviewAction: 'A3', needed: [], reasons: [decided.reason], authorization: undefined, fromOrderRecord: true };
}

const DAY = /^\d{4}-\d{2}-\d{2}/;

/** Where the Claim's item `it` sits in the request, for an error's location. */
function itemPath(req: PasRequest, it: RequestedItem): string {
  const n = (req.claim.item ?? []).indexOf(it.item);
  return `Claim.item[${n < 0 ? it.sequence - 1 : n}]`;
}

/**
 * The drugs PriorPath governs (the value sets its policies name, any payer's) that a drug concept names: by code
 * (with CRD billing options), else by name alone (content.ts `drugNamedOnly`). Empty when it names none of them.
 */
function governedDrugsOf(content: Content, concept: CodeableConcept | undefined): Set<string> {
  const sets = drugValueSetsOf(content);
  const codings = codingsWithBillingOptions(concept);
  const byCode = sets.filter((s) => codings.some((c) => content.valueSets.contains(s, c)));
  if (byCode.length > 0) return new Set(byCode);
  const named = concept ? drugNamedOnly(content, { resourceType: 'MedicationRequest', status: 'draft', intent: 'order', subject: {}, medicationCodeableConcept: concept }) : undefined;
  return new Set(named ? [named.url] : []);
}

const drugValueSets = new WeakMap<Content, string[]>();

/** The drug value sets the loaded policies name (any payer's), found once per loaded content. */
function drugValueSetsOf(content: Content): string[] {
  let sets = drugValueSets.get(content);
  if (!sets) {
    const base = `${content.canonicalBase}/ValueSet`;
    drugValueSets.set(content, (sets = [...new Set(content.policies.map((p) => resolveValueSetUrl(p.file.drug, base)))]));
  }
  return sets;
}

/** A drug concept in a reason's words: its text, else its first coding's display or `system|code`. */
function drugWords(concept: CodeableConcept | undefined): string {
  const c = concept?.coding?.find((x) => x.code);
  return concept?.text ?? (c ? `${c.display ?? ''} (${c.system ?? ''}|${c.code})`.trim() : 'no drug');
}

/**
 * Refuses (400) an item whose own codes name one governed drug while the order it asks for (its requestedService)
 * names another governed drug: the approval of that order would certify the item's code, a drug never
 * judged (design.md §8: one authorization per (payer, patient, order, drug); review s40 F10: a J9039 item certified
 * on a Besponsa order). Like the other inconsistent requests (a reference that does not resolve, a quantity that is
 * not positive: design.md §4 "Errors"), it is the client's to correct, not a reviewer's.
 */
function refuseOtherDrug(content: Content, req: PasRequest, it: RequestedItem, order: MedicationRequest): void {
  const itemDrugs = governedDrugsOf(content, it.item.productOrService);
  if (itemDrugs.size === 0) return;
  const concept = order.medicationCodeableConcept;
  const orderDrugs = governedDrugsOf(content, concept);
  // An order coded only in a way no policy lists (an EHR-local code, an unlisted NDC) does not contradict the item: code
  // lists are incomplete (design.md §6), and the item's code decides as it always has.
  if (orderDrugs.size === 0 || [...orderDrugs].some((d) => itemDrugs.has(d))) return;
  const path = itemPath(req, it);
  throw badRequest(
    `Claim item ${it.sequence} asks for ${drugWords(it.item.productOrService)}, but the order it names (requestedService MedicationRequest/${order.id ?? ''}) is for ${drugWords(concept)}: ` +
      'a prior authorization is judged and certified for one drug; name the order for this drug, or code the item as the order\'s drug',
    [`${path}.productOrService`, `${path}.extension`],
  );
}


/**
 * The order an item asks for: its requestedService, else the one MedicationRequest of the Bundle the same policy
 * governs that is to be judged, else one built from the item. Without requestedService (PAS: 0..1) the Bundle may hold
 * earlier cycles still active beside the new order: a draft (not yet under way) is preferred, then an order starting on
 * or after the item's service date (else the Claim's date); several left is a 400 naming them, never an approval of an
 * order already under way (review s40 F11: an earlier active cycle was certified with its retroactive period while the
 * new over-dose draft went unjudged).
 */
function orderFor(req: PasRequest, it: RequestedItem, content: Content, payer: Payer): MedicationRequest {
  if (it.requestedService?.resourceType === 'MedicationRequest') return it.requestedService;
  const requestable = req.resources.filter(
    (r): r is MedicationRequest => r.resourceType === 'MedicationRequest' && (r.status === 'draft' || r.status === 'active' || r.status === undefined),
  );
  const itemPolicies = new Set(policiesForCodings(content, payer.key, it.codings).map((p) => p.file.id));
  const governedBySame = requestable.filter((m) =>
    policiesFor(content, payer.key, withMedicationCode(m, { byReference: req.byReference })).some((p) => itemPolicies.has(p.file.id)),
  );
  const period = it.item.servicedPeriod?.start ?? it.item.servicedDate;
  const drafts = governedBySame.filter((m) => m.status === 'draft');
  let pool = drafts.length > 0 ? drafts : governedBySame;
  if (pool.length > 1) {
    const from = (period && DAY.test(period) ? period : req.claim.created)?.slice(0, 10);
    const notUnderWay = from ? pool.filter((m) => (orderStartOf(m) ?? '') >= from) : [];
    if (notUnderWay.length > 0) pool = notUnderWay;
  }
  if (pool.length > 1) {
    throw badRequest(
      `Claim item ${it.sequence} names no order (extension-requestedService) and the Bundle holds ${pool.length} orders it could be for ` +
        `(${pool.map((m) => `MedicationRequest/${m.id ?? '?'} ${m.status ?? ''} from ${orderStartOf(m) ?? 'an unstated date'}`).join('; ')}): name the order the item asks for`,
      [`${itemPath(req, it)}.extension`],
    );
  }
  if (pool.length === 1) return pool[0];
  return {
    resourceType: 'MedicationRequest',
    id: `claim-item-${it.sequence}`,
    status: 'draft',
    intent: 'order',
    subject: req.claim.patient ?? {},
    medicationCodeableConcept: it.item.productOrService,
    ...(req.claim.provider ? { requester: req.claim.provider } : {}),
    ...(period && DAY.test(period) ? { dispenseRequest: { validityPeriod: { start: period.slice(0, 10) } } } : {}),
  };
}

/**
 * Whether a policy judges the amount an order dispenses: it declares which of its facts is the requested amount
 * (`requestedAmount`: OHSU's J9039 units per 42 days, MMM's micrograms per cycle), which the loader checks a limit
 * judges (policy-loader.ts `requestedAmountProblems`). Read from the policy's data, never a payer's name.
 */
function judgesQuantity(policy: CompiledPolicy): boolean {
  return policy.requestedAmount !== undefined;
}

/**
 * The order as PAS judges it for one Claim item (design.md §8 "What PAS certifies"): what an approval certifies is
 * the item's quantity (itemAuthorizedDetail), so that quantity, per cycle of the order, is the order's requested amount
 * when the order states none, states it in another unit, or states less. The policy's amount limits then read what
 * would be certified (review s40 F6: 2000 J9039 units were certified for one OHSU cycle, whose limit is 980). An order
 * stating as much or more in the same unit is judged as it is.
 */
function withItemQuantity(order: MedicationRequest, item: RequestedItem['item']): MedicationRequest {
  const asked = item.quantity;
  if (!asked || typeof asked.value !== 'number') return order;
  // The item asks for the whole authorization; the order's dispense quantity is one dispense, one cycle, of its
  // 1 + numberOfRepeatsAllowed (design.md §6 "Cycles"): the policy reads the item's amount per cycle.
  const repeats = order.dispenseRequest?.numberOfRepeatsAllowed;
  const cycles = 1 + (typeof repeats === 'number' && Number.isInteger(repeats) && repeats > 0 ? repeats : 0);
  const perCycle = { ...asked, value: asked.value / cycles };
  const stated = order.dispenseRequest?.quantity;
  const sameUnit = !!stated && (stated.code !== undefined || asked.code !== undefined ? stated.code === asked.code : stated.unit === asked.unit);
  // In another unit (the order in ug, the item in J9039 {unit}) the item is what would be certified: the policy's own
  // reader converts it, or leaves it unknown and asked, never within a limit.
  if (stated && sameUnit && !(typeof stated.value === 'number' && perCycle.value > stated.value)) return order;
  return { ...order, dispenseRequest: { ...order.dispenseRequest, quantity: perCycle } };
}

/** The QuestionnaireResponse statuses whose answers are evidence: finished (`completed`) or corrected (`amended`). */
const FINISHED = new Set<string>(['completed', 'amended']);

/**
 * The answers to this policy's Questionnaire among the request's QuestionnaireResponses, as one response (several
 * are read in order, a later answer overriding an earlier one). Responses to other forms are evidence PriorPath does
 * not read, nor are responses that are not finished.
 */
function responseFor(content: Content, policy: CompiledPolicy, qrs: QuestionnaireResponse[]): QuestionnaireResponse | undefined {
  // Only a finished response is evidence (FHIR R4 QuestionnaireResponse.status; design.md §7): a draft (in-progress) or
  // an abandoned one (stopped) was not finished by the clinician, and one entered in error was voided.
  const mine = qrs.filter((q) => FINISHED.has(q.status) && policyForQuestionnaire(content, answeredCanonical(q))?.policy.file.id === policy.file.id);
  if (mine.length <= 1) return mine[0];
  return { ...mine[0], item: mine.flatMap((q) => q.item ?? []) };
}

/** The approval a reviewer grants by default: the pathway that held, else the shortest pathway approval of the policy. */
function defaultApproval(policy: CompiledPolicy, ev: PolicyEvaluation): ApprovalLength & { from?: string; afterEnd?: 'review' | 'order' } {
  const held = ev.rules.find((r) => r.kind === 'pathway' && r.result === true);
  const rule = policy.pathways.find((p) => p.id === held?.id);
  if (rule?.approval) return rule.approval;
  const days = (a: ApprovalLength) => (a.days ?? 0) + 7 * (a.weeks ?? 0) + 30 * (a.months ?? 0);
  // No pathway held, so no course is known to count from: the shortest length, from the order's start.
  const approvals = policy.pathways.map((p) => p.approval).filter((a): a is NonNullable<typeof a> => !!a);
  const shortest = approvals.sort((a, b) => days(a) - days(b))[0];
  return shortest ? { days: shortest.days, weeks: shortest.weeks, months: shortest.months } : { days: 30 };
}

/** An approval's length in words, as a reviewer reads it ("30 weeks"). */
function lengthInWords(a: ApprovalLength): string {
  const part = (n: number | undefined, unit: string) => (n ? [`${n} ${unit}${n === 1 ? '' : 's'}`] : []);
  return [...part(a.months, 'month'), ...part(a.weeks, 'week'), ...part(a.days, 'day')].join(' and ') || '0 days';
}

/**
 * The period a reviewer approves by default. The approval of the pathway that held counts from its `approval.from`
 * date when it has one (a course's first cycle: what is left of the course's authorization, as an approval at signing
 * gives), unless that authorization ended before the order starts (the order is outside
 * it; the reviewer judges it as a renewal); otherwise from the order's start. When that date is unknown, no end is
 * proposed and `periodFrom` says which date the reviewer must read the period from (design.md §8 "The reviewer API"),
 * except where the policy itself counts an unknown start from the order (`afterEnd: order`, BCBSNC's own reading of a
 * seed that states no period; design.md §6 "Cycles").
 */
function reviewPeriodOf(
  policy: CompiledPolicy,
  ev: PolicyEvaluation,
  orderDate: string,
  approval: ReturnType<typeof defaultApproval>,
): { end?: string; periodFrom?: NonNullable<ItemDecision['periodFrom']> } {
  const from = approval.from;
  const value = from === undefined ? undefined : ev.facts.find((f) => f.name === from)?.value;
  const known = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value);
  if (from !== undefined && !known && approval.afterEnd !== 'order')
    return { periodFrom: { fact: from, label: factLabel(policy, from) ?? 'the first day of the course', length: lengthInWords(approval) } };
  if (!known || value.slice(0, 10) > orderDate) return { end: periodEnd(orderDate, approval) };
  const end = periodEnd(value.slice(0, 10), approval);
  return { end: end >= orderDate ? end : periodEnd(orderDate, approval) };
}

/**
 * A fact a criterion reads, as the reviewer sees it: its label in the policy author's words (`label`, else the DTR
 * question: policy-loader.ts `reviewerLabel`), its value and whether the chart or an answer gave it. `fact` is the
 * policy's identifier, for tools; a screen shows `label`. Requests stored before labels carry `question` instead.
 */
export interface CriterionEvidence {
  fact: string;
  label: string;
  /** Stored by earlier versions in place of `label` (the DTR question, or the bare fact name): read, never written. */
  question?: string;
  value?: boolean | number | string;
  source: 'ehr' | 'answer' | 'unknown';
}

/** Each criterion's facts with their values (the evidence behind true/false/unknown), for the reviewer's trace. */
function evidenceOf(policy: CompiledPolicy, ev: PolicyEvaluation, ruleId: string): CriterionEvidence[] {
  const rule = [...policy.requirements, ...policy.pathways, ...policy.limits].find((r) => r.id === ruleId);
  return (rule?.facts ?? []).map((name) => {
    const f = ev.facts.find((x) => x.name === name);
    // The loader refuses a policy whose rule reads a fact without a label, so the fallback is never reached.
    return { fact: name, label: factLabel(policy, name) ?? name, ...(f?.value !== undefined ? { value: f.value } : {}), source: f?.source ?? 'unknown' };
  });
}

/** A fact's words for the reviewer, from the policy file (policy-loader.ts `reviewerLabel`). */
export function factLabel(policy: CompiledPolicy, fact: string): string | undefined {
  const def = policy.factsByName.get(fact)?.def;
  return def ? reviewerLabel(def) : undefined;
}

/**
 * Decides one evaluation as PAS does: the coverage core's determination (design.md §5) with its X12 306 review
 * action: satisfied → A1 certified, with an authorization number and the approving pathway's period; not-covered →
 * A3 with the clause; documentation needed, a limit exceeded or a policy failure → A4 pended (documentation or
 * clinical review), never a positive answer.
 */
export function decisionFor(
  policy: CompiledPolicy,
  ev: PolicyEvaluation,
  opts: { sequence: number; orderDate: string; payer: string; today: string; coverageEnd?: string; unnamed?: boolean },
): ItemDecision {
  const criteria = ev.rules.map((r) => ({ id: r.id, kind: r.kind, cite: r.cite, text: r.text, result: r.result, ...(r.applies !== undefined ? { applies: r.applies } : {}), evidence: evidenceOf(policy, ev, r.id) }));
  const approval = defaultApproval(policy, ev);
  // What a reviewer's approval grants by default ends within the Coverage too (design.md §4 "Payer").
  const { end, periodFrom } = reviewPeriodOf(policy, ev, opts.orderDate, approval);
  const reviewPeriod = end === undefined ? { start: opts.orderDate } : withinCoverage({ start: opts.orderDate, end }, opts.coverageEnd);
  const askedAmounts = askedAmountsOf(policy);
  const base = { sequence: opts.sequence, policyId: policy.file.id, policyVersion: policy.file.version, outcome: ev.outcome, criteria, orderDate: opts.orderDate, reviewPeriod, ...(periodFrom ? { periodFrom } : {}), askedAmounts };
  const authorization =
    ev.outcome === 'satisfied' && !opts.unnamed ? newApproval(opts.payer, opts.today, opts.orderDate, ev.pathway?.approval ?? approval, ev.pathway?.approvalFrom, opts.coverageEnd) : undefined;
  const d = determinationOf(policy, ev, authorization, opts.unnamed);
  return {
    ...base,
    reviewAction: d.reviewAction,
    needed: d.reviewAction === 'A4' ? d.needed : [],
    reasons: d.reviewAction === 'A4' ? [] : d.reasons.map((r) => r.text),
    ...(authorization ? { authorization } : {}),
    ...(d.unreadableDose ? { unreadableDose: d.unreadableDose } : {}),
  };
}

/** Claim.diagnosis codes as active Conditions (a diagnosisReference to a Condition in the Bundle is read as it is). */
function claimDiagnoses(req: PasRequest): Condition[] {
  return (req.claim.diagnosis ?? [])
    .map((d) => d.diagnosisCodeableConcept)
    .filter((c): c is CodeableConcept => !!c?.coding?.length)
    .map((code, i) => ({
      resourceType: 'Condition',
      id: `claim-diagnosis-${i + 1}`,
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      code,
      subject: { reference: req.patientFullUrl ?? `Patient/${req.patient.id ?? ''}` },
    }));
}

/**
 * A Claim item PAS cannot decide although the request is well formed (PAS 2.2.1 §"Submitting a Prior Authorization":
 * business errors go in `ClaimResponse.error`, a 4xx only for a request that cannot be processed): its order date is
 * one the request's Coverage is not in force on. The answer names it by `itemSequence` with the words and the
 * element (claim-response.ts); nothing is certified or recorded for it, and the request's other items are decided.
 */
export interface ItemError {
  sequence: number;
  /** Why, in words ("No active Coverage: Coverage cov-1 ended on …, not in force on the order date …"). */
  reason: string;
  /** FHIRPath of the element from the request Bundle (PAS `extension-errorPath`). */
  path: string;
}

/**
 * Why an item's order date is one the request's Coverage is not in force on, if it is: a Coverage ended before the
 * service, or begun after it, is no coverage to authorize under, whatever the Claim's insurer says (design.md §4
 * "Payer", as CRD answers it). Without `errors` (a Claim Update) it is refused (DomainError `invalid`, 400);
 * with them, it is the item's error and the item is not decided.
 */
function notInForceFor(req: PasRequest, it: RequestedItem, orderDate: string, errors: ItemError[] | undefined): boolean {
  const why = notActiveOn(req.coverage, [orderDate]);
  if (!why) return false;
  // A Coverage that is not active (cancelled, entered in error, draft) covers no item: the request is refused (400).
  const whole = req.coverage.status !== undefined && req.coverage.status !== 'active';
  if (!errors || whole) throw new DomainError('invalid', `No active Coverage: ${why}`, ['Bundle.entry.resource.ofType(Coverage).period']);
  errors.push({ sequence: it.sequence, reason: `No active Coverage: ${why}; this item is not decided: correct its Coverage or its date and send it again`, path: it.path });
  return true;
}

/**
 * Adjudicates every item of a PAS request against the payer's policies, over the facts of the Bundle's own resources
 * with the QuestionnaireResponse answers taking precedence (design.md §5, use 3). An item no policy governs is pended
 * for a reviewer: PriorPath holds only these policies and must not answer for drugs it does not know.
 */
export function adjudicate(opts: {
  content: Content;
  payer: Payer;
  request: PasRequest;
  today: string;
  /**
   * The dates CRD judged the request's orders on, and the starts they stated then, by `MedicationRequest/<id>`
   * (asserted-order-dates.ts).
   */
  assertedOrderDates?: ReadonlyMap<string, AssertedOrderDate>;
  /** What signing read of the request's orders (asserted-order-dates.ts `signingFacts`), for the answers to be compared with. */
  signingFacts?: ReadonlyMap<string, Record<string, unknown>>;
  /**
   * Collects the items that cannot be decided (ItemError), which are then left out of the decisions; without it such
   * an item refuses the request (400).
   */
  errors?: ItemError[];
}): ItemDecision[] {
  const { content, payer, request: req, today } = opts;
  // The orders the request's items ask for, in the items' order: the orders claimed together are one request, each
  // judged with the ones before it, so a course limit counts them (docs/design.md §6 "Cycles"), as at signing.
  const orders = req.items.map((it) => orderFor(req, it, content, payer));
  return req.items.flatMap((it, n): ItemDecision[] => {
    const order = orders[n];
    const coded = withMedicationCode(order, { byReference: req.byReference });
    if (it.requestedService === order) refuseOtherDrug(content, req, it, coded);
    const [policy] = [...policiesFor(content, payer.key, coded), ...policiesForCodings(content, payer.key, it.codings)];
    // A policy that judges amounts judges the item's (design.md §8 "What PAS certifies"); the order's record key and
    // date are the order's own.
    const quantityJudged = !!policy && judgesQuantity(policy);
    const judged = quantityJudged ? withItemQuantity(order, it.item) : order;
    const practitioner = req.claim.provider?.reference;
    const resources: Resource[] = req.resources.some((r) => r === order) ? req.resources.map((r) => (r === order ? judged : r)) : [...req.resources, judged];
    const record = recordFromResources(resources, [judged], practitioner && /^(PractitionerRole|Practitioner)\//.test(practitioner) ? practitioner : undefined);
    for (const [k, r] of req.byReference) record.byReference.set(k, r);
    record.requestOrders = orders.map((o) => (o === order ? judged : o));
    // A PAS Bundle is not the whole chart: the Claim's diagnoses count as the patient's conditions, and a request that
    // carries none leaves the diagnosis unknown (A4, documentation), never "a different diagnosis" (A3).
    record.diagnosesComplete = false;
    record.conditions.push(...claimDiagnoses(req));
    if (practitioner) {
      const user = req.byReference.get(practitioner);
      if (user && (user.resourceType === 'PractitionerRole' || user.resourceType === 'Practitioner') && !record.users.includes(user)) record.users.push(user);
    }
    // The order's own start, else (for the evaluation of a response) its order-date item, else the date CRD judged the
    // order on, else today: one date per order (design.md §7), and the same date for the evaluation and the period.
    const asserted = order.id ? opts.assertedOrderDates?.get(`MedicationRequest/${order.id}`) : undefined;
    // Built once: its order date dates the period, and the evaluation without a response reads the same data.
    // A copy of the order that drops the start signing read off it is judged on that start (review-diff s44 D5).
    const data = evaluationDataFor(indexRecord(record), judged, asserted?.orderDate ?? today, asserted?.orderStart);
    let orderDate = data.orderDate;

    if (!policy) {
      if (notInForceFor(req, it, orderDate, opts.errors)) return [];
      const period = withinCoverage({ start: orderDate, end: periodEnd(orderDate, { days: 30 }) }, coverageLastDay(req.coverage));
      return [{
        sequence: it.sequence,
        outcome: 'ungoverned',
        reviewAction: 'A4',
        needed: [`Clinical review: no computable ${payer.label} policy governs ${it.codings.map((c) => `${c.system ?? ''}|${c.code}`).join(', ')}`],
        reasons: [],
        criteria: [],
        orderDate,
        reviewPeriod: period,
        quantity: it.item.quantity ?? null,
      } satisfies ItemDecision];
    }

    let ev: PolicyEvaluation;
    const qr = responseFor(content, policy, req.questionnaireResponses);
    try {
      if (qr) {
        // The same evaluation DTR runs for a completed response: the Bundle's record, the answers overriding it.
        // An answer contradicting what signing read of the record pends the order for clinical review, as in DTR.
        const chartFacts = order.id ? opts.signingFacts?.get(signingFactsKey(`MedicationRequest/${order.id}`, policy.file.drug)) : undefined;
        const result = evaluateQuestionnaireResponse({ content, qr, record, order: judged, assertedOrderDate: asserted?.orderDate, assertedOrderStart: asserted?.orderStart, ...(chartFacts ? { chartFacts } : {}), today });
        if (result.problems.length > 0) {
          throw badRequest(`QuestionnaireResponse answers that cannot be read: ${result.problems.map((p) => p.message).join('; ')}`, result.problems.map((p) => p.path));
        }
        ev = result.evaluation;
        // The date the answers were judged on (the response's order-date item for an order stating no start): the
        // approval and review periods start there too.
        orderDate = result.orderDate;
      } else {
        ev = evaluatePolicy(policy, data);
      }
    } catch (err) {
      if (err instanceof HttpError || err instanceof DomainError) throw err;
      ev = { policyId: policy.file.id, policyVersion: policy.file.version, outcome: 'error', facts: [], rules: [], missingFacts: [], failed: [], proposals: [] };
    }
    if (notInForceFor(req, it, orderDate, opts.errors)) return [];
    // Only an order the EHR named (not one built from the Claim item) has a record to share with CRD and DTR.
    const named = order.id && !order.id.startsWith('claim-item-') ? `MedicationRequest/${order.id}` : undefined;
    const key = orderKeyOf({ payer: payer.key, patientId: req.patient.id, orderRef: named, drug: policy.file.drug });
    // An order that cannot be named (no id: a `urn:uuid` entry, or none but the Claim item) has no record to keep a
    // number on, so each request under a new Bundle identifier would certify it again with another: an item the rules
    // would certify is pended, its `needed` saying to name the order (docs/design.md §8 "An order that cannot be named").
    const decision = decisionFor(policy, ev, { sequence: it.sequence, orderDate, payer: payer.key, today, coverageEnd: coverageLastDay(req.coverage), unnamed: !key });
    // A policy that states no amount limit never judged the item's quantity: an approval certifies the drug for the
    // order, not that amount (claim-response.ts authorizedItemDetail).
    const asked = { ...decision, quantity: it.item.quantity ?? null };
    const amount = quantityJudged || !it.item.quantity ? asked : { ...asked, quantityNotJudged: true as const };
    return [key ? { ...amount, order: key } : amount];
  });
}
