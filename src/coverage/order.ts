import type { DeviceRequest, MedicationRequest, NutritionOrder, Resource, ServiceRequest, VisionPrescription } from '@medplum/fhirtypes';

/** The request resources an order can be (CRD hooks.md "order-sign", PAS Claim.item requestedService): policies govern MedicationRequests. */
export type OrderResource = MedicationRequest | DeviceRequest | ServiceRequest | NutritionOrder | VisionPrescription;

export const ORDER_TYPES = new Set(['MedicationRequest', 'DeviceRequest', 'ServiceRequest', 'NutritionOrder', 'VisionPrescription']);

/** True for a resource CRD treats as an order. */
export const isOrder = (r: Resource | undefined): r is OrderResource => !!r && ORDER_TYPES.has(r.resourceType);

/** Request statuses (R4 request-status, medicationrequest-status) of an order that will no longer be carried out. */
const ENDED_STATUSES = new Set(['entered-in-error', 'cancelled', 'revoked', 'stopped', 'completed']);
/** Request intents (R4 request-intent) that authorise no one to act: a suggestion, a plan, an option of a group. */
const NOT_ORDER_INTENTS = new Set(['proposal', 'plan', 'option']);

/**
 * True when an order is a request someone will act on, so coverage and prior authorization apply to it (design.md §4
 * "For every governed order in scope"): not ended or entered in error (a draft, or an active or on-hold order being
 * revised or dispatched, is), its intent an order of some kind, and not a do-not-perform request. CRD answers only
 * these: an authorization number is never issued for an order that was cancelled or entered in error.
 */
export function isActionableOrder(order: OrderResource): boolean {
  const o = order as { status?: string; intent?: string; doNotPerform?: boolean };
  return !ENDED_STATUSES.has(String(o.status)) && !NOT_ORDER_INTENTS.has(String(o.intent)) && o.doNotPerform !== true;
}
