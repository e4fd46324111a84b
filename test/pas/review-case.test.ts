import type { BundleEntry, MedicationRequest, Observation } from '@medplum/fhirtypes';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { parsePasRequest } from '../../src/pas/request-bundle.js';
import { reviewCase } from '../../src/pas/review-case.js';
import { createReviewPageRouter } from '../../src/web/review-page.js';
import { REVIEW_TOKEN, claimResponseOf, pasApp, questionnaireResponse, reviewActions, storyBundle } from './pas-fixtures.js';

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
    expect(c.orders[0].dose).toBe('28 mcg/day');
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
      evidence: { fact: string; label: string; source: string; value?: unknown }[];
    }[];
    expect(criteria.length).toBeGreaterThan(5);
    expect(
      criteria.every((cr) => ['requirement', 'pathway', 'limit'].includes(cr.kind) && Array.isArray(cr.evidence)),
    ).toBe(true);
    const evidence = criteria.flatMap((cr) => cr.evidence);
    // Each fact in the policy's words (Centene CP.PHAR.312 I.A.4.a "in remission but MRD-positive"), never its name.
    expect(evidence).toContainEqual(
      expect.objectContaining({ fact: 'mrdPositive', label: expect.stringMatching(/^MRD-positive \(minimal residual disease/), source: 'unknown' }),
    );
    expect(evidence.filter((e) => !e.label || e.label === e.fact || /^[a-z]+[A-Z]/.test(e.label))).toEqual([]);
    expect(evidence).toContainEqual(expect.objectContaining({ source: 'ehr', value: true }));
    expect(res.body.items[0].reviewPeriod).toMatchObject({ start: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
  });

  it('shows every dose step of a step-dosed order (BCBSNC Blinatumomab: 9 mcg/day days 1-7, then 28 mcg/day days 8-28), in the queue and the request; was the first step only (screens review F4)', async () => {
    const { app } = pasApp(new MemoryStorage());
    const submitted = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(storyBundle('bcbsnc-status-unknown')));
    expect(submitted.status).toBe(200);
    const id = claimResponseOf(submitted.body).id!;
    const res = await request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect(res.body.case.orders[0]).toMatchObject({
      dose: '9 mcg/day, then 28 mcg/day',
      sig: '9 mcg/day continuous IV infusion, days 1-7; 28 mcg/day continuous IV infusion, days 8-28',
    });
    const queue = await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect(queue.body.pended.find((p: { id: string }) => p.id === id).dose).toBe('9 mcg/day, then 28 mcg/day');
  });

  it('writes answered dates as the rest of the case does: "23 November 2026", a time in UTC; was "2026-11-23" as stored (screens review F11)', () => {
    const bundle = storyBundle('centene-missing-mrd', {
      answers: {
        'order-date': [{ valueDate: '2026-11-23' }],
        'birth-date': [{ valueDate: '1985-03-18' }],
        'mrd-collected': [{ valueDateTime: '2026-11-10T09:30:00-05:00' }],
        'diagnosed-in': [{ valueDate: '2025-06' }],
      },
    });
    const answers = reviewCase(parsePasRequest(bundle as unknown as Record<string, unknown>)).answers[0].items;
    expect(Object.fromEntries(answers.map((a) => [a.linkId, a.answer]))).toEqual({
      'order-date': '23 November 2026',
      'birth-date': '18 March 1985',
      'mrd-collected': '10 November 2026, 14:30 UTC',
      'diagnosed-in': 'June 2025',
    });
  });

  it("gives the member's Coverage period as full dates, a partial end read as its last day (the workbench compares dates)", () => {
    const bundle = storyBundle('centene-missing-mrd');
    const coverage = bundle.entry!.find((e) => e.resource?.resourceType === 'Coverage')!.resource as { period?: { start?: string; end?: string } };
    coverage.period = { start: '2026-07', end: '2026-12' };
    expect(reviewCase(parsePasRequest(bundle as unknown as Record<string, unknown>)).coverage).toEqual({ start: '2026-07-01', end: '2026-12-31' });
    coverage.period = { start: '2026-01-01' };
    expect(reviewCase(parsePasRequest(bundle as unknown as Record<string, unknown>)).coverage).toEqual({ start: '2026-01-01' });
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
    // The response left out the item's text: the reviewer reads the form's question, not the linkId.
    expect(qr.item?.every((i) => i.text === undefined)).toBe(true);
    expect(res.body.case.answers[0].items).toContainEqual({
      linkId: 'mrd-percent',
      question: expect.stringMatching(/^Minimal residual disease \(MRD\) level, in percent/),
      answer: '0.4',
      origin: 'manual',
    });
  });

  it('names each fact in the words the policy has now, also on a request stored before labels were stored', async () => {
    /** Storage as an earlier version left it: each fact's evidence carries `question`, the bare fact name when the fact has no question. */
    class EarlierRecords extends MemoryStorage {
      override async getPasSubmission(id: string) {
        const s = await super.getPasSubmission(id);
        for (const item of (s?.detail as { items?: { criteria: { evidence?: Record<string, unknown>[] }[] }[] } | undefined)?.items ?? [])
          for (const c of item.criteria)
            c.evidence = c.evidence?.map(({ label: _label, ...e }) => ({ ...e, question: e.fact }));
        return s;
      }
    }
    const { app } = pasApp(new EarlierRecords());
    const submitted = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(storyBundle('centene-missing-mrd')));
    const id = claimResponseOf(submitted.body).id!;
    const res = await request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
    const evidence = (res.body.items[0].criteria as { evidence: { fact: string; label: string; question?: string }[] }[]).flatMap((c) => c.evidence);
    expect(evidence.find((e) => e.fact === 'mrdPositive')).toMatchObject({ label: expect.stringMatching(/^MRD-positive/) });
    expect(evidence.find((e) => e.fact === 'inRemission')?.label).toBe('B-ALL in remission');
    expect(evidence.some((e) => 'question' in e)).toBe(false);
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

describe("the reviewer's chart facts", () => {
  it('are newest first by the instant each was taken, whatever time-zone offset it is written in', () => {
    const bundle = storyBundle('centene-missing-mrd');
    const patient = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource!;
    const mrd = (id: string, at: string, value: number): BundleEntry => ({
      fullUrl: `urn:uuid:${id}`,
      resource: {
        resourceType: 'Observation',
        id,
        status: 'final',
        code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'mrd' }] },
        subject: { reference: `Patient/${patient.id}` },
        effectiveDateTime: at,
        valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
      } as Observation,
    });
    // Taken 03:00 UTC on 2 November (later) and 20:00 UTC on 1 November (earlier); the text sorts the other way.
    bundle.entry!.push(mrd('mrd-west', '2026-11-01T22:00:00-05:00', 0.5), mrd('mrd-east', '2026-11-02T01:00:00+05:00', 0));
    const dates = reviewCase(parsePasRequest(bundle as unknown as Record<string, unknown>)).facts
      .map((f) => f.date)
      .filter((d) => d === '2026-11-01T22:00:00-05:00' || d === '2026-11-02T01:00:00+05:00');
    expect(dates).toEqual(['2026-11-01T22:00:00-05:00', '2026-11-02T01:00:00+05:00']);
  });

  it("give a Condition's onset as the rules read it: an onset in words or an age is unknown, its recorded date said as such", () => {
    const bundle = storyBundle('centene-missing-mrd');
    const patient = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource!;
    const relapse = (id: string, onset: Record<string, unknown>): BundleEntry => ({
      fullUrl: `urn:uuid:${id}`,
      resource: {
        resourceType: 'Condition',
        id,
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'relapse' }] },
        code: {
          coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'C91.02', display: 'Acute lymphoblastic leukemia, in relapse' }],
          text: `ALL in relapse (${id})`,
        },
        subject: { reference: `Patient/${patient.id}` },
        recordedDate: '2026-10-01',
        ...onset,
      } as BundleEntry['resource'],
    });
    bundle.entry!.push(
      relapse('words', { onsetString: 'relapse noted at an outside hospital' }),
      relapse('age', { onsetAge: { value: 41, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' } }),
      relapse('period', { onsetPeriod: { start: '2026-09-12' } }),
      relapse('none', {}),
    );
    const facts = reviewCase(parsePasRequest(bundle as unknown as Record<string, unknown>)).facts;
    const of = (id: string) => facts.find((f) => f.what === `ALL in relapse (${id})`)!;
    // The recorded date is the latest the onset can be, not when it was: never given as the Condition's date.
    expect(of('words')).toMatchObject({ onsetUnknown: { recorded: '2026-10-01' } });
    expect(of('words').date).toBeUndefined();
    expect(of('age')).toMatchObject({ onsetUnknown: { recorded: '2026-10-01' } });
    expect(of('age').date).toBeUndefined();
    // An onset period's start is the onset; with no onset at all the recorded date is the only date it has.
    expect(of('period')).toMatchObject({ date: '2026-09-12' });
    expect(of('period').onsetUnknown).toBeUndefined();
    expect(of('none')).toMatchObject({ date: '2026-10-01' });
  });
});

describe('reviewer request view: a renewal answer the chart contradicts', () => {
  it('OHSU IV: a continued-therapy cycle answered "responded or stabilized" with refractory disease recorded since the course began is pended, and the reviewer sees why', async () => {
    const { app } = pasApp(new MemoryStorage());
    const bundle = storyBundle('ohsu-live-vaccine', {
      remove: ['ohsu-live-vaccine-yellow-fever'],
      answers: {
        'no-live-vaccine-on-therapy': [{ valueBoolean: true }],
        'earlier-course-indication': [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'relapsed-refractory' } }],
        'no-unacceptable-toxicity': [{ valueBoolean: true }],
        'disease-response': [{ valueBoolean: true }],
      },
    });
    const resources = bundle.entry!.map((e) => e.resource!);
    // Cycles 6-9 of the relapsed course begun 1 March 2026 (five cycles on record); the marrow of 7 November 2026 is
    // refractory, recorded after the course began.
    const order = resources.find((r) => r.resourceType === 'MedicationRequest') as MedicationRequest;
    order.extension = [{ url: 'https://priorpath.dev/fhir/StructureDefinition/treatment-phase', valueCode: 'continued' }];
    const status = resources.find((r) => r.id === 'ohsu-live-vaccine-status') as Observation;
    status.valueCodeableConcept = { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'refractory', display: 'Refractory' }] };
    bundle.entry!.push({
      fullUrl: 'https://ehr.example.org/fhir/MedicationRequest/ohsu-course-2026-03',
      resource: {
        resourceType: 'MedicationRequest',
        id: 'ohsu-course-2026-03',
        status: 'completed',
        intent: 'order',
        subject: order.subject,
        authoredOn: '2026-03-01',
        medicationCodeableConcept: order.medicationCodeableConcept,
        dispenseRequest: { numberOfRepeatsAllowed: 4 },
      },
    });
    const submitted = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(bundle));
    expect(submitted.status).toBe(200);
    // Pended for review (A4), neither certified on the "yes" nor denied on the status (before: A1 certified).
    expect(reviewActions(claimResponseOf(submitted.body))).toEqual([expect.stringMatching(/#A4$/)]);
    const id = claimResponseOf(submitted.body).id!;
    const res = await request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
    expect(res.status).toBe(200);
    const criteria = res.body.items[0].criteria as { id: string; result: unknown; text: string; evidence: { fact: string; label: string; value?: unknown }[] }[];
    const progression = criteria.find((c) => c.id === 'progression-on-course');
    expect(progression).toMatchObject({ result: false, text: expect.stringMatching(/no relapsed, refractory or progressive disease recorded after the current course began/) });
    expect(progression!.evidence).toContainEqual(
      expect.objectContaining({ fact: 'progressionOnRenewedCourse', label: expect.stringMatching(/^The record shows a relapse from remission/), value: true }),
    );
  }, 60_000);
});
