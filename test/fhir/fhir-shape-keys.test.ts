import { describe, expect, it } from 'vitest';
import { ShapeError, assertFhirResource, isKnownResourceType } from '../../src/fhir/fhir-shape.js';

/**
 * The shape check looks each property up in its type's element table (src/fhir/fhir-shape.ts, Maps built at load) and
 * checks for forbidden characters only the names the table does not know: what it refuses and where must not change.
 */
const patient = () => ({ resourceType: 'Patient', id: 'pt-1', name: [{ family: 'Reyes', given: ['Ana'] }], birthDate: '1992-06-19' });

const problem = (value: unknown): ShapeError | undefined => {
  try {
    assertFhirResource(value);
    return undefined;
  } catch (err) {
    if (err instanceof ShapeError) return err;
    throw err;
  }
};

describe('FHIR shape check by element table', () => {
  it('passes a resource of the FHIR shape, with an unknown element, and names Object.prototype members as unknown elements', () => {
    expect(problem(patient())).toBeUndefined();
    expect(problem({ ...patient(), hospitalNickname: 'x' })).toBeUndefined();
    const withMembers = JSON.parse('{"resourceType":"Patient","id":"pt-1","constructor":"x","toString":1,"__proto__":{"a":1}}') as unknown;
    expect(problem(withMembers)).toBeUndefined();
  });

  it('refuses a known element of the wrong kind, and a control character in a property name the table does not know, naming where', () => {
    expect(problem({ ...patient(), birthDate: 19920619 })?.path).toBe('Patient.birthDate');
    expect(problem({ ...patient(), name: { family: 'Reyes' } })).toBeUndefined(); // one object where FHIR has an array: read as one item
    expect(problem({ ...patient(), gender: ['female'] })?.path).toBe('Patient.gender');
    expect(problem({ ...patient(), birthDate: '1992-13-01' })?.message).toBe('Patient.birthDate: is not a valid FHIR date');
    expect(problem({ ...patient(), multipleBirthInteger: 1.5 })?.message).toBe('Patient.multipleBirthInteger: must be a whole number (integer)');
    const order = { resourceType: 'MedicationRequest', id: 'o-1', status: 'draft', intent: 'order', dispenseRequest: { numberOfRepeatsAllowed: -1 } };
    expect(problem(order)?.message).toBe('MedicationRequest.dispenseRequest.numberOfRepeatsAllowed: must not be negative (unsignedInt)');
    expect(problem({ ...order, dispenseRequest: { numberOfRepeatsAllowed: '2' } })?.message).toBe('MedicationRequest.dispenseRequest.numberOfRepeatsAllowed: must be a number (unsignedInt), not a string');
    expect(problem({ ...patient(), 'nick\u0001name': 'x' })?.path).toBe('Patient');
    expect(problem({ ...patient(), name: [{ family: 'Reyes', 'gi\u0000ven': ['Ana'] }] })?.path).toBe('Patient.name[0]');
  });

  it('knows the R4 resource types and nothing else', () => {
    expect(isKnownResourceType('MedicationRequest')).toBe(true);
    expect(isKnownResourceType('HumanName')).toBe(false);
    expect(isKnownResourceType('Resource')).toBe(false);
    expect(isKnownResourceType('constructor')).toBe(false);
    expect(isKnownResourceType('__proto__')).toBe(false);
  });
});
