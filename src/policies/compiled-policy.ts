import type { CompiledExpression } from '../fhir/fhirpath.js';
import type { FactDefinition, PolicyFile } from './policy-schema.js';

/** A fact ready to evaluate: its expression parsed and its dependencies on other facts known. */
export interface CompiledFact {
  name: string;
  def: FactDefinition;
  expr: CompiledExpression;
  /** Facts this one reads as `%name`. */
  deps: string[];
  /**
   * What the fact's value is a function of, besides the order's data: its type, unit and expression, the drug when
   * it reads `%policyDrug`, and the share keys of the facts it reads. Two policies whose facts have the same key get
   * the same value over the same data, so it is evaluated once (see `FactMemo`); a policy that overrides a library
   * fact it reads gets a different key.
   */
  shareKey: string;
  /** Whether the value depends on the order date: it reads `%orderDate`/`%orderDateTime`, is a date, or reads such a fact. */
  dated: boolean;
  /**
   * For a fact computed only from other facts (and the order date): the variables it reads. Its value is then a
   * function of their values alone, remembered across requests (see `evaluate-policy.ts`). Undefined for facts that
   * read the record.
   */
  pureOf?: string[];
  /**
   * For facts over drug value sets that also match by name: the drug name when an order belongs to one of those sets
   * by its name only (no listed code), so the reason can say a name decided (design.md §6 "Clinical readings").
   */
  nameOnly?: (order: unknown) => string | undefined;
  /**
   * An amount the order asks for: a number (decimal or integer) its expression reads from `%order` (the dose, the
   * starting dose, the cycles requested, the amount dispensed). A later PAS request asking more of it than a reviewer
   * approved is not covered by that approval (approval-covers.ts); the patient's and the record's facts (a weight, a
   * lab value, the cycles already given, a date) are not asked by the request and are not compared.
   */
  asked?: true;
  /** `askWhen` compiled over the facts: a question whose condition is false is not asked (hidden in DTR). */
  askWhen?: CompiledExpression;
  /**
   * The facts `askWhen` reads, with the facts those are computed from (set at load with `askWhen`): `$next-question`
   * asks the unknown askable ones first while the condition is open (next-question.ts gatesFirst), without reading the
   * condition's text again each round (review s41 F6).
   */
  askWhenReads?: string[];
  /**
   * The fact is read from the order (its expression reads `%order`: the dose, the cycles requested, the treatment
   * phase). Where the order states it, the order's value stands over a DTR or PAS answer (docs/design.md §7 "Answers
   * and the record").
   */
  readsOrder?: true;
}

export type RuleKind = 'requirement' | 'pathway' | 'limit';

/** A requirement, pathway or limit with its parsed condition and the facts it reads. */
export interface CompiledRule {
  kind: RuleKind;
  id: string;
  /** Over the facts only (model `none`, no variables): its result is a function of the values of `facts`. */
  when: CompiledExpression;
  cite: string;
  text: string;
  facts: string[];
  /** Requirement: reason when false. Limit: the payer's accepted justification. */
  notCovered?: string;
  /** Requirement: its failure is a use outside the policy, so the not-covered reason names the off-label route. */
  outsideUse?: true;
  justification?: string;
  /**
   * Limit: the facts whose known values the text of the limit names when it is exceeded, each after its words (the
   * file's `names`), so that a reason states what the record showed, e.g. the relapse date and the order's phase.
   */
  names?: { fact: string; words: string }[];
  /**
   * Pathway: the approval length, and the date fact the period is counted from (`from`: the period ends that date +
   * the length; without it, or with the fact unknown, the order's start + the length). `covers`: the date fact of the
   * last day the order needs covered; a period from `from` ending before it is treated as ended (`afterEnd`).
   */
  approval?: { days?: number; weeks?: number; months?: number; from?: string; covers?: string; afterEnd?: 'review' | 'order' };
  /** Pathway: the most cycles one approval covers (per request); more is a limit exceeded. */
  cycles?: number;
  /** Limit: the highest allowed dose, and its per-m² form for an order written per m² (design.md §6 "Limits"). */
  propose?: { value: CompiledExpression; unit: string; display?: string; perM2?: { value: CompiledExpression; unit: string; display?: string } };
  /**
   * Limit on the amount the order asks for (the policy's `requestedAmount`): the dispense quantity at the limit, in the
   * UCUM `unit`, that the Propose Alternate Request card offers (the limit's `propose.quantity`; design.md §4, §6 "Limits").
   */
  proposeQuantity?: { value: CompiledExpression; unit: string; display?: string };
  /**
   * Limit with a proposal: the facts its proposal's expressions read (`propose.value`, `propose.perM2.value`,
   * `propose.quantity.value`), as the loader compiled them: the alternate order a CRD card offers is computed from them.
   */
  proposeFacts?: string[];
  /**
   * Limit: true when the limit concerns this patient (its `A` in `A implies B` or `iif(A, B, true)`), so a limit that
   * holds only because it does not apply is told apart from one within its bound (limit-applicability.ts). Absent for
   * a limit on every patient.
   */
  applies?: CompiledExpression;
  /** The facts `applies` reads. */
  appliesFacts?: string[];
  /**
   * Pathway: its top-level conjuncts (`A and B and C`), each compiled over the facts, so a not-covered reason can name
   * the ones that failed (pathway-failures.ts). One conjunct when the condition is not such a chain.
   */
  conjuncts?: { text: string; when: CompiledExpression; facts: string[] }[];
}

/** A policy file after validation and compilation (design.md §5). */
export interface CompiledPolicy {
  file: PolicyFile;
  path: string;
  /** Facts in dependency order: every fact comes after the facts it reads. */
  facts: CompiledFact[];
  factsByName: Map<string, CompiledFact>;
  requirements: CompiledRule[];
  pathways: CompiledRule[];
  limits: CompiledRule[];
  /** Attachment items with their `askWhen` compiled. */
  /** `proves`: the attestations this document proves (policy-schema.ts attachmentSchema). */
  attachments: { linkId: string; text: string; cite: string; askWhen?: CompiledExpression; askWhenText?: string; proves?: string[] }[];
  /**
   * The fact that is the amount the order asks for (the file's `requestedAmount`): a number fact reading `%order` that a
   * limit judges. Set only when the policy judges amounts; PAS then judges and certifies a Claim item's quantity
   * (design.md §8 "What PAS certifies"), and otherwise certifies the drug without one.
   */
  requestedAmount?: string;
  /** Canonical URL of the policy's DTR Questionnaire, with `|version`. */
  questionnaire: string;
}
