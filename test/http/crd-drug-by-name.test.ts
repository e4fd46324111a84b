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
 * F10): an order coded only by a local code, or by its text alone, is governed by the name it carries, never answered
 * with silence. Besponsa's NDC 00008-0100-01 is now listed (docs/terminology.md §5, from the FDA label's How Supplied
 * and DailyMed; review pharm s40 F5), so an order coded by it is Besponsa by code.
 */

const STORY = 'bcbsnc-inotuzumab-status-unknown';
const TODAY = '2026-11-16';
const NDC = 'http://hl7.org/fhir/sid/ndc';
const SIGN = '/cds-services/priorpath-order-sign';

const withDrug = (order: MedicationRequest, concept: MedicationRequest['medicationCodeableConcept']): MedicationRequest => ({ ...order, medicationCodeableConcept: concept });

describe('an order whose code no value set lists is governed by the drug name it carries (F10)', () => {
  const resources = storyResources(STORY);
  const order = storyOrder(STORY, resources);

  it.each(['0008-0100-01', '00008-0100-01', '00008010001'])('the Besponsa vial NDC %s is in the inotuzumab value set', (code) => {
    const content = testContent();
    expect(content.valueSets.contains(`${content.canonicalBase}/ValueSet/inotuzumab`, { system: NDC, code })).toBe(true);
  });

  it.each<[string, MedicationRequest['medicationCodeableConcept']]>([
    ['a local code with the display "BESPONSA (inotuzumab ozogamicin) 0.9 mg vial"', { coding: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.698288', code: '174501', display: 'BESPONSA (inotuzumab ozogamicin) 0.9 mg vial' }] }],
    ['a local code with the text "inotuzumab ozogamicin 0.9 mg vial"', { coding: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.698288', code: '174501' }], text: 'inotuzumab ozogamicin 0.9 mg vial' }],
    ['the text alone', { text: 'Besponsa 0.9 mg' }],
  ])('%s: auth-needed as by code, the reason saying the drug was recognised by its name', async (_name, concept) => {
    const { ext } = await signOne(resources, withDrug(order, concept), TODAY);
    expect(codeOf(ext, 'covered')).toBe('covered');
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(reasonText(ext)).toMatch(/The drug was recognised by its name \("(besponsa|inotuzumab)" in "[^"]+"\), not by a code the policy lists\./);
  });

  it.each<[string, MedicationRequest['medicationCodeableConcept']]>([
    ['the story: RxNorm SCD and J9229', undefined],
    ['the vial NDC 0008-0100-01 alone, no display or text', { coding: [{ system: NDC, code: '0008-0100-01' }] }],
  ])('by a listed code (%s) the reason says nothing about names', async (_name, concept) => {
    const { ext } = await signOne(resources, concept ? withDrug(order, concept) : order, TODAY);
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
