import type { OrderKey, OrderRecord, Storage } from '../storage/storage.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import type { PolicyEvaluation, Tri } from '../policies/evaluate-policy.js';

/**
 * What a reviewer's approval covers (docs/design.md §8 "What an approval covers"): the reviewed PAS request holds what
 * the reviewer approved, so every edge can tell whether the order as it now stands asks more of that approval. PAS
 * compares a later request's items (pas/approval-covers.ts), signing compares the order as signed
 * (coverage/order-record.ts settleOrderDecisions) and DTR the order as a response's answers evaluate it
 * (dtr/determination.ts orderRecordOf); all read the limits the same way, here.
 */

/** A limit as judged: its result and the facts it read with their values (a PAS item's criterion has this shape). */
export interface LimitFinding {
  id: string;
  kind?: string;
  result: Tri;
  evidence?: { fact: string; value?: boolean | number | string }[];
}

/** What the reviewed request's item for the order recorded: its criteria and the amounts its limits ask for. */
export interface ReviewedItem {
  order?: OrderKey;
  criteria: LimitFinding[];
  /** The facts of its limits that are amounts the order asks for (CompiledFact.asked); absent: compare every fact. */
  askedAmounts?: string[];
}

/**
 * Whether the limits `now` ask no more than the reviewed ones `was`: every limit exceeded now was exceeded in the
 * reviewed item too, and of its facts each amount the order asks for (`asked`: the dose, the starting dose, the
 * cycles requested, the amount dispensed) is at most the reviewed value. What the order does not ask (the patient's
 * weight or BSA, a lab value, the cycles already given, a date) is not compared: a heavier patient or a later course
 * start asks nothing more. Without `asked` (decisions stored before it was kept) every fact is compared, as then.
 */
export function limitsAskNoMore(now: LimitFinding[], was: LimitFinding[], asked: string[] | undefined): boolean {
  for (const limit of now) {
    if (limit.kind !== 'limit' || limit.result !== false) continue;
    const then = was.find((c) => c.id === limit.id);
    // The reviewer did not grant the order over this limit.
    if (then?.result !== false) return false;
    for (const e of limit.evidence ?? []) {
      if (asked && !asked.includes(e.fact)) continue;
      const before = then.evidence?.find((x) => x.fact === e.fact)?.value;
      if (e.value === before) continue;
      if (typeof e.value === 'number' && typeof before === 'number' && e.value <= before) continue;
      return false;
    }
  }
  return true;
}

/** The limits of an evaluation as findings: each limit's result and the values of the facts it reads. */
export function limitFindings(policy: CompiledPolicy, ev: PolicyEvaluation): LimitFinding[] {
  const values = new Map(ev.facts.map((f) => [f.name, f.value]));
  return ev.rules
    .filter((r) => r.kind === 'limit')
    .map((r) => {
      const facts = policy.limits.find((l) => l.id === r.id)?.facts ?? [];
      return { id: r.id, kind: r.kind, result: r.result, evidence: facts.map((fact) => ({ fact, value: values.get(fact) as boolean | number | string | undefined })) };
    });
}

/** The amounts an order asks for among a policy's limit facts (CompiledFact.asked), as PAS keeps them on an item. */
export function askedAmountsOf(policy: CompiledPolicy): string[] {
  return [...new Set(policy.limits.flatMap((l) => l.facts))].filter((f) => policy.factsByName.get(f)?.asked);
}

/**
 * The reviewed request's item for the order whose record a reviewer approved: undefined when the approval on the
 * record is not a reviewer's, or its request or item cannot be read.
 */
export async function reviewedItemOf(storage: Storage, record: OrderRecord): Promise<{ item: ReviewedItem; submissionId: string; requestBundle: Record<string, unknown> } | undefined> {
  const approvedBy = [...record.history].reverse().find((h) => h.state === 'approved');
  if (approvedBy?.source !== 'review' || !approvedBy.submissionId) return undefined;
  const reviewed = await storage.getPasSubmission(approvedBy.submissionId).catch(() => undefined);
  const items = (reviewed?.detail as { items?: ReviewedItem[] } | undefined)?.items ?? [];
  const item = items.find((i) => i.order && sameOrder(i.order, record));
  return item && reviewed ? { item, submissionId: approvedBy.submissionId, requestBundle: reviewed.requestBundle } : undefined;
}

/**
 * The number of the reviewer's approval on the order's record that the order as now evaluated asks more of, if it does
 * (docs/design.md §8 "What an approval covers"): only when a limit is exceeded now is the reviewed PAS request's item
 * read, and the order asks more when a limit it exceeds was held in the reviewed item, or one of that limit's amounts
 * the order asks for (the dose, the cycles) is larger than the reviewer saw ({@link limitsAskNoMore}). Signing
 * (coverage/order-record.ts settleOrderDecisions) and DTR (a response's determination, dtr/determination.ts) read a
 * reviewer's approval this way, as PAS does its items: the order is then answered as evaluated, a limit review naming
 * the approval ({@link beyondApproval}), and the approval stands (the reviewer may have granted a limit on purpose).
 * Undefined when the record holds no reviewer's approval, or the order asks no more of it.
 */
export async function beyondReviewedApproval(storage: Storage, policy: CompiledPolicy, evaluation: PolicyEvaluation, record: OrderRecord | null | undefined): Promise<string | undefined> {
  if (record?.state !== 'approved' || !record.authorization) return undefined;
  if (!evaluation.rules.some((r) => r.kind === 'limit' && r.result === false)) return undefined;
  const reviewed = await reviewedItemOf(storage, record);
  if (!reviewed || limitsAskNoMore(limitFindings(policy, evaluation), reviewed.item.criteria, askedAmountsOf(policy))) return undefined;
  return record.authorization.number;
}

/**
 * What a PAS request (or a signed order) asking more than its order's reviewed approval needs, in the reviewer's and
 * the clinician's words.
 */
export function beyondApproval(number: string, asking: 'request' | 'order' = 'request'): string {
  return `Clinical review: the ${asking} asks more than authorization ${number} of this order covers (a higher dose, more cycles or a larger quantity than approved); that approval stands for what it covers`;
}

const sameOrder = (a: OrderKey, b: OrderKey) => a.payer === b.payer && a.patientId === b.patientId && a.orderRef === b.orderRef && a.drug === b.drug;
