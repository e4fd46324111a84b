import type {
  Condition,
  Coverage,
  Immunization,
  MedicationRequest,
  Observation,
  Patient,
  Practitioner,
  PractitionerRole,
  Resource,
} from '@medplum/fhirtypes';
import type { PatientRecord } from './evaluation-data.js';

/**
 * Sorts a flat list of resources into a PatientRecord, the shape policies read. Used for sandbox stories, case files
 * and the `policy explain` command; the hook path builds its record from prefetch instead.
 */
export function recordFromResources(resources: Resource[], orders: MedicationRequest[], userRef?: string): PatientRecord {
  const byReference = new Map<string, Resource>();
  for (const r of resources) if (r.id) byReference.set(`${r.resourceType}/${r.id}`, r);
  const orderIds = new Set(orders.map((o) => o.id));
  const of = <T extends Resource>(type: T['resourceType']) => resources.filter((r): r is T => r.resourceType === type);
  const user = userRef ? byReference.get(userRef) : undefined;
  return {
    patient: of<Patient>('Patient')[0],
    coverage: of<Coverage>('Coverage').find((c) => c.status === 'active'),
    users: user && (user.resourceType === 'PractitionerRole' || user.resourceType === 'Practitioner') ? [user as PractitionerRole | Practitioner] : [],
    conditions: of<Condition>('Condition'),
    observations: of<Observation>('Observation'),
    medications: of<MedicationRequest>('MedicationRequest').filter((m) => !orderIds.has(m.id)),
    immunizations: of<Immunization>('Immunization'),
    orders,
    byReference,
  };
}
