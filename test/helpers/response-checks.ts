import { expect } from 'vitest';
import { coverageInformationProblems, COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import type { Extension } from '@medplum/fhirtypes';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The CDS Hooks card-type code system CRD's Response Types value set includes (CRD [resp-5], [dev-5]). */
export const CARD_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/cdshooks-card-type';
/** Its selectable codes (HL7 davinci-crd CRDTempCodes.fsh "Card types", now in THO cdshooks-card-type). */
export const CARD_TYPE_CODES = [
  'coverage-info',
  'unsolicited-determ',
  'claim',
  'insurance',
  'limits',
  'network',
  'appropriate-use',
  'cost',
  'therapy-alternatives-opt',
  'therapy-alternatives-req',
  'clinical-reminder',
  'duplicate-therapy',
  'contraindication',
  'guideline',
  'off-guideline',
];

/** A card as it arrives (JSON, unchecked: every field is what the test asserts on). */
interface CardJson {
  summary: string;
  indicator: string;
  uuid: string;
  source: { label?: string; topic: { system?: string; code?: string } };
  suggestions?: { uuid: string; label: string; actions: { description?: string }[] }[];
  selectionBehavior?: string;
  links?: { type: string }[];
}

/** A system action as it arrives (JSON, unchecked). */
interface SystemActionJson {
  type: string;
  description?: string;
  resource: { resourceType: string; extension?: Extension[] };
}

/**
 * The shared response check every HTTP test runs: CDS Hooks card rules (summary < 140, source.label/topic, uuids,
 * selectionBehavior with suggestions, no empty arrays) and crd-ci-q1…q9 on every coverage-information extension.
 */
export function expectValidHookResponse(body: { cards?: unknown[]; systemActions?: unknown[] }, hook: string, version: '2.0' | '2.2' = '2.0'): Extension[] {
  expect(Array.isArray(body.cards)).toBe(true);
  for (const c of body.cards as CardJson[]) {
    expect(c.summary.length).toBeLessThan(140);
    expect(['info', 'warning', 'critical']).toContain(c.indicator);
    expect(c.uuid).toMatch(UUID);
    expect(c.source.label).toBeTruthy();
    expect(c.source.topic.system).toBeTruthy();
    expect(c.source.topic.code).toBeTruthy();
    // A topic in the card-type code system must be one of its codes (a made-up code there is an invalid coding).
    if (c.source.topic.system === CARD_TYPE_SYSTEM) expect(CARD_TYPE_CODES, `source.topic.code ${c.source.topic.code}`).toContain(c.source.topic.code);
    if (c.suggestions) {
      expect(c.suggestions.length).toBeGreaterThan(0);
      expect(c.selectionBehavior).toBeTruthy();
      for (const s of c.suggestions) {
        expect(s.uuid).toMatch(UUID);
        expect(s.label).toBeTruthy();
        for (const a of s.actions) expect(a.description).toBeTruthy();
      }
    }
    if (c.links) {
      expect(c.links.length).toBeGreaterThan(0);
      for (const l of c.links) expect(['absolute', 'smart']).toContain(l.type);
    }
    for (const v of Object.values(c)) expect(v === null || v === '' || (Array.isArray(v) && v.length === 0)).toBe(false);
  }
  const exts: Extension[] = [];
  for (const a of (body.systemActions ?? []) as SystemActionJson[]) {
    expect(a.type).toBe('update');
    expect(a.description).toBeTruthy();
    expect(['MedicationRequest', 'DeviceRequest', 'ServiceRequest', 'NutritionOrder', 'VisionPrescription']).toContain(a.resource.resourceType);
    const infos = (a.resource.extension ?? []).filter((e: Extension) => e.url === COVERAGE_INFO_URL);
    expect(infos.length).toBe(1);
    for (const e of infos) {
      expect(coverageInformationProblems(e, version), JSON.stringify(e)).toEqual([]);
      exts.push(e);
    }
  }
  if (hook === 'order-sign' && (body.systemActions ?? []).length > 0) expect(exts.length).toBeGreaterThan(0);
  return exts;
}
