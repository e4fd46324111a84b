import type { Quantity } from '@medplum/fhirtypes';
import type { OrderRecord, Storage } from '../storage/storage.js';
import { latestEvent } from '../storage/storage.js';
import { asksMoreThanAnswered, limitsAskNoMore, reviewedItemOf } from '../coverage/reviewed-approval.js';
import type { ItemDecision } from './adjudicate.js';
import { parsePasRequest } from './request-bundle.js';

/**
 * Whether an order's approval covers what a PAS item asks (docs/design.md §8 "What an approval covers"), before the
 * item takes that approval as its answer (A1 with the order's number, and the item's quantity as the authorized
 * detail):
 * - an approval the rules gave (at signing, in DTR or in PAS) was given with every limit held, so it covers an item
 *   pended for documentation it supplied, never an item over a limit (design.md §5 row 3: a limit exceeded is a
 *   clinical review, never an approval by the rules). A request pended for 56 mcg/day stays pended when the order is
 *   approved at signing at 28; nor one given in DTR or PAS, on answers, an item whose order now asks more cycles or a
 *   higher dose than it was approved for ({@link asksMoreThanAnswered});
 * - a reviewer's approval covers what the reviewed request asked: an item asks no more when every limit it exceeds
 *   was exceeded in the reviewed item too, each amount of that limit the order asks for (the dose, the cycles) at
 *   most what the reviewer saw, and its Claim quantity (kept on the item's decision) at most the reviewed one in the
 *   same unit. A resend, or a request asking the same or less, takes the approval; one asking more is pended for
 *   review.
 */
export async function approvalCovers(
  storage: Storage,
  item: ItemDecision,
  record: OrderRecord,
  /** The item's Claim quantity when its decision does not hold one (stored before quantities were kept). */
  askedBefore?: () => Quantity | undefined,
): Promise<boolean> {
  const approvedBy = latestEvent(record, 'approved');
  if (approvedBy && (approvedBy.source === 'dtr' || approvedBy.source === 'pas')) return !overLimit(item) && !(await asksMoreThanAnswered(storage, item, record, approvedBy));
  const reviewed = await reviewedItemOf(storage, record);
  if (!reviewed) return !overLimit(item);
  const was = reviewed.item as unknown as ItemDecision;
  return asksNoMoreThan(item, claimQuantity(item, askedBefore), was, claimQuantity(was, () => (reviewed.requestBundle ? quantityOf(reviewed.requestBundle, was.sequence) : undefined)));
}

/**
 * An item's Claim quantity: the one its decision holds (adjudicate.ts `ItemDecision.quantity`), else, for a decision
 * stored before quantities were kept, what `askedBefore` reads from its request (so what was stored keeps its meaning).
 */
export function claimQuantity(item: ItemDecision, askedBefore?: () => Quantity | undefined): Quantity | undefined {
  if (item.quantity !== undefined) return item.quantity ?? undefined;
  return askedBefore?.();
}

/** An item over a limit: its outcome, or any limit found false (a limit review, design.md §5 row 3). */
export function overLimit(item: ItemDecision): boolean {
  return item.outcome === 'limit-exceeded' || item.criteria.some((c) => c.kind === 'limit' && c.result === false);
}

/**
 * The Claim item quantity of a stored request's item (by sequence); undefined when it states none or cannot be read.
 * Only for decisions stored before they held their quantity ({@link claimQuantity}).
 */
export function quantityOf(requestBundle: Record<string, unknown>, sequence: number): Quantity | undefined {
  try {
    return parsePasRequest(requestBundle).items.find((i) => i.sequence === sequence)?.item.quantity;
  } catch {
    return undefined;
  }
}

/**
 * Whether `item` (with its Claim quantity) asks no more than the reviewed item `was` (see {@link approvalCovers}): of
 * each limit it exceeds, only the amounts the order asks for are compared (ItemDecision.askedAmounts: the dose, the
 * starting dose, the cycles requested, the amount dispensed), a larger one asking more. What the request does not ask
 * (the patient's weight or BSA, a lab value, the cycles already given, a date) is not compared: a heavier patient or a
 * later course start asks nothing more. Decisions stored before the asked amounts were kept compare every fact, as then.
 */
function asksNoMoreThan(item: ItemDecision, quantity: Quantity | undefined, was: ItemDecision, wasQuantity: Quantity | undefined): boolean {
  if (!limitsAskNoMore(item.criteria, was.criteria, item.askedAmounts ?? was.askedAmounts)) return false;
  if (quantity?.value === undefined) return true;
  if (wasQuantity?.value === undefined) return false;
  const unit = (q: Quantity) => q.code ?? q.unit;
  return unit(quantity) === unit(wasQuantity) && quantity.value <= wasQuantity.value;
}

