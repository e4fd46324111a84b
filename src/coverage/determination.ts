import type { Payer } from '../content.js';
import { provingAttachment } from './questionnaire-answers.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { factBounds, undecidedRules, type FactValue, type Outcome, type PolicyEvaluation } from '../policies/evaluate-policy.js';
import { failedUses } from '../policies/pathway-failures.js';
import { forDisplay } from '../policies/display-precision.js';
import type { AuthorizationRecord, ReviewActionCode } from '../storage/storage.js';

/** CRD `covered` codes (ext-coverage-information). */
export type CoveredCode = 'covered' | 'not-covered' | 'conditional' | 'indeterminate';
/** CRD `pa-needed` codes. */
export type PaNeededCode = 'no-auth' | 'auth-needed' | 'satisfied' | 'conditional' | 'indeterminate';

/**
 * What PriorPath decided for one order, in every edge's terms at once (design.md §5 determination table and §8): the
 * CRD coverage-information codes and reason, the words for cards and reviewers, and the PAS review action. CRD, DTR
 * and PAS each shape this one value into their protocol; none of them maps an outcome to codes by itself, so the
 * three can never disagree.
 */
export interface Determination {
  outcome: Outcome | 'default';
  covered: CoveredCode;
  /** Absent for not-covered (crd-ci-q2). */
  paNeeded?: PaNeededCode;
  /** The Questionnaire canonical to complete, when documentation is what is needed (CRD doc-needed clinical, withpa). */
  questionnaire?: string;
  /**
   * Why, citing the policy: the CRD `reason`, and the PAS reasons for A1 and A3. `code`: a CRD reason code;
   * `reviewAction`: the X12 306 review action the reason states for a PAS request for the order, coded so a client
   * acts on it without reading the words (design.md §8): A3, the order's recorded denial (order-record.ts
   * `withOrderRecord`), never a provisional "not covered"; A4, a reviewer decides the order (`afterReviewDenial`).
   */
  reasons: { text: string; code?: string; reviewAction?: 'A1' | 'A3' | 'A4' }[];
  /** What is missing, in words a clinician or reviewer reads: questions, limits to review. Empty unless pended. */
  needed: string[];
  /** The X12 306 review action PAS answers with: A1 certified, A3 not certified, A4 pended. */
  reviewAction: ReviewActionCode;
  /** One line for humans (the CRD systemAction description). */
  summary: string;
  /** The approval (number and period) when the order is authorized. */
  authorization?: AuthorizationRecord;
  /**
   * The order's prescribed dose when it cannot be read (missing, zero, negative, no or an unknown unit), in the
   * policy's words: no approval on the order's record answers for it (docs/design.md §8 "What an approval covers").
   */
  unreadableDose?: string;
  /**
   * Pended for clinical review because answers contradict what was read from the record at signing
   * (docs/design.md §7 "Answers and the record"): the order's record keeps the reason even when its state stays.
   */
  clinicalReview?: true;
}

/**
 * Why an order the rules approve gets no authorization number when PriorPath cannot name it (no id, or no patient id:
 * order-record.ts orderKeyOf): a number is issued once per order and must be found again by the order's later
 * signing, DTR response and PAS request, and a number kept on no order's record is issued afresh on every call
 * (docs/design.md §8 "An order that cannot be named"; review accept2 A5). Said in the CRD reason, the PAS `needed`
 * and the reviewer's queue.
 */
export const UNNAMED_ORDER =
  'No authorization number was issued: the order (or, in a PAS request, its patient) carries no id, so its authorization could not be found again by the order\'s later signing, DTR response or prior authorization request (one authorization per order). Send the order with its id (at signing, the draft order\'s id; in DTR, the order in the launch context; in a PAS request, the MedicationRequest and the Patient with their ids, the Claim item naming the order in requestedService) and it is decided again.';

function questionOf(policy: CompiledPolicy, name: string, ev?: PolicyEvaluation): string {
  const question = policy.factsByName.get(name)?.def.question ?? name;
  // An answer given but not used, because it cannot be true of a patient, is named: "still needed" alone would tell the
  // clinician who just typed MRD 150 % nothing (review s44 M1).
  const unusable = ev?.unusable?.find((u) => u.fact === name);
  if (unusable) return `${question} (${unusableWords(policy, name, unusable.answer)})`;
  // An attestation the seed conditions on a submitted document names the document: a "Yes" counts only with it.
  const doc = provingAttachment(policy, name);
  return doc ? `${question} (if yes, attach: ${doc.text.replace(/\s+/g, ' ').trim()})` : question;
}

/**
 * Why an answer was not used, in the clinician's words, from the one definition of what a fact can be
 * (evaluate-policy.ts factBounds): "the answer 150 % is not possible (0 to 100 %); it was not used".
 */
export function unusableWords(policy: CompiledPolicy, name: string, answer: FactValue): string {
  const def = policy.factsByName.get(name)?.def;
  const b = def ? factBounds(def) : undefined;
  const unit = def?.unit ? (def.unit === '%' ? ' %' : ` ${def.unit}`) : '';
  let range = '';
  if (b?.notAfter === 'order') range = "on or before the order's start";
  else if (b?.notAfter === 'latest') range = "on or before today and the order's start";
  else if (b?.min !== undefined && b.max !== undefined) range = `${b.min} to ${b.max}${unit}`;
  else if (b?.min !== undefined) range = b.minExcluded ? `more than ${b.min}${unit}` : `${b.min}${unit} or more`;
  return `the answer ${typeof answer === 'number' ? `${answer}${unit}` : String(answer)} is not possible${range ? ` (${range})` : ''}; it was not used`;
}

/**
 * The reason naming what is still to document: the questions left unknown (questionOf: with the document that proves
 * an attestation), quoted as a list after a colon, never pasted into a sentence ("documentation of Do you…?").
 */
function stillToDocument(policy: CompiledPolicy, ev: PolicyEvaluation, questions: string[]): { text: string } {
  const undecided = unknownCites(ev, ['requirement', 'pathway', 'limit']);
  return { text: `Prior authorization needed. Still to document (${undecided || policy.file.source.id}): ${questions.join('; ')}` };
}

function unknownCites(ev: PolicyEvaluation, kinds: string[]): string {
  return [...new Set(undecidedRules(ev.rules).filter((r) => kinds.includes(r.kind)).map((r) => r.cite))].join('; ');
}

/**
 * Why an order is not covered, naming the clause and, for uses outside the policy, where the off-label route is
 * (design.md §6): after a failed requirement flagged `outsideUse` (an indication or diagnosis the policy does not
 * cover), and when no covered use fits; never after a safety, prescriber or renewal requirement (a live vaccine before
 * the start is not answered by clinical trials or compassionate use).
 */
export function notCoveredReason(policy: CompiledPolicy, ev: PolicyEvaluation): string {
  const file = policy.file;
  const failedRequirement = ev.failed.find((r) => r.kind === 'requirement');
  if (failedRequirement) {
    const rule = policy.requirements.find((r) => r.id === failedRequirement.id);
    const why = rule?.notCovered ?? `Does not meet: ${failedRequirement.text}`;
    return `${why} (${failedRequirement.cite})${nameNotes(ev)}${file.offLabel && rule?.outsideUse ? `. ${file.offLabel}` : ''}`;
  }
  // Name what failed, and only for the covered uses that concern this patient (pathway-failures.ts), never every
  // pathway's clause (design.md §6 "Clinical readings").
  const { uses, more } = failedUses(policy, ev);
  const notMet = uses.map((u) => `${u.words} (${u.cites.join('; ')})`).join('; ');
  const others = more > 0 ? `; and ${more} other covered use${more === 1 ? '' : 's'}` : '';
  const why = uses.length > 0 ? `. Not met: ${notMet}${others}` : ` (${[...new Set(ev.failed.map((r) => r.cite))].join('; ')})`;
  return `No covered use of ${file.source.id} fits this order${why}${nameNotes(ev)}${file.offLabel ? `. ${file.offLabel}` : ''}`;
}

/**
 * The drug-name matches that decided the failed rules (evaluate-policy.ts namesThatDecided: a drug recognised by its
 * name in free text or a display, not by a listed code), as the approvals carry them in the rule text: design.md §6
 * "Clinical readings" says so in the reason when a name match decided it, and a denial is where the prescriber most
 * needs to see that a name, not a code, decided it (review-accept s46 F3). The not-covered words are the questions
 * and answers, not the rule texts, so the notes are added here; "" when no name decided a failed rule.
 */
function nameNotes(ev: PolicyEvaluation): string {
  const notes = (ev.notes ?? []).filter((n) => ev.failed.some((r) => r.text.includes(n)));
  return notes.length > 0 ? ` [${notes.join('; ')}]` : '';
}

/**
 * The order's prescribed daily dose when the evaluation could not read it, in the policy's words (its label, else its
 * question); undefined when it was read, answered, or the policy reads no dose. The dose is the askable decimal fact
 * in a unit per day (`ug/d`, `mg/d`): the derived doses (the labelled maximum, the starting dose) are not askable.
 * design.md §4 "Errors": an unreadable dose is an unknown fact, never a reason for `satisfied`.
 */
export function unreadableDoseOf(policy: CompiledPolicy, ev: PolicyEvaluation): string | undefined {
  for (const f of ev.facts) {
    if (f.value !== undefined || f.source === 'answer') continue;
    const def = policy.factsByName.get(f.name)?.def;
    if (def && def.type === 'decimal' && def.askable !== false && def.unit?.endsWith('/d')) return def.label ?? def.question ?? f.name;
  }
  return undefined;
}

/**
 * The determination for a policy evaluation (design.md §5): the one mapping from an outcome to CRD codes, reasons,
 * what is needed and the PAS review action. `authorization` is the order's approval when it is satisfied. An order
 * whose dose cannot be read says so (`unreadableDose`), so that no recorded approval answers for it.
 */
export function determinationOf(policy: CompiledPolicy, ev: PolicyEvaluation, authorization?: AuthorizationRecord, unnamed = false): Determination {
  if (ev.contradicted && ev.contradicted.length > 0) return chartReview(policy, ev.contradicted);
  const d = rulesDetermination(policy, ev, authorization, unnamed);
  // Only an order that is not satisfied can have an unreadable dose (the dose limits are then unknown); the loop is
  // skipped for the approvals, the common answer.
  const dose = d.outcome === 'satisfied' ? undefined : unreadableDoseOf(policy, ev);
  return dose ? { ...d, unreadableDose: dose } : d;
}

/**
 * A fact value in a reviewer's words: Yes/No, a number with its unit, a code as it is. A computed amount read from the
 * record is shown as the form showed it (display-precision.ts: 44.95 kg, not 44.951297...); an answer as it was given.
 */
function shownValue(policy: CompiledPolicy, fact: string, v: FactValue, read = false): string {
  if (typeof v === 'boolean') return v ? 'Yes' : 'No';
  const def = policy.factsByName.get(fact)?.def;
  if (typeof v !== 'number' || !def?.unit) return String(v);
  return `${read ? forDisplay(def, v) : v} ${def.unit}`;
}

/**
 * The determination of a response whose answers contradict what PriorPath read from the record at signing, when the
 * decision would rest on those answers (approved, or denied, only on them: docs/design.md §7 "Answers and the record"):
 * pended for clinical review (A4), never `satisfied` nor `not-covered`. Whatever the answers' `information-origin` (auto, override, manual): an answer
 * labelled `auto` that differs from the record was not read from it, and a clinician's override may well be right, but
 * a payer's reviewer decides it, not the rules. The reason and what is needed name each answer by its question, with
 * the record's value and the answer: the response stays as sent, so the reviewer reads both.
 */
function chartReview(policy: CompiledPolicy, contradicted: NonNullable<PolicyEvaluation['contradicted']>): Determination {
  const list = contradicted.map((c) => `${questionOf(policy, c.fact)} answered ${shownValue(policy, c.fact, c.answer)}; the record read at signing: ${shownValue(policy, c.fact, c.record, true)}`);
  return {
    outcome: 'documentation-needed',
    covered: 'covered',
    paNeeded: 'auth-needed',
    reasons: [{ text: `Pended for clinical review (${policy.file.source.id}): the answers this order's decision would rest on contradict the patient's record as read when the order was signed: ${list.join('; ')}` }],
    // What PAS stores as needed carries no clinical values (storage.ts PasSubmission.needed): the question alone.
    needed: contradicted.map((c) => `Clinical review: an answer contradicts the patient's record as read at signing: ${questionOf(policy, c.fact)}`),
    reviewAction: 'A4',
    summary: 'prior authorization pended for clinical review',
    clinicalReview: true,
  };
}

function rulesDetermination(policy: CompiledPolicy, ev: PolicyEvaluation, authorization?: AuthorizationRecord, unnamed = false): Determination {
  const source = policy.file.source.id;
  switch (ev.outcome) {
    case 'satisfied':
      // `satisfied` always carries its number (crd-ci-q5). Without one (none was issued: a "what if" call, CRD
      // [found-35]) the order still needs its prior authorization request, whose form the chart already answers.
      if (!authorization && unnamed) {
        // An order that cannot be named gets no number (docs/design.md §8 "An order that cannot be named"): what it
        // needs is its id, said to the EHR (the reason) and to PAS and its reviewer (what is needed).
        return {
          outcome: 'satisfied',
          covered: 'covered',
          paNeeded: 'auth-needed',
          reasons: [{ text: `Meets ${source}: ${ev.pathway!.text} (${ev.pathway!.cite}). ${UNNAMED_ORDER}` }],
          needed: [UNNAMED_ORDER],
          reviewAction: 'A4',
          summary: 'meets the policy; no authorization number for an order without an id',
        };
      }
      if (!authorization) {
        return {
          outcome: 'satisfied',
          covered: 'covered',
          paNeeded: 'auth-needed',
          questionnaire: policy.questionnaire,
          reasons: [
            {
              text: `Meets ${source}: ${ev.pathway!.text} (${ev.pathway!.cite}). No authorization number was issued on this request: request prior authorization with the payer's questionnaire, which the chart already answers.`,
            },
          ],
          needed: [],
          reviewAction: 'A4',
          summary: 'meets the policy; prior authorization to be requested',
        };
      }
      return {
        outcome: 'satisfied',
        covered: 'covered',
        paNeeded: 'satisfied',
        reasons: [
          { text: `Meets ${source}: ${ev.pathway!.text} (${ev.pathway!.cite})` },
          // A limit the order is over, held on the prescriber's justification: said, with its clause (review s42 F2).
          ...(ev.justifiedLimits ?? []).map((l) => ({ text: `Over the policy limit, accepted on the prescriber's justification: ${l.text} (${l.cite})` })),
        ],
        needed: [],
        reviewAction: 'A1',
        summary: `prior authorization satisfied: ${authorization?.number ?? ''}`.trim(),
        ...(authorization ? { authorization } : {}),
      };
    case 'documentation-needed': {
      const questions = ev.missingFacts.map((f) => questionOf(policy, f, ev));
      const undecided = unknownCites(ev, ['requirement', 'pathway', 'limit']);
      return {
        outcome: 'documentation-needed',
        covered: 'covered',
        paNeeded: 'auth-needed',
        questionnaire: policy.questionnaire,
        reasons: [
          questions.length ? stillToDocument(policy, ev, questions) : { text: `Prior authorization needed: documentation for ${undecided || source}` },
        ],
        needed: questions.length > 0 ? questions : [`Documentation of ${undecided || source}`],
        reviewAction: 'A4',
        summary: 'prior authorization needed, documentation required',
      };
    }
    case 'limit-exceeded': {
      const limits = ev.failed.map((r) => {
        const rule = policy.limits.find((l) => l.id === r.id);
        return `Clinical review: the order is outside the limit "${r.text}" (${r.cite})${rule?.justification ? `; the policy accepts ${rule.justification}` : ''}`;
      });
      const questions = ev.missingFacts.map((f) => questionOf(policy, f, ev));
      return {
        outcome: 'limit-exceeded',
        covered: 'covered',
        paNeeded: 'auth-needed',
        questionnaire: policy.questionnaire,
        // A limit's text states the rule ("Dose does not exceed 28 mcg per day…"): name it as the limit the order is
        // outside. What is still to document follows, in the words PAS pends for (`needed`): the adaptive form's
        // completion and the card name the missing document, not only the limit it would lift.
        reasons: [
          { text: `Outside the policy limit: ${ev.failed.map((r) => `${r.text} (${r.cite})`).join('; ')}` },
          ...(questions.length > 0 ? [stillToDocument(policy, ev, questions)] : []),
        ],
        needed: [...limits, ...questions],
        reviewAction: 'A4',
        summary: 'prior authorization needed, exceeds policy limit',
      };
    }
    case 'not-covered':
      return {
        outcome: 'not-covered',
        covered: 'not-covered',
        reasons: [{ text: notCoveredReason(policy, ev) }],
        needed: [],
        reviewAction: 'A3',
        summary: 'not covered',
      };
    case 'error':
      // Never a positive answer on an internal failure: indeterminate in CRD, pended for a person in PAS.
      return {
        outcome: 'error',
        covered: 'indeterminate',
        paNeeded: 'indeterminate',
        reasons: [{ code: 'technical', text: 'The payer could not evaluate this order automatically; submit for prior authorization review.' }],
        needed: [`Clinical review: ${source} could not be evaluated automatically for this request`],
        reviewAction: 'A4',
        summary: 'could not be evaluated',
      };
  }
}

/**
 * The determination for an order no Coverage of the payer is in force on (a call across a plan change, payer.ts
 * coverageOn): CRD [resp-45], member found but no active coverage, is `not-covered` with reason `no-active-coverage`
 * (a 200 answer, not an error), which CRD 2.0.1's code system lacks, so there the text alone says it
 * (coverage-information.ts). Never a denial on the order's record: the order is not judged at all.
 */
export function noActiveCoverageDetermination(why: string): Determination {
  return {
    outcome: 'not-covered',
    covered: 'not-covered',
    reasons: [{ code: 'no-active-coverage', text: `${why}. This order was not judged under the Coverage sent with it: sign it again with the member's Coverage in force on its start, or with a start a Coverage covers (an authorization already issued for it stands as issued).` }],
    needed: [],
    reviewAction: 'A3',
    summary: 'not covered: no active Coverage on the order date',
  };
}

/** The determination for an order no policy governs, from the payer's default answer (design.md §6 last bullet). */
export function defaultDetermination(answer: Exclude<Payer['defaultAnswer'], 'none'>): Determination {
  const paNeeded = answer.paNeeded ?? 'no-auth';
  // Anything short of "covered, no prior authorization" says why: a `conditional` answer needs a reason (crd-ci-q3 adds
  // info-needed OTH, and crd-ci-q6 asks for a reason with it), and a clinician told "not covered" is owed one.
  const plain = answer.covered === 'covered' && paNeeded === 'no-auth';
  const stated = answer.covered === 'not-covered' ? 'not covered' : `${answer.covered}, prior authorization ${paNeeded}`;
  return {
    outcome: 'default',
    covered: answer.covered,
    paNeeded,
    reasons: plain ? [] : [{ text: `No coverage policy of this payer in PriorPath governs this order; the payer's answer for such orders applies (${stated}).` }],
    needed: [],
    reviewAction: answer.covered === 'not-covered' ? 'A3' : answer.covered === 'covered' && paNeeded === 'no-auth' ? 'A1' : 'A4',
    summary: `${answer.covered}, ${paNeeded}`,
  };
}
