/**
 * The period a reviewer approves by default runs from the course's first cycle when the policy's period is the
 * course's (OHSU HEALTHSERVICES-0382 I "Initial 30 weeks for a total of five cycles"; design.md §6 "Cycles", §8 "The
 * reviewer API"). When the request does not give that start, the reviewer is told and sets the period: no end counted
 * from the order's date is proposed, and an approval without a period is refused.
 */
import type express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { REVIEW_TOKEN, claimResponseOf, pasApp, storyBundle } from './pas-fixtures.js';

const FHIR_JSON = 'application/fhir+json';
const yes = [{ valueBoolean: true }];
const no = [{ valueBoolean: false }];

/** OHSU's relapsed adult, no live vaccine: a later cycle (not cycle 1) of a course begun elsewhere, its start not given. */
function laterCycle(answers: Record<string, unknown[]> = {}) {
  return storyBundle('ohsu-live-vaccine', {
    remove: ['ohsu-live-vaccine-yellow-fever'],
    answers: { 'no-live-vaccine-on-therapy': yes, 'relapsed-course-cycle-one': no, 'cycles-given': [{ valueInteger: 1 }], ...answers } as never,
  });
}

async function submit(app: express.Express, bundle: ReturnType<typeof laterCycle>) {
  const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(bundle));
  expect(res.status).toBe(200);
  return claimResponseOf(res.body);
}

const review = (app: express.Express, id: string) => request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
const decide = (app: express.Express, id: string, body: object) =>
  request(app).post(`/review/${id}/decision`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send({ reviewer: 'Dr. Amara Okafor, PharmD', reason: 'Course start confirmed by phone', ...body });

describe("the reviewer's approval period when the course's first cycle is unknown", () => {
  it('proposes no period counted from the order, says why, and refuses an approval without one; was 30 weeks from the order, silently', async () => {
    const { app } = pasApp(new MemoryStorage());
    const cr = await submit(app, laterCycle());
    expect(cr.item?.[0].adjudication?.[0]).toBeDefined();
    const view = (await review(app, cr.id!).expect(200)).body;
    expect(view.reviewAction).toBe('A4');
    const item = view.items[0];
    expect(item.reviewPeriod.end).toBeUndefined();
    expect(item.periodFrom).toMatchObject({ fact: 'relapsedRefractoryCourseStart', length: '30 weeks' });
    expect(item.periodFrom.text).toMatch(/approval period \(30 weeks\) runs from the start of the first cycle of the relapsed or refractory course/);

    const refused = await decide(app, cr.id!, { decision: 'approve' });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toMatch(/give the approval period/);
    // The reviewer who learnt the course began on 2 October 2026 approves what is left of its 30 weeks.
    const approved = await decide(app, cr.id!, { decision: 'approve', period: { start: '2026-11-20', end: '2027-04-29' } });
    expect(approved.status).toBe(200);
    expect(approved.body.items[0].authorization).toMatchObject({ start: '2026-11-20', end: '2027-04-29' });
  });

  it('counts from the course start the request gives (cycle 1 on 2 October 2026: 30 weeks end 29 April 2027)', async () => {
    const { app } = pasApp(new MemoryStorage());
    const cr = await submit(app, laterCycle({ 'course-first-cycle-start': [{ valueDate: '2026-10-02' }], 'earlier-course-indication': [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'relapsed-refractory' } }] }));
    const item = (await review(app, cr.id!).expect(200)).body.items[0];
    expect(item.periodFrom).toBeUndefined();
    expect(item.reviewPeriod.end ?? item.authorization?.end).toBe('2027-04-29');
  });
});
