import { randomUUID } from 'node:crypto';
import type { Bundle, MedicationRequest, Resource } from '@medplum/fhirtypes';

/** A searchset Bundle, as an EHR answers a prefetch search. */
export function searchset(resources: Resource[]): Bundle {
  return { resourceType: 'Bundle', type: 'searchset', total: resources.length, entry: resources.map((r) => ({ fullUrl: `http://ehr.example.org/fhir/${r.resourceType}/${r.id}`, resource: r })) };
}

/** A realistic order-sign request for a story's resources: full prefetch built from them. */
export function orderSignRequest(resources: Resource[], order: MedicationRequest, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const of = (t: string) => resources.filter((r) => r.resourceType === t);
  const patient = of('Patient')[0];
  const role = of('PractitionerRole')[0];
  const orderIds = new Set([order.id]);
  return {
    hook: 'order-sign',
    hookInstance: randomUUID(),
    fhirServer: 'http://ehr.example.org/fhir',
    fhirAuthorization: { access_token: 'ehr-token-1', token_type: 'Bearer', expires_in: 300, scope: 'patient/*.read', subject: 'priorpath', patient: patient.id },
    context: {
      userId: role ? `PractitionerRole/${role.id}` : 'Practitioner/unknown',
      patientId: patient.id,
      draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: order }] },
    },
    prefetch: {
      patient,
      coverage: searchset(of('Coverage')),
      ...(role ? { user: role } : {}),
      conditions: searchset(of('Condition')),
      observations: searchset(of('Observation')),
      medications: searchset(of('MedicationRequest').filter((m) => !orderIds.has(m.id))),
      immunizations: searchset(of('Immunization')),
    },
    ...extra,
  };
}
