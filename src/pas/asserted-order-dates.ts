import type { MedicationRequest } from '@medplum/fhirtypes';
import { assertionSpeaksFor } from '../coverage/assertion-speaks-for.js';
import { coverageAssertionIds, responseContext } from '../coverage/evaluate-response.js';
import { localReference } from '../fhir/references.js';
import type { AssertionRecord, Storage } from '../storage/storage.js';
import { isSigningAssertion, recordFactsOf } from '../coverage/assertion-speaks-for.js';
import type { PasRequest } from './request-bundle.js';

/** At most this many coverage-assertion-ids are read per resource (an order carries one per CRD call that answered it). */
const IDS_PER_RESOURCE = 5;

/** The date CRD judged an order on, and the start the order stated then (`AssertionRecord.orderStart`), if it did. */
export interface AssertedOrderDate {
  orderDate: string;
  orderStart?: string;
}

const assertedDateOf = (a: AssertionRecord): AssertedOrderDate => ({
  orderDate: a.orderDate!,
  ...(a.orderStart && a.orderStart === a.orderDate ? { orderStart: a.orderStart } : {}),
});

/**
 * The dates CRD judged the request's orders on, by order reference (`MedicationRequest/<id>`), from the CRD
 * assertions the request names: an order's coverage-information (the EHR keeps CRD's answer on the order), else a
 * QuestionnaireResponse's (DTR 2.2). PAS judges an order that states no start of its own on that date, as CRD and DTR
 * did (design.md §7 "One date per order"), so its approval or review period starts where CRD's would. An assertion
 * dates an order only where it speaks for it ({@link assertionSpeaksFor}, design.md §8): recorded for the request's
 * patient, and for this order (or for no order, when the order or its response carries it); one that cannot be read
 * leaves the order to its own date (an id is only a lookup key). With the date, the start the order stated at signing:
 * a PAS copy of the order that drops its start is judged on it, windows and all (design.md §6 "Order date").
 */
export async function assertedOrderDates(storage: Storage, req: PasRequest): Promise<Map<string, AssertedOrderDate>> {
  const out = new Map<string, AssertedOrderDate>();
  const patientId = req.patient.id;
  if (!patientId) return out;
  const patientIds = new Set([patientId]);
  const read = async (id: string): Promise<AssertionRecord | undefined> => {
    const a = await storage.getAssertion(id).catch(() => undefined);
    return a?.orderDate ? a : undefined;
  };
  const orders = req.resources.filter((r): r is MedicationRequest => r.resourceType === 'MedicationRequest' && !!r.id);
  for (const order of orders) {
    const ref = `MedicationRequest/${order.id}`;
    const carriedIds = coverageAssertionIds(order).slice(0, IDS_PER_RESOURCE);
    for (const id of carriedIds) {
      const a = await read(id);
      if (a && assertionSpeaksFor(a, { patientIds, orderRef: ref, carriedIds })) {
        out.set(ref, assertedDateOf(a));
        break;
      }
    }
  }
  // A response's assertion dates the order it was recorded for, else the order the response names.
  for (const qr of req.questionnaireResponses) {
    const carriedIds = coverageAssertionIds(qr).slice(0, IDS_PER_RESOURCE);
    for (const id of carriedIds) {
      const a = await read(id);
      const ref = a && (localReference(a.orderRef) ?? responseContext(qr).orders[0]);
      if (a && ref && !out.has(ref) && assertionSpeaksFor(a, { patientIds, orderRef: ref, carriedIds })) out.set(ref, assertedDateOf(a));
    }
  }
  return out;
}

/** The key of {@link signingFacts}' map: an order's reference and the drug of its record. */
export const signingFactsKey = (orderRef: string, drug: string) => `${orderRef} ${drug}`;

/**
 * What PriorPath read from the record and the order when the request's orders were signed: the facts of the CRD
 * assertion each order's record holds from its latest signing under this payer, less those the order's earlier DTR
 * answers gave (`recordFactsOf`; docs/design.md §7 "Answers and the record"), by {@link signingFactsKey}. A QuestionnaireResponse answer that contradicts one of them and alone would
 * approve the order pends it for clinical review, in PAS as in DTR (§8: one decision per order). Read only for a
 * request that carries a response; an order never signed here has none.
 */
export async function signingFacts(storage: Storage, req: PasRequest, payer: string): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  const patientId = req.patient.id;
  if (!patientId || req.questionnaireResponses.length === 0) return out;
  const orderRefs = req.resources.filter((r): r is MedicationRequest => r.resourceType === 'MedicationRequest' && !!r.id).map((r) => `MedicationRequest/${r.id}`);
  if (orderRefs.length === 0) return out;
  const records = await storage.findOrderRecords({ payer, patientId, orderRefs });
  for (const record of records) {
    const signed = [...record.history].reverse().find((e) => e.source === 'crd' && e.assertionId);
    const a = signed?.assertionId ? await storage.getAssertion(signed.assertionId).catch(() => undefined) : undefined;
    if (a && a.patientId === patientId && isSigningAssertion(a)) out.set(signingFactsKey(record.orderRef, record.drug), recordFactsOf(a));
  }
  return out;
}
