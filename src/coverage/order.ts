import type { DeviceRequest, MedicationRequest, NutritionOrder, Resource, ServiceRequest, VisionPrescription } from '@medplum/fhirtypes';

/** The request resources an order can be (CRD hooks.md "order-sign", PAS Claim.item requestedService): policies govern MedicationRequests. */
export type OrderResource = MedicationRequest | DeviceRequest | ServiceRequest | NutritionOrder | VisionPrescription;

export const ORDER_TYPES = new Set(['MedicationRequest', 'DeviceRequest', 'ServiceRequest', 'NutritionOrder', 'VisionPrescription']);

/** True for a resource CRD treats as an order. */
export const isOrder = (r: Resource | undefined): r is OrderResource => !!r && ORDER_TYPES.has(r.resourceType);
