import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { periodEnd } from '../../src/coverage/authorization.js';
import { inquiryResponseOf } from '../../src/pas/claim-response.js';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { testContent } from '../helpers/app.js';
import { REVIEW_TOKEN, claimResponseOf, inquiryParameters, pasApp, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const FHIR_JSON = 'application/fhir+json';

let dir: string;
let storage: SqlStorage;
let app: ReturnType<typeof pasApp>['app'];
let lines: string[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'priorpath-pas-'));
  storage = await createStorage({ dataDir: dir });
  ({ app, lines } = pasApp(storage));
}, 120_000);
afterAll(async () => {
  await storage?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function rows(): Promise<{ submissions: number; authorizations: number; decisions: number }> {
  const [r] = await storage.driver.query<{ s: number; a: number; d: number }>(
    'SELECT (SELECT count(*) FROM pas_submissions)::integer AS s, (SELECT count(*) FROM authorizations)::integer AS a, (SELECT count(*) FROM review_decisions)::integer AS d',
  );
  return { submissions: Number(r.s), authorizations: Number(r.a), decisions: Number(r.d) };
}

const submit = (body: unknown) => request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(body));
const inquire = (body: unknown) => request(app).post('/fhir/Claim/$inquire').set('Content-Type', FHIR_JSON).send(JSON.stringify(body));
const review = () => ({
  get: (path: string) => request(app).get(`/review${path}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`),
  post: (path: string, body: unknown) => request(app).post(`/review${path}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send(body as object),
});

describe('Claim/$submit end to end (sandbox stories, embedded PGlite)', () => {
  it('certifies (A1) an answered request with an authorization number and the approving pathway period; $inquire returns it; a resubmission returns the same answer without a second record', async () => {
    const bundle = storyBundle('centene-missing-mrd', { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
    const before = await rows();
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/fhir\+json/);
    const out = res.body as Bundle;
    expect(out.resourceType).toBe('Bundle');
    expect(out.type).toBe('collection');
    expect(out.identifier).toEqual(bundle.identifier);
    const cr = claimResponseOf(out);
    expect(cr.use).toBe('preauthorization');
    expect(cr.status).toBe('active');
    expect(cr.outcome).toBe('complete');
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.preAuthRef).toMatch(/^PA-CENTENE-20261123-[A-Z2-9]{8}$/);
    const pathway = testContent().policies.find((p) => p.file.id === 'centene-blinatumomab')!.pathways.find((p) => p.id === 'mrd-positive-remission')!;
    expect(cr.preAuthPeriod).toEqual({ start: '2026-11-21', end: periodEnd('2026-11-21', pathway.approval!) });
    expect(cr.item?.[0].itemSequence).toBe(1);
    expect(cr.item?.[0].adjudication?.[0].category.coding?.[0]).toEqual({ system: 'http://terminology.hl7.org/CodeSystem/adjudication', code: 'submitted' });
    expect(JSON.stringify(cr.processNote)).toContain(pathway.cite);
    expect(cr.request?.identifier).toEqual((bundle.entry![0].resource as { identifier: unknown[] }).identifier[0]);
    // Referenced resources come back with the fullUrl they had in the request (PAS spec-33).
    const patientEntry = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!;
    expect(out.entry!.find((e) => e.resource?.resourceType === 'Patient')?.fullUrl).toBe(patientEntry.fullUrl);
    const after = await rows();
    expect(after.submissions - before.submissions).toBe(1);
    expect(after.authorizations - before.authorizations).toBe(1);
    expect(await storage.getAuthorization(cr.preAuthRef!)).toMatchObject({ source: 'pas', payer: 'centene', start: '2026-11-21' });

    for (const q of [inquiryParameters({ identifier: bundle.identifier as { system: string; value: string } }), inquiryParameters({ preAuthRef: cr.preAuthRef })]) {
      const inq = await inquire(q);
      expect(inq.status).toBe(200);
      expect(inq.body.resourceType).toBe('Parameters');
      expect(inq.body.parameter).toHaveLength(1);
      expect(inq.body.parameter[0].name).toBe('return');
      // The same content, labelled with the inquiry profiles.
      expect(inq.body.parameter[0].resource).toEqual(inquiryResponseOf(out as unknown as Record<string, unknown>));
    }

    const again = await submit({ ...bundle, timestamp: '2026-11-23T09:06:00Z' });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(out);
    expect(await rows()).toEqual(after);
  });

  it('accepts the request Bundle wrapped in a Parameters "resource" and a QuestionnaireResponse inside a DTR QuestionnaireResponse Bundle', async () => {
    const bundle = storyBundle('ohsu-infant-kmt2a', { answers: { 'no-live-vaccine-on-therapy': [{ valueBoolean: true }] }, qrBundle: true });
    const res = await submit({ resourceType: 'Parameters', parameter: [{ name: 'resource', resource: bundle }] });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A1`]);
  });

  it('answers a request coded by RxNorm the same way as by HCPCS', async () => {
    const res = await submit(storyBundle('mmm-ph-positive-tki', { code: 'rxnorm' }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A1`]);
    expect(claimResponseOf(res.body).preAuthRef).toMatch(/^PA-MMM-/);
  });

  it('certifies nothing for a request whose Coverage, still marked active, ended before the request, though the Claim names the insurer: its item is answered in ClaimResponse.error (was a 400)', async () => {
    const bundle = storyBundle('mmm-ph-positive-tki', { code: 'rxnorm', orderId: 'order-lapsed-coverage' });
    for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'Coverage') e.resource.period = { start: '2024-01-01', end: '2025-12-31' };
    const res = await submit(bundle);
    expect(res.status).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(cr.error?.map((e) => e.itemSequence)).toEqual([1]);
    expect(cr.error?.[0].code.text).toMatch(/No active Coverage.*ended on 2025-12-31/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-MMM/);
  });

  it('refuses (400, naming both) a request whose Coverage names two payers PriorPath serves, whatever the Claim insurer says', async () => {
    const bundle = storyBundle('mmm-ph-positive-tki', { code: 'rxnorm', orderId: 'order-two-payers' });
    for (const e of bundle.entry ?? []) {
      if (e.resource?.resourceType === 'Coverage') {
        e.resource.payor = [{ identifier: { system: 'https://priorpath.dev/fhir/sid/payer', value: 'mmm' } }, { identifier: { system: 'https://priorpath.dev/fhir/sid/payer', value: 'centene' } }];
      }
    }
    const res = await submit(bundle);
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/names more than one payer PriorPath serves \((mmm, centene|centene, mmm)\)/);
  });

  it('certifies nothing for a request whose Coverage, marked active, has not begun: its item is answered in ClaimResponse.error (was a 400)', async () => {
    const bundle = storyBundle('mmm-ph-positive-tki', { code: 'rxnorm', orderId: 'order-future-coverage' });
    for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'Coverage') e.resource.period = { start: '2099-09-01' };
    const res = await submit(bundle);
    expect(res.status).toBe(200);
    expect(claimResponseOf(res.body).error?.[0].code.text).toMatch(/No active Coverage.*begins on 2099-09-01/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-MMM/);
  });

  it('does not certify (A3) an off-label request (DLBCL under MMM), citing the policy clause', async () => {
    const res = await submit(storyBundle('mmm-dlbcl-offlabel'));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A3`]);
    expect(cr.preAuthRef).toBeUndefined();
    expect(cr.disposition).toBe('Not certified');
    const notes = JSON.stringify(cr.processNote);
    expect(notes).toContain('MP-RX-FP-14-23 D.i');
    expect(notes).toMatch(/DLBCL|diffuse large B-cell lymphoma/);
    expect(cr.item?.[0].noteNumber?.length).toBeGreaterThan(0);
  });

  it('pends (A4), never A3, a request that carries no diagnosis at all: a missing diagnosis is not a different one (design.md §6 "Clinical readings")', async () => {
    const res = await submit(storyBundle('centene-mrd-positive', { remove: ['centene-mrd-positive-dx'] }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    const question = testContent().policies.find((p) => p.file.id === 'centene-blinatumomab')!.factsByName.get('bAll')!.def.question!;
    expect(JSON.stringify(cr.processNote)).toContain(question);
    expect(JSON.stringify(cr.processNote)).not.toMatch(/T-cell ALL or a lymphoma/);
  });

  it('pends (A4), never certifies, a request whose Bundle holds an earlier order with a drug it does not resolve; the cycles answered in the QuestionnaireResponse settle it (A1)', async () => {
    // A completed order given elsewhere, its Medication neither contained nor in the Bundle: it may be an earlier
    // Blincyto course, so the cycles already given are unknown (design.md §6 "Clinical readings").
    const withEarlier = (bundle: Bundle) => {
      const patient = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource!;
      bundle.entry!.push({
        fullUrl: `http://ehr.example.org/fhir/MedicationRequest/outside-${bundle.identifier!.value}`,
        resource: {
          resourceType: 'MedicationRequest',
          id: `outside-${bundle.identifier!.value}`,
          status: 'completed',
          intent: 'order',
          subject: { reference: `Patient/${patient.id}` },
          authoredOn: '2026-08-04',
          medicationReference: { reference: 'Medication/outside-infusion' },
        },
      });
      return bundle;
    };
    const mrdOnly = await submit(withEarlier(storyBundle('centene-missing-mrd', { orderId: 'order-earlier-unknown', answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } })));
    expect(mrdOnly.status, JSON.stringify(mrdOnly.body)).toBe(200);
    const pended = claimResponseOf(mrdOnly.body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    expect(pended.preAuthRef).toBeUndefined();
    const cyclesQuestion = testContent().policies.find((p) => p.file.id === 'centene-blinatumomab')!.factsByName.get('cyclesGiven')!.def.question!;
    expect(JSON.stringify(pended.processNote)).toContain(cyclesQuestion);

    const answered = await submit(
      withEarlier(storyBundle('centene-missing-mrd', { orderId: 'order-earlier-answered', answers: { 'mrd-percent': [{ valueDecimal: 0.52 }], 'cycles-given': [{ valueInteger: 0 }] } })),
    );
    expect(reviewActions(claimResponseOf(answered.body))).toEqual([`${X12}#A1`]);
  });

  it('reads the diagnosis from Claim.diagnosis when the Bundle carries no Condition: B-ALL in remission with MRD is certified (A1)', async () => {
    const bundle = storyBundle('centene-mrd-positive', { remove: ['centene-mrd-positive-dx'] });
    const claim = bundle.entry![0].resource as { diagnosis?: unknown[] };
    claim.diagnosis = [
      {
        sequence: 1,
        diagnosisCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '277571004', display: 'B-cell acute lymphoblastic leukemia' }] },
      },
    ];
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A1`]);
  });

  it('pends (A4) a request missing evidence, naming what is needed; a reviewer approves it and $inquire then shows A1 with an authorization', async () => {
    // Another order of the patient than the one approved above: each order has its own decision.
    const bundle = storyBundle('centene-missing-mrd', { orderId: 'centene-missing-mrd-order-review' });
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(cr.preAuthRef).toBeUndefined();
    const question = testContent().policies.find((p) => p.file.id === 'centene-blinatumomab')!.factsByName.get('mrdPercent')!.def.question!;
    expect(JSON.stringify(cr.processNote)).toContain(`Needed: ${question}`);
    // PAS 2.2.1 allows administrationReferenceNumber on ClaimResponse.item, not on the root.
    expect(cr.extension?.some((e) => e.url.endsWith('extension-administrationReferenceNumber')) ?? false).toBe(false);
    const reference = cr.item?.[0].extension?.find((e) => e.url.endsWith('extension-administrationReferenceNumber'))?.valueString;
    expect(reference).toBe(cr.id);

    const pended = await review().get('/pended');
    expect(pended.status).toBe(200);
    const entry = pended.body.pended.find((p: { id: string }) => p.id === cr.id);
    expect(entry).toEqual({
      id: cr.id,
      bundleIdentifier: `${bundle.identifier!.system}|${bundle.identifier!.value}`,
      payer: 'centene',
      policyId: 'centene-blinatumomab',
      policyVersion: expect.any(String),
      createdAt: expect.any(String),
      needed: [question],
      missing: [question],
      patientName: 'Kwame Osei Mensah',
      memberId: 'U5521039476',
      // The payer file's label, as the cards' source.label names the payer (the request's Organization says 'Centene Corporation').
      payerName: 'Centene (Ambetter, Medicaid and commercial plans)',
      drug: expect.stringMatching(/Blincyto/),
      dose: '28 mcg/day',
      ageSeconds: expect.any(Number),
    });

    const before = await rows();
    const decided = await review().post(`/${cr.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report of 2026-11-10' });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    expect(decided.body).toMatchObject({ status: 'approved', reviewAction: 'A1', decisions: [{ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)' }] });
    const after = await rows();
    expect(after).toEqual({ submissions: before.submissions, authorizations: before.authorizations + 1, decisions: before.decisions + 1 });

    const inq = await inquire(inquiryParameters({ preAuthRef: cr.id }));
    expect(inq.body.parameter).toHaveLength(1);
    const now = claimResponseOf(inq.body.parameter[0].resource);
    expect(reviewActions(now)).toEqual([`${X12}#A1`]);
    expect(now.preAuthRef).toMatch(/^PA-CENTENE-/);
    expect(now.preAuthPeriod?.start).toBe('2026-11-21');
    expect(now.extension?.some((e) => e.url.endsWith('extension-claimResponseReviewer'))).toBe(true);
    expect(JSON.stringify(now.processNote)).toContain('MRD 0.4 %');
    expect((await inquire(inquiryParameters({ preAuthRef: now.preAuthRef }))).body.parameter).toHaveLength(1);

    // The same request again gets the current answer, not a second evaluation.
    const again = await submit(bundle);
    expect(claimResponseOf(again.body).preAuthRef).toBe(now.preAuthRef);
    expect(await rows()).toEqual(after);

    const twice = await review().post(`/${cr.id}/decision`, { decision: 'deny', reviewer: 'someone else', reason: 'late' });
    expect(twice.status).toBe(409);
    expect(twice.body.resourceType).toBe('OperationOutcome');
    expect((await review().get('/pended')).body.pended.map((p: { id: string }) => p.id)).not.toContain(cr.id);
  });

  it('sends a dose above the policy limit to clinical review (A4); a reviewer denial shows A3 with the reason', async () => {
    const res = await submit(storyBundle('centene-over-dose'));
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(cr.disposition).toBe('Pended for clinical review');
    expect(JSON.stringify(cr.processNote)).toMatch(/Needed: Clinical review: the order is outside the limit .*28/);
    const detail = await review().get(`/${cr.id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.items[0].criteria.find((c: { id: string }) => c.id === 'max-daily-dose')).toMatchObject({ result: false });
    expect(detail.body.case.payerName).toBe('Centene (Ambetter, Medicaid and commercial plans)');

    const denied = await review().post(`/${cr.id}/decision`, { decision: 'deny', reviewer: 'Dr. L. Chen', reason: 'No guideline support for 56 mcg/day' });
    expect(denied.status).toBe(200);
    const inq = await inquire(inquiryParameters({ preAuthRef: cr.id }));
    const now = claimResponseOf(inq.body.parameter[0].resource);
    expect(reviewActions(now)).toEqual([`${X12}#A3`]);
    expect(now.preAuthRef).toBeUndefined();
    // The reviewer's reason is told once: the denial's reason carries it, so no second note repeats it.
    const notes = (now.processNote as { text: string }[]).map((n) => n.text);
    expect(notes.filter((t) => t.includes('No guideline support for 56 mcg/day'))).toEqual(['Not certified on clinical review: No guideline support for 56 mcg/day']);
  });

  it('answers a PAS inquiry Bundle by the original Claim identifier within the same patient only', async () => {
    const bundle = storyBundle('bcbsnc-relapsed-adult');
    const res = await submit(bundle);
    const claim = bundle.entry![0].resource as { identifier: { system: string; value: string }[] };
    const patient = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource as { id: string; identifier: unknown[] };
    const inquiryBundle = (patientIdentifier: unknown[]) => ({
      resourceType: 'Bundle',
      identifier: { system: 'urn:ehr.example.org:pas-inquiry', value: 'INQ-1' },
      type: 'collection',
      timestamp: '2026-11-23T10:00:00Z',
      entry: [
        { fullUrl: 'urn:uuid:inq-claim', resource: { resourceType: 'Claim', identifier: claim.identifier, status: 'active', use: 'preauthorization', patient: { reference: 'urn:uuid:inq-patient' } } },
        { fullUrl: 'urn:uuid:inq-patient', resource: { resourceType: 'Patient', id: patient.id, identifier: patientIdentifier } },
      ],
    });
    const found = await inquire(inquiryBundle(patient.identifier));
    expect(found.status).toBe(200);
    expect(found.body.parameter.map((p: { resource: unknown }) => p.resource)).toEqual([inquiryResponseOf(res.body)]);
    const other = await inquire({ resourceType: 'Parameters', parameter: [{ name: 'resource', resource: inquiryBundle([{ system: 'https://sandbox.priorpath.dev/fhir/sid/member-id/bcbsnc', value: 'SOMEONE-ELSE' }]) }] });
    expect(other.status).toBe(200);
    expect(other.body).toEqual({ resourceType: 'Parameters' });
  });

  it('stores one record when the same request arrives many times at once, and every caller gets the same answer', async () => {
    const bundle = storyBundle('bcbsnc-inotuzumab-relapsed', { remove: [] });
    const before = await rows();
    const answers = await Promise.all(Array.from({ length: 6 }, () => submit(bundle)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(new Set(answers.map((a) => claimResponseOf(a.body).id)).size).toBe(1);
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
    const after = await rows();
    expect(after.submissions - before.submissions).toBe(1);
  });

  it('refuses the same Bundle identifier with different content (409 duplicate) and stores nothing new', async () => {
    const bundle = storyBundle('bcbsnc-t-all');
    expect((await submit(bundle)).status).toBe(200);
    const before = await rows();
    const changed = structuredClone(bundle);
    (changed.entry![0].resource as { item: { quantity: { value: number } }[] }).item[0].quantity.value = 999;
    const res = await submit(changed);
    expect(res.status).toBe(409);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].code).toBe('duplicate');
    expect(res.body.issue[0].diagnostics).toContain(bundle.identifier!.value);
    expect(await rows()).toEqual(before);
  });

  it('logs one decision line per request with ids and review actions, never patient data', () => {
    const text = lines.join('');
    expect(text).toContain('"msg":"pas submit"');
    expect(text).not.toMatch(/Kwame|Mensah|Márquez|birthDate|U7034518821|mrd-percent/);
  });
});

describe('Claim/$submit refuses bad input with a 4xx OperationOutcome and writes nothing', () => {
  const base = () => storyBundle('centene-missing-mrd', { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests break arbitrary parts of the JSON
  const claimOf = (b: Bundle) => b.entry![0].resource as Record<string, any>;
  const cases: [string, () => unknown, RegExp][] = [
    ['a resource that is not a Bundle', () => ({ resourceType: 'Patient', id: 'x' }), /expects a PAS request Bundle, got Patient/],
    ['a JSON value that is not a resource', () => [1, 2, 3], /must be a JSON object, not an array/],
    ['a Parameters without the resource parameter', () => ({ resourceType: 'Parameters', parameter: [{ name: 'bundle', resource: base() }] }), /no "resource" parameter/],
    ['a transaction Bundle', () => ({ ...base(), type: 'transaction' }), /type "collection"/],
    ['a Bundle without identifier', () => ({ ...base(), identifier: undefined }), /needs an identifier/],
    ['a Bundle without entries', () => ({ ...base(), entry: [] }), /no entries/],
    ['a Bundle without a Claim', () => ({ ...base(), entry: base().entry!.slice(1) }), /holds no Claim/],
    ['a Claim without items', () => { const b = base(); claimOf(b).item = []; return b; }, /no items/],
    ['a Claim that is not a preauthorization', () => { const b = base(); claimOf(b).use = 'claim'; return b; }, /preauthorization/],
    ['a Claim item without a product code', () => { const b = base(); claimOf(b).item[0].productOrService = { text: 'Blincyto' }; return b; }, /productOrService/],
    ['a patient reference that does not resolve in the Bundle', () => { const b = base(); claimOf(b).patient = { reference: 'Patient/not-here' }; return b; }, /Patient\/not-here does not resolve/],
    ['a Coverage left out of the Bundle', () => storyBundle('centene-missing-mrd', { remove: ['centene-missing-mrd-coverage'] }), /Coverage\/centene-missing-mrd-coverage does not resolve/],
    ['a supportingInfo reference that does not resolve', () => { const b = base(); claimOf(b).supportingInfo[0].valueReference = { reference: 'urn:uuid:missing' }; return b; }, /urn:uuid:missing does not resolve/],
    [
      'an unknown payer',
      () => {
        const b = storyBundle('centene-missing-mrd', { remove: ['payer-centene'] });
        const cov = b.entry!.find((e) => e.resource?.resourceType === 'Coverage')!.resource as unknown as Record<string, unknown>;
        cov.payor = [{ identifier: { system: 'https://priorpath.dev/fhir/sid/payer', value: 'acme' }, display: 'Acme Health' }];
        claimOf(b).insurer = { display: 'Acme Health' };
        return b;
      },
      /Unknown payer/,
    ],
    ['an answer of the wrong type', () => storyBundle('centene-missing-mrd', { answers: { 'mrd-percent': [{ valueString: 'positive' }] } }), /cannot be read: mrd-percent/],
    ['a negative item quantity (an approval would certify it)', () => { const b = base(); claimOf(b).item[0].quantity = { value: -5, unit: 'ug' }; return b; }, /quantity must be a positive number/],
    ['a zero item quantity', () => { const b = base(); claimOf(b).item[0].quantity = { value: 0, unit: 'ug' }; return b; }, /quantity must be a positive number/],
    [
      'more Claim items than one request may carry (too-costly)',
      () => {
        const b = base();
        const item = claimOf(b).item[0];
        claimOf(b).item = Array.from({ length: 21 }, (_, i) => ({ ...item, sequence: i + 1 }));
        return b;
      },
      /More than 20 Claim items/,
    ],
  ];

  it.each(cases)('400 for %s', async (_name, body, message) => {
    const before = await rows();
    const res = await submit(body());
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].diagnostics).toMatch(message);
    expect(await rows()).toEqual(before);
  });

  it('413 for a 9 MiB body (over ATTACHMENT_BODY_MAX_BYTES, 1 MiB by default, 16 MiB at most), 415 for a body that is not JSON, 400 for malformed JSON, 405 for GET', async () => {
    const before = await rows();
    const big = base();
    (big.entry![1].resource as unknown as Record<string, unknown>).text = { status: 'generated', div: `<div>${'x'.repeat(9 * 1024 * 1024)}</div>` };
    const tooBig = await submit(big);
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.resourceType).toBe('OperationOutcome');
    const xml = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+xml').send('<Bundle/>');
    expect(xml.status).toBe(415);
    const broken = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send('{"resourceType": "Bundle",');
    expect(broken.status).toBe(400);
    const get = await request(app).get('/fhir/Claim/$submit');
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(await rows()).toEqual(before);
  });

  it('400 for an inquiry Bundle with no entries, or naming nothing to search by', async () => {
    const empty = await inquire({ resourceType: 'Bundle', type: 'collection', entry: [] });
    expect(empty.status).toBe(400);
    expect(empty.body.resourceType).toBe('OperationOutcome');
    const nothing = await inquire({ resourceType: 'Parameters', parameter: [{ name: 'foo', valueString: 'x' }] });
    expect(nothing.status).toBe(400);
  });

  it('leaves paths it does not own to the next router', async () => {
    const res = await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR_JSON).send('{}');
    expect(res.status).toBe(404);
  });
});

describe('reviewer API protection', () => {
  it('401 without the bearer token, with a wrong one, and for every call when no REVIEW_TOKEN is configured', async () => {
    expect((await request(app).get('/review/pended')).status).toBe(401);
    expect((await request(app).get('/review/pended').set('Authorization', 'Bearer nope')).status).toBe(401);
    const closed = pasApp(storage, { reviewToken: null }).app;
    const res = await request(closed).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`);
    expect(res.status).toBe(401);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('400 for a malformed decision, 404 for an unknown request, and writes nothing', async () => {
    const before = await rows();
    const bad = await review().post('/00000000-0000-0000-0000-000000000000/decision', { decision: 'maybe', reviewer: 'x', reason: 'y' });
    expect(bad.status).toBe(400);
    const noReason = await review().post('/00000000-0000-0000-0000-000000000000/decision', { decision: 'approve', reviewer: 'x' });
    expect(noReason.status).toBe(400);
    const unknown = await review().post('/00000000-0000-0000-0000-000000000000/decision', { decision: 'approve', reviewer: 'x', reason: 'y' });
    expect(unknown.status).toBe(404);
    expect(await rows()).toEqual(before);
  });
});
