import { describe, expect, it } from 'vitest';
import { HCPCS_SYSTEM, NDC_SYSTEM, ValueSetIndex, canonicalIcd10Code, normalizeNdc } from '../../src/fhir/value-sets.js';

const vs = new ValueSetIndex();
vs.add({
  resourceType: 'ValueSet',
  status: 'active',
  url: 'https://priorpath.dev/fhir/ValueSet/blinatumomab',
  expansion: {
    timestamp: '2026-11-01',
    contains: [
      { system: NDC_SYSTEM, code: '55513016001' },
      { system: HCPCS_SYSTEM, code: 'J9039' },
      { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1597262' },
    ],
  },
});
const url = 'https://priorpath.dev/fhir/ValueSet/blinatumomab';

const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
const allUrl = 'https://priorpath.dev/fhir/ValueSet/all-test';
vs.add({
  resourceType: 'ValueSet',
  status: 'active',
  url: allUrl,
  expansion: { timestamp: '2026-11-01', contains: [{ system: ICD10CM, code: 'C91.00' }, { system: ICD10CM, code: 'C91.01' }] },
});

describe('local value sets', () => {
  it.each(['C91.00', 'C9100', 'c91.00', ' c9100 '])('matches ICD-10-CM C91.00 written %j', (code) => {
    expect(vs.contains(allUrl, { system: ICD10CM, code })).toBe(true);
  });

  it('reads an ICD-10 code without its dot by the dot after the category, and nothing else as ICD-10', () => {
    expect(canonicalIcd10Code('C9102')).toBe('C91.02');
    expect(canonicalIcd10Code('Z5111')).toBe('Z51.11');
    expect(canonicalIcd10Code('C83')).toBe('C83');
    expect(canonicalIcd10Code('C83.38')).toBe('C83.38');
    expect(canonicalIcd10Code('91857003')).toBe('91857003');
    expect(vs.contains(allUrl, { system: ICD10CM, code: 'C910' })).toBe(false);
    expect(vs.contains(allUrl, { system: 'http://snomed.info/sct', code: 'C9100' })).toBe(false);
  });

  it.each(['55513-160-01', '55513-0160-01', '55513016001', '5551316001'])('matches the Blincyto kit NDC written %s', (code) => {
    expect(vs.contains(url, { system: NDC_SYSTEM, code })).toBe(true);
  });

  it.each([
    'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
    'http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
    'https://bluebutton.cms.gov/resources/codesystem/hcpcs',
  ])('matches J9039 under the HCPCS system %s', (system) => {
    expect(vs.contains(url, { system, code: 'J9039' })).toBe(true);
  });

  it('does not match another drug, another system, or the stabilizer vial', () => {
    expect(vs.contains(url, { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1942954' })).toBe(false);
    expect(vs.contains(url, { system: 'http://snomed.info/sct', code: '1597262' })).toBe(false);
    expect(vs.contains(url, { system: NDC_SYSTEM, code: '55513-155-01' })).toBe(false);
  });

  // docs/terminology.md §5: NDCs arrive product-only too (labeler-product, no package); contract review F6.
  it.each(['55513-160', '55513-0160', '555130160', '55513160'])('matches the product-level NDC %j against the packages the set lists of that product', (code) => {
    expect(vs.contains(url, { system: NDC_SYSTEM, code })).toBe(true);
  });

  it.each(['55513-155', '55513-0155', '555130155', '55513-16', '0008-0100', '5551-3160'])('does not match the product-level NDC %j of another product', (code) => {
    expect(vs.contains(url, { system: NDC_SYSTEM, code })).toBe(false);
  });

  it('normalises 10-digit hyphenated NDCs to 11 digits', () => {
    expect(normalizeNdc('0008-0100-01')).toBe('00008010001');
    expect(normalizeNdc('55513-160-01')).toBe('55513016001');
    expect(normalizeNdc('12345-6789-1')).toBe('12345678901');
    expect(normalizeNdc('not an ndc')).toBeUndefined();
  });
});
