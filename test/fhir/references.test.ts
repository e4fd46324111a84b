import { describe, expect, it } from 'vitest';
import { localReference } from '../../src/fhir/references.js';

describe('localReference (FHIR R4 literal references)', () => {
  it.each([
    ['MedicationRequest/mr-1', 'MedicationRequest/mr-1'],
    ['https://ehr.example.org/fhir/MedicationRequest/mr-1', 'MedicationRequest/mr-1'],
    ['https://ehr.example.org/fhir/Patient/pt.7/_history/3', 'Patient/pt.7'],
    ['Organization/payer-centene/_history/1', 'Organization/payer-centene'],
  ])('reads %s as %s', (ref, expected) => {
    expect(localReference(ref)).toBe(expected);
  });

  it.each(['#med-1', 'urn:uuid:0f3c5b2e-7a40-4c8e-9f51-2d6a1b7e9c10', '', undefined])('names no resource by type and id in %j', (ref) => {
    expect(localReference(ref)).toBeUndefined();
  });
});
