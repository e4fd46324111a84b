import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { createReviewPageRouter } from '../../src/web/review-page.js';
import { REVIEW_TOKEN, claimResponseOf, pasApp, questionnaireResponse, storyBundle } from './pas-fixtures.js';

const FHIR_JSON = 'application/fhir+json';

describe('reviewer request view (GET /review/{id})', () => {
  it("shows the reviewer the patient, member id, order, answers with their origin, the chart facts with dates, and each criterion's evidence", async () => {
    const { app } = pasApp(new MemoryStorage());
    const bundle = storyBundle('centene-missing-mrd');
    const submitted = await request(app)
      .post('/fhir/Claim/$submit')
      .set('Content-Type', FHIR_JSON)
      .send(JSON.stringify(bundle));
    expect(submitted.status).toBe(200);
    const id = claimResponseOf(submitted.body).id!;

    const res = await request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
    expect(res.status).toBe(200);
    const c = res.body.case;
    expect(c.patient).toMatchObject({
      name: 'Kwame Osei Mensah',
      memberId: 'U5521039476',
      birthDate: expect.stringMatching(/^1985-/),
    });
    expect(c.orders[0].drug).toMatch(/Blincyto/);
    expect(c.orders[0].dose).toBe('28 mcg/d');
    // Chart facts newest first, each dated; the order under review is not listed as a chart fact.
    const dates = c.facts.map((f: { date?: string }) => f.date ?? '');
    expect(dates.every(Boolean)).toBe(true);
    expect([...dates].sort().reverse()).toEqual(dates);
    expect(
      c.facts.some((f: { kind: string; what: string }) => f.kind === 'Condition' && /lymphoblastic/i.test(f.what)),
    ).toBe(true);
    // Every criterion carries its evidence: the MRD is unknown (no data), the diagnosis read from the chart.
    const criteria = res.body.items[0].criteria as {
      id: string;
      kind: string;
      result: unknown;
      evidence: { fact: string; source: string; value?: unknown }[];
    }[];
    expect(criteria.length).toBeGreaterThan(5);
    expect(
      criteria.every((cr) => ['requirement', 'pathway', 'limit'].includes(cr.kind) && Array.isArray(cr.evidence)),
    ).toBe(true);
    const evidence = criteria.flatMap((cr) => cr.evidence);
    expect(evidence).toContainEqual(expect.objectContaining({ fact: 'mrdPositive', source: 'unknown' }));
    expect(evidence).toContainEqual(expect.objectContaining({ source: 'ehr', value: true }));
    expect(res.body.items[0].reviewPeriod).toMatchObject({ start: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
  });

  it('lists the DTR answers with who supplied each', async () => {
    const { app } = pasApp(new MemoryStorage());
    const bundle = storyBundle('centene-missing-mrd');
    const patientRef = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.fullUrl!;
    const qr = questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.4 }] }, patientRef);
    const claim = bundle.entry!.find((e) => e.resource?.resourceType === 'Claim')!.resource as {
      supportingInfo?: unknown[];
    };
    claim.supportingInfo = [
      {
        sequence: 1,
        category: {
          coding: [
            { system: 'http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes', code: 'additionalInformation' },
          ],
        },
        valueReference: { reference: `QuestionnaireResponse/${qr.id}` },
      },
    ];
    bundle.entry!.push({ fullUrl: `urn:uuid:${qr.id}`, resource: qr });
    const submitted = await request(app)
      .post('/fhir/Claim/$submit')
      .set('Content-Type', FHIR_JSON)
      .send(JSON.stringify(bundle));
    const id = claimResponseOf(submitted.body).id!;
    const res = await request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
    expect(res.body.case.answers[0].items).toContainEqual({
      linkId: 'mrd-percent',
      question: 'mrd-percent',
      answer: '0.4',
      origin: 'manual',
    });
  });
});

describe('reviewer workbench page (/review)', () => {
  const app = (demo: boolean) => {
    const a = express();
    a.use(
      '/review',
      createReviewPageRouter(
        demo ? { demoReviewer: { token: 'sandbox-demo-token-0123456789', name: 'Demo Reviewer' } } : {},
      ),
    );
    a.use('/review', pasApp(new MemoryStorage(), { reviewToken: 'sandbox-demo-token-0123456789' }).app);
    return a;
  };

  it('serves the page to a browser without a token; the API beside it still needs one', async () => {
    const page = await request(app(false)).get('/review').set('Accept', 'text/html');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('Pended requests');
    expect((await request(app(false)).get('/review/review/pended')).status).toBe(401);
  });

  it('offers the demo reviewer only in the sandbox, and its token opens the API', async () => {
    expect((await request(app(false)).post('/review/demo-sign-in')).status).toBe(404);
    expect((await request(app(false)).get('/review/sign-in')).body).toEqual({ demoReviewer: null });
    const signIn = await request(app(true)).post('/review/demo-sign-in');
    expect(signIn.status).toBe(200);
    expect(signIn.body.reviewer).toBe('Demo Reviewer');
    const list = await request(app(true))
      .get('/review/review/pended')
      .set('Authorization', `Bearer ${signIn.body.token}`);
    expect(list.status).toBe(200);
  });
});
