import type { Bundle, BundleEntry, Claim, ClaimResponse, Extension, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { determine } from '../../src/dtr/determination.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { buildApp, testContent } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

/**
 * An order PriorPath cannot name (docs/design.md §8 "An order that cannot be named"; review accept2 A5): a draft order
 * without an id at signing, a DTR response about it, a PAS Bundle whose order entry is only a `urn:uuid` fullUrl and
 * whose Claim item names no order. Its approval could be kept on no order's record, so every call issued another
 * number for the one order; it now gets none anywhere, and every edge says it needs its id. The story's chart meets
 * Centene CP.PHAR.312 at signing (the same order with its id is approved: the last test).
 */
const SIGN = '/cds-services/priorpath-order-sign';
const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'centene-mrd-positive';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);
const NEEDS_ID = /carries no id/;

function withoutId(): { resources: ReturnType<typeof storyResources>; order: MedicationRequest; patientId: string } {
  const resources = storyResources(STORY);
  const { id: _id, ...order } = storyOrder(STORY, resources);
  return { resources, order: order as MedicationRequest, patientId: resources.find((r) => r.resourceType === 'Patient')!.id! };
}

/** The story's PAS Bundle with its order entry unnamed: no id, a `urn:uuid` fullUrl, no requestedService on the item. */
function unnamedPasBundle(): Bundle {
  const bundle = storyBundle(STORY);
  const entries = bundle.entry!.map((e): BundleEntry => {
    if (e.resource?.resourceType === 'MedicationRequest' && e.resource.status === 'draft') {
      const { id: _id, ...order } = e.resource;
      return { fullUrl: `urn:uuid:${crypto.randomUUID()}`, resource: order as MedicationRequest };
    }
    if (e.resource?.resourceType === 'Claim') {
      const claim = e.resource;
      return { ...e, resource: { ...claim, item: claim.item!.map(({ extension: _ext, ...item }) => item) } satisfies Claim };
    }
    return e;
  });
  return { ...bundle, entry: entries };
}

describe('an order without an id gets no authorization number, at signing, in DTR or in PAS', () => {
  it('signing it again and again answers covered / auth-needed, never a number, and says the order needs its id', async () => {
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const { resources, order } = withoutId();
    for (let n = 0; n < 3; n++) {
      const res = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
      const ext = (res.body.systemActions[0].resource.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
      expect(sub(ext, 'covered')!.valueCode).toBe('covered');
      expect(sub(ext, 'pa-needed')!.valueCode).toBe('auth-needed');
      expect(sub(ext, 'satisfied-pa-id')).toBeUndefined();
      expect(JSON.stringify(res.body)).toMatch(NEEDS_ID);
      expect(JSON.stringify(res.body)).not.toMatch(/PA-CENTENE-/);
    }
    // No number kept anywhere: no order record, no assertion carrying one.
    expect(storage.orders.size).toBe(0);
    expect(storage.authorizations.size).toBe(0);
    expect([...storage.assertions.values()].filter((a) => a.authorization)).toEqual([]);
  });

  it('a DTR determination for a response naming no order issues no number, however often it is made; naming the order, one', async () => {
    // The determination DTR makes of a finished response (POST QuestionnaireResponse, $next-question): over the answers
    // the story's chart gives, which meet the policy.
    const content = testContent();
    const policy = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const role = resources.find((r) => r.resourceType === 'PractitionerRole')!;
    const evaluation = evaluatePolicy(policy, evaluationDataFor(indexRecord(recordFromResources(resources, [order], `PractitionerRole/${role.id}`)), order, '2026-11-23'));
    expect(evaluation.outcome).toBe('satisfied');
    const storage = new MemoryStorage();
    const opts = { policy, evaluation, today: '2026-11-23', patientId: order.subject!.reference!.split('/')[1], source: 'QuestionnaireResponse test', storage };
    for (let n = 0; n < 2; n++) {
      const { extension, assertion } = await determine(opts);
      expect(sub(extension, 'pa-needed')!.valueCode).toBe('auth-needed');
      expect(sub(extension, 'satisfied-pa-id')).toBeUndefined();
      expect(assertion.authorization).toBeUndefined();
      expect(JSON.stringify(extension)).toMatch(NEEDS_ID);
    }
    expect(storage.authorizations.size).toBe(0);
    const named = [await determine({ ...opts, orderRef: `MedicationRequest/${order.id}` }), await determine({ ...opts, orderRef: `MedicationRequest/${order.id}` })];
    const numbers = named.map((d) => sub(d.extension, 'satisfied-pa-id')?.valueString);
    expect(numbers[0]).toMatch(/^PA-CENTENE-/);
    expect(numbers[1]).toBe(numbers[0]);
  });

  it('PAS pends it (A4, no preAuthRef) under every Bundle identifier, saying to name the order; named, it is certified once', async () => {
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const submit = (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(b);
    for (let n = 0; n < 2; n++) {
      const res = await submit(unnamedPasBundle()).expect(200);
      const cr = claimResponseOf(res.body) as ClaimResponse;
      expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
      expect(cr.preAuthRef).toBeUndefined();
      expect(JSON.stringify(cr.processNote)).toMatch(NEEDS_ID);
    }
    expect([...storage.submissions.values()].filter((s) => s.preAuthRef)).toEqual([]);
    expect(storage.authorizations.size).toBe(0);
    // The same request naming its order: certified, and once (a second Bundle identifier answers the same number).
    const first = claimResponseOf((await submit(storyBundle(STORY)).expect(200)).body);
    const second = claimResponseOf((await submit(storyBundle(STORY)).expect(200)).body);
    expect(reviewActions(first)).toEqual([`${X12}#A1`]);
    expect(first.preAuthRef).toMatch(/^PA-CENTENE-/);
    expect(second.preAuthRef).toBe(first.preAuthRef);
  });

  it('the same order signed with its id is approved at signing (the story qualifies), and signed again keeps its number', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const numbers: string[] = [];
    for (let n = 0; n < 2; n++) {
      const res = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
      const ext = (res.body.systemActions[0].resource.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
      expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
      numbers.push(sub(ext, 'satisfied-pa-id')!.valueString!);
    }
    expect(numbers[1]).toBe(numbers[0]);
  });
});
