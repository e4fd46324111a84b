/**
 * Documentation sent after a request was pended (design.md §8 "One authorization per order": pended is not a decision;
 * §1 "Claim/$submit (PAS Bundle with the QuestionnaireResponse)"; §5 use 3, the rules over the answered facts): a new
 * PAS request for a pended order is decided over its own documentation. An approval becomes the order's and the pended
 * request takes it; a request still pended changes the pended request's case, so the reviewer reads the answers sent
 * and what is still missing. A resend (same Bundle identifier, or the same request under a new one) is answered as
 * stored, and nothing is lost across a restart (review rev-ui F7).
 */
import { randomUUID } from 'node:crypto';
import type { Bundle } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { OrderKey } from '../../src/storage/storage.js';
import { UNDECIDED } from '../../src/coverage/order-record.js';
import { REVIEW_TOKEN, claimResponseOf, inquiryParameters, pasAppOnDisk, reviewActions, renamed, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const FHIR_JSON = 'application/fhir+json';

const pas = pasAppOnDisk('pasflow');

const submit = pas.submit;
const inquire = (b: Bundle) => request(pas.app).post('/fhir/Claim/$inquire').set('Content-Type', FHIR_JSON).send(JSON.stringify(inquiryParameters({ identifier: b.identifier as { system: string; value: string } })));
const review = (path: string) => request(pas.app).get(`/review${path}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
const pendedIds = async () => ((await review('/pended').expect(200)).body.pended as { id: string }[]).map((p) => p.id);

describe('a PAS request for a pended order, with documentation', () => {
  it('approved over its documentation (MRD 0.52 %, CP.PHAR.312 I.A.4.a): the order is approved and the pended request takes the approval; the reviewer no longer has it', async () => {
    const orderId = `order-${randomUUID()}`;
    const first = storyBundle('centene-missing-mrd', { orderId });
    const pended = claimResponseOf((await submit(first).expect(200)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    expect(await pendedIds()).toContain(pended.id);

    const documented = storyBundle('centene-missing-mrd', { orderId, answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
    const res = await submit(documented);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const approved = claimResponseOf(res.body);
    expect(reviewActions(approved)).toEqual([`${X12}#A1`]);
    expect(approved.preAuthRef).toMatch(/^PA-CENTENE-/);

    // The first request answers the order's approval, and leaves the reviewer's queue.
    const now = claimResponseOf((await inquire(first).expect(200)).body.parameter[0].resource);
    expect(reviewActions(now)).toEqual([`${X12}#A1`]);
    expect(now.preAuthRef).toBe(approved.preAuthRef);
    expect(await pendedIds()).not.toContain(pended.id);
    // Who decided it, in words (review rev-ui F13), not the order record's internal actor.
    const decided = (await review(`/${pended.id}`).expect(200)).body;
    expect(decided.decisions.map((d: { reviewer: string }) => d.reviewer)).toEqual([`Another prior authorization request (${approved.id})`]);
    // A resend of the documented request is answered as stored.
    expect(claimResponseOf((await submit(documented).expect(200)).body).preAuthRef).toBe(approved.preAuthRef);
  });

  it('still pended: the pended request\'s case holds the answers sent (CD22-positive) and what is still missing; a resend, or the same request renamed, changes nothing; all of it survives a restart', async () => {
    const orderId = `order-${randomUUID()}`;
    const first = storyBundle('bcbsnc-inotuzumab-status-unknown', { orderId });
    const pended = claimResponseOf((await submit(first).expect(200)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const before = (await review(`/${pended.id}`).expect(200)).body;
    expect(before.case.answers).toEqual([]);

    const documented = storyBundle('bcbsnc-inotuzumab-status-unknown', { orderId, answers: { 'cd22-positive': [{ valueBoolean: true }] } });
    const res = await submit(documented);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.identifier).toEqual(documented.identifier);
    const answer = claimResponseOf(res.body);
    // One case per order: the pended request, now with the documentation.
    expect(answer.id).toBe(pended.id);
    expect(reviewActions(answer)).toEqual([`${X12}#A4`]);

    const after = (await review(`/${pended.id}`).expect(200)).body;
    expect(after.case.answers).toHaveLength(1);
    expect(after.case.answers[0].items).toContainEqual(expect.objectContaining({ linkId: 'cd22-positive', answer: 'Yes' }));
    expect(after.needed).toEqual(before.needed);
    expect(after.updatedAt > before.updatedAt).toBe(true);
    expect(await pendedIds()).toContain(pended.id);

    // A resend under the same identifier, and the same request under new identifiers, are answered as stored.
    const resent = await submit(documented).expect(200);
    expect(claimResponseOf(resent.body).id).toBe(pended.id);
    const again = renamed(documented);
    const collapsed = await submit(again).expect(200);
    expect(claimResponseOf(collapsed.body).id).toBe(pended.id);
    expect((await review(`/${pended.id}`).expect(200)).body.updatedAt).toBe(after.updatedAt);

    // Nothing lost across a restart: the case keeps the answers, and both requests find it by their identifiers.
    await pas.reopen();
    const restarted = (await review(`/${pended.id}`).expect(200)).body;
    expect(restarted.case.answers[0].items).toContainEqual(expect.objectContaining({ linkId: 'cd22-positive', answer: 'Yes' }));
    for (const b of [first, documented, again]) {
      const found = (await inquire(b).expect(200)).body.parameter;
      expect(found).toHaveLength(1);
      expect(claimResponseOf(found[0].resource).id).toBe(pended.id);
    }
  }, 120_000);

  it('still pended with one thing fewer to ask: an MRD level answered leaves the reviewer told only what is still missing (BCBSNC Blinatumomab, disease status unknown)', async () => {
    const orderId = `order-${randomUUID()}`;
    const first = storyBundle('bcbsnc-status-unknown', { orderId });
    const pended = claimResponseOf((await submit(first).expect(200)).body);
    const before = (await review(`/${pended.id}`).expect(200)).body;
    const mrd = before.needed.find((n: string) => n.startsWith('Minimal residual disease (MRD) level'));
    expect(mrd).toBeDefined();
    expect(before.needed).toContain('Current disease status');

    const documented = storyBundle('bcbsnc-status-unknown', { orderId, answers: { 'mrd-percent': [{ valueDecimal: 0.3 }] } });
    const answer = claimResponseOf((await submit(documented).expect(200)).body);
    expect(answer.id).toBe(pended.id);
    expect(reviewActions(answer)).toEqual([`${X12}#A4`]);
    const after = (await review(`/${pended.id}`).expect(200)).body;
    expect(after.needed).toContain('Current disease status');
    expect(after.needed).not.toContain(mrd);
    const queued = ((await review('/pended').expect(200)).body.pended as { id: string; missing: string[] }[]).find((p) => p.id === pended.id)!;
    expect(queued.missing).toEqual(after.needed);
  });
});

describe('who settled a pended request, in the reviewer\'s words (review rev-ui F13)', () => {
  it('a DTR determination that approved the order shows as "Documentation answers (DTR)", not "dtr: dtr:QuestionnaireResponse"', async () => {
    const pended = claimResponseOf((await submit(storyBundle('bcbsnc-status-unknown', { orderId: `order-${randomUUID()}` })).expect(200)).body);
    const stored = (await pas.storage.getPasSubmission(pended.id!))!;
    const order = (stored.detail as { items: { order: OrderKey }[] }).items[0].order;
    // What src/dtr/submit-response.ts records when the DTR answers (disease status: relapsed) approve the order.
    await pas.storage.applyOrderChange({
      key: order,
      from: UNDECIDED,
      change: { state: 'approved', at: new Date().toISOString(), source: 'dtr', actor: 'dtr:QuestionnaireResponse', reason: 'Meets BCBSNC Blinatumomab: relapsed B-ALL', authorization: { number: 'PA-BCBSNC-20261123-K7QW2M9D', start: '2026-11-23', end: '2027-05-22' } },
    });
    const decided = (await review(`/${pended.id}`).expect(200)).body;
    expect(decided.reviewAction).toBe('A1');
    expect(decided.decisions.map((d: { reviewer: string }) => d.reviewer)).toEqual(['Documentation answers (DTR)']);
  });

  it('the request page says what settled it: the DTR answers, when, and the values the request as filed lacked, under the policy\'s words (review ui s47 #2)', async () => {
    const pended = claimResponseOf((await submit(storyBundle('bcbsnc-status-unknown', { orderId: `order-${randomUUID()}` })).expect(200)).body);
    expect((await review(`/${pended.id}`).expect(200)).body.settled).toBeUndefined();
    const stored = (await pas.storage.getPasSubmission(pended.id!))!;
    const order = (stored.detail as { items: { order: OrderKey }[] }).items[0].order;
    // The DTR determination's coverage assertion, as src/dtr/determination.ts records it, and the order approved on it.
    const at = new Date().toISOString();
    await pas.storage.saveAssertion({
      assertionId: 'dtr-assertion-s47',
      createdAt: at,
      payer: 'bcbsnc',
      policyId: stored.policyId,
      patientId: order.patientId,
      orderRef: order.orderRef,
      hookInstance: 'dtr:QuestionnaireResponse',
      outcome: 'satisfied',
      facts: { mrdPercent: 0.3, phNegative: true, internalScratch: { not: 'a value' } },
      missingFacts: [],
    });
    await pas.storage.applyOrderChange({
      key: order,
      from: UNDECIDED,
      change: { state: 'approved', at, source: 'dtr', actor: 'dtr:QuestionnaireResponse', assertionId: 'dtr-assertion-s47', reason: 'Meets BCBSNC Blinatumomab: MRD-positive B-ALL in remission', authorization: { number: 'PA-BCBSNC-20261207-S47S47S4', start: '2026-12-07', end: '2027-06-05' } },
    });
    const decided = (await review(`/${pended.id}`).expect(200)).body;
    expect(decided.reviewAction).toBe('A1');
    expect(decided.settled).toEqual([
      {
        sequence: 1,
        by: 'Documentation answers (DTR)',
        source: 'dtr',
        at,
        decision: 'approve',
        reason: 'Meets BCBSNC Blinatumomab: MRD-positive B-ALL in remission',
        facts: [
          // What the request as filed lacked: the MRD level. Ph-negative the trace already read (true, from the chart),
          // and a value that is no fact value is not shown.
          { fact: 'mrdPercent', label: 'Minimal residual disease (MRD) level, in percent, from the most recent assessment (within 90 days)', value: 0.3 },
        ],
      },
    ]);
  });
});
