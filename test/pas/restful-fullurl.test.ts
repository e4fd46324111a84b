import type { Bundle, BundleEntry, Claim, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { storyResources } from '../helpers/stories.js';
import { claimResponseOf, pasAppOnDisk, reviewActions, storyBundle } from './pas-fixtures.js';

/**
 * A RESTful fullUrl names its entry's resource (FHIR R4 Bundle.entry.fullUrl: one that is not a urn:uuid "SHALL NOT
 * disagree with the id in the resource"): an order sent as `…/MedicationRequest/123` without `id` is the order
 * `MedicationRequest/123`, which the Claim's references resolve to and whose record keeps its one decision
 * (docs/design.md §8 "An order that cannot be named"); an id that disagrees with its fullUrl is a 400 naming the entry.
 * The story: an MMM member's Blincyto order for Ph-positive B-ALL with a TKI, certified (A1) as sent.
 */
const STORY = 'mmm-ph-positive-tki';
const X12 = 'https://codesystem.x12.org/005010/306';
const pas = pasAppOnDisk('restful-fullurl');

/** The story's request with its order under `orderId`, the order entry changed by `change`. */
function withOrderEntry(orderId: string, change: (e: BundleEntry<MedicationRequest>, claim: Claim) => void): Bundle {
  const bundle = storyBundle(STORY, { code: 'rxnorm', orderId });
  const entry = bundle.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest' && e.resource.id === orderId) as BundleEntry<MedicationRequest>;
  change(entry, bundle.entry![0].resource as Claim);
  return bundle;
}

const patientId = storyResources(STORY).find((r) => r.resourceType === 'Patient')!.id!;
const recordOf = (orderId: string) => pas.storage.getOrderRecord({ payer: 'mmm', patientId, orderRef: `MedicationRequest/${orderId}`, drug: 'blinatumomab' });

describe('a RESTful fullUrl names its resource (FHIR Bundle.entry.fullUrl; s45 open point)', () => {
  it('resolves the Claim item\'s MedicationRequest/<id> to an order entry that carries only its fullUrl, and certifies it on the order\'s record', async () => {
    const bundle = withOrderEntry('order-fullurl-only', (e) => delete e.resource!.id);
    const res = await pas.submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.preAuthRef).toMatch(/^PA-MMM-/);
    expect((await recordOf('order-fullurl-only'))?.authorization?.number).toBe(cr.preAuthRef);
  });

  it('names the order, not "cannot be named", when the Claim refers to it by its absolute fullUrl', async () => {
    const bundle = withOrderEntry('order-fullurl-absolute', (e, claim) => {
      delete e.resource!.id;
      claim.item![0].extension![0].valueReference = { reference: e.fullUrl };
    });
    const res = await pas.submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(JSON.stringify(cr)).not.toMatch(/carries no id/);
    expect((await recordOf('order-fullurl-absolute'))?.authorization?.number).toBe(cr.preAuthRef);
  });

  it('refuses (400 OperationOutcome naming the entry) an order whose id disagrees with its fullUrl, deciding nothing', async () => {
    const bundle = withOrderEntry('order-fullurl-disagrees', (e) => {
      e.fullUrl = 'https://ehr.example.org/fhir/MedicationRequest/order-fullurl-elsewhere';
    });
    const res = await pas.submit(bundle);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].diagnostics).toMatch(/fullUrl is https:\/\/ehr\.example\.org\/fhir\/MedicationRequest\/order-fullurl-elsewhere, but its MedicationRequest's id is "order-fullurl-disagrees"/);
    expect(res.body.issue[0].expression[0]).toMatch(/^Bundle\.entry\[\d+\]\.fullUrl$/);
    expect(await recordOf('order-fullurl-disagrees')).toBeUndefined();
    expect(await recordOf('order-fullurl-elsewhere')).toBeUndefined();
  });

  it('refuses (400 naming the entry) a fullUrl that names another resource type than its resource, at $submit and at $inquire', async () => {
    // A Patient entry sent under an order's fullUrl: references to MedicationRequest/<id> would mean a Patient.
    const bundle = withOrderEntry('order-fullurl-type', () => undefined);
    const patientEntry = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!;
    patientEntry.fullUrl = `https://ehr.example.org/fhir/MedicationRequest/${patientEntry.resource!.id}`;
    const res = await pas.submit(bundle);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].diagnostics).toMatch(/fullUrl is https:\/\/ehr\.example\.org\/fhir\/MedicationRequest\/.*, which names a MedicationRequest, but its resource is a Patient/);
    expect(res.body.issue[0].expression[0]).toBe(`Bundle.entry[${bundle.entry!.indexOf(patientEntry)}].fullUrl`);
    expect(await recordOf('order-fullurl-type')).toBeUndefined();

    const claim = bundle.entry![0].resource as Claim;
    const inquiry = {
      resourceType: 'Bundle',
      identifier: { system: 'urn:ehr.example.org:pas-inquiry', value: 'INQ-FULLURL-TYPE' },
      type: 'collection',
      timestamp: '2026-11-23T10:00:00Z',
      entry: [
        { fullUrl: 'urn:uuid:5b1f4c8e-2f0a-4d7e-9a51-3c2b7e8d9f10', resource: { resourceType: 'Claim', identifier: claim.identifier, status: 'active', use: 'preauthorization', patient: { reference: `Patient/${patientId}` } } },
        { fullUrl: `https://ehr.example.org/fhir/Coverage/${patientId}`, resource: { resourceType: 'Patient', id: patientId } },
      ],
    };
    const inq = await request(pas.app).post('/fhir/Claim/$inquire').set('Content-Type', 'application/fhir+json').send(JSON.stringify(inquiry));
    expect(inq.status).toBe(400);
    expect(inq.body.issue[0].diagnostics).toMatch(/names a Coverage, but its resource is a Patient/);
    expect(inq.body.issue[0].expression[0]).toBe('Bundle.entry[1].fullUrl');
  });
});
