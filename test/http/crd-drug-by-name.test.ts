import type { MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp, testContent } from '../helpers/app.js';
import { codeOf, reasonText, signOne, unreachableEhr } from '../helpers/crd-answer.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/*
 * design.md §6 "Clinical readings": code lists are incomplete, so a drug order is matched by code and, as a fallback,
 * by ingredient or brand name in the coding display or text, and the reason says when a name decided (contract review
 * F10). Besponsa's NDC 00008-0100-01 is unverified (docs/terminology.md §5, §12) and stays out of the value set: an
 * order coded by it alone is governed by the name it carries, never answered with silence.
 */

const STORY = 'bcbsnc-inotuzumab-status-unknown';
const TODAY = '2026-11-16';
const NDC = 'http://hl7.org/fhir/sid/ndc';
const SIGN = '/cds-services/priorpath-order-sign';

const withDrug = (order: MedicationRequest, concept: MedicationRequest['medicationCodeableConcept']): MedicationRequest => ({ ...order, medicationCodeableConcept: concept });

describe('an order whose code no value set lists is governed by the drug name it carries (F10)', () => {
  const resources = storyResources(STORY);
  const order = storyOrder(STORY, resources);

  it('the unverified Besponsa NDC is not in the inotuzumab value set', () => {
    const content = testContent();
    expect(content.valueSets.contains(`${content.canonicalBase}/ValueSet/inotuzumab`, { system: NDC, code: '00008-0100-01' })).toBe(false);
  });

  it.each<[string, MedicationRequest['medicationCodeableConcept']]>([
    ['the NDC with the display "BESPONSA (inotuzumab ozogamicin) 0.9 mg vial"', { coding: [{ system: NDC, code: '00008-0100-01', display: 'BESPONSA (inotuzumab ozogamicin) 0.9 mg vial' }], text: 'Besponsa 0.9 mg' }],
    ['the NDC with no display, the text "Besponsa 0.9 mg"', { coding: [{ system: NDC, code: '00008010001' }], text: 'Besponsa 0.9 mg' }],
    ['a local code with the text "inotuzumab ozogamicin 0.9 mg vial"', { coding: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.698288', code: '174501' }], text: 'inotuzumab ozogamicin 0.9 mg vial' }],
    ['the text alone', { text: 'Besponsa 0.9 mg' }],
  ])('%s: auth-needed as by code, the reason saying the drug was recognised by its name', async (_name, concept) => {
    const { ext } = await signOne(resources, withDrug(order, concept), TODAY);
    expect(codeOf(ext, 'covered')).toBe('covered');
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(reasonText(ext)).toMatch(/The drug was recognised by its name \("(besponsa|inotuzumab)" in "[^"]+"\), not by a code the policy lists\./);
  });

  it('by a listed code (the story: RxNorm SCD and J9229) the reason says nothing about names', async () => {
    const { ext } = await signOne(resources, order, TODAY);
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(reasonText(ext)).not.toMatch(/recognised by its name/);
  });

  it.each<[string, MedicationRequest['medicationCodeableConcept']]>([
    // Another drug's name beside it: the order is of that drug (premedication), not of Besponsa.
    ['a local code, "dexamethasone premedication before Besponsa"', { coding: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.698288', code: '88012' }], text: 'dexamethasone 12 mg IV premedication before Besponsa' }],
    // A code a value set lists says which drug it is: cyclophosphamide (RxNorm 3002), whatever the text mentions.
    ['cyclophosphamide RxNorm 3002 with "after Besponsa" in the text', { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '3002', display: 'cyclophosphamide' }], text: 'cyclophosphamide after Besponsa' }],
  ])('%s: not governed by the name (silent, as for any drug the payer holds no policy for)', async (_name, concept) => {
    const { app } = buildApp({ today: TODAY, env: { CDS_AUTH: 'open', SANDBOX: 'off', NODE_ENV: 'development' }, fetchImpl: unreachableEhr });
    const res = await request(app).post(SIGN).send(orderSignRequest(resources, withDrug(order, concept))).expect(200);
    expect(res.body.systemActions).toBeUndefined();
    expect(res.body.cards).toEqual([]);
  });
});
