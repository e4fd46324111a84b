import type { Bundle, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { REVIEW_TOKEN, claimResponseOf, inquiryParameters, pasAppOnDisk, reviewActions, storyBundle } from './pas-fixtures.js';

// CP.PHAR.312 I.A.5.b: "Dose is supported by practice guidelines or peer-reviewed literature ... (prescriber must
// submit supporting evidence)". The Centene policy's dose-evidence attachment `proves: [doseGuidelineSupported]`, so a
// "Yes" counts only with the document attached (cds-services/README.md attachments).

const X12 = 'https://codesystem.x12.org/005010/306';
const FHIR_JSON = 'application/fhir+json';
/** A guideline excerpt as inline base64 (PAS carries attachments inline). */
const EVIDENCE = { contentType: 'application/pdf', title: 'Dose guideline excerpt', data: Buffer.from('%PDF-1.4 guideline excerpt').toString('base64') };

const pas = pasAppOnDisk('pas-evidence');

const submit = pas.submit;
const inquire = (body: unknown) => request(pas.app).post('/fhir/Claim/$inquire').set('Content-Type', FHIR_JSON).send(JSON.stringify(body));
const review = (id: string) => request(pas.app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);

/** The over-dose story (56 mcg/day, 90 kg adult) as its own order, with these answers. */
function overDose(orderId: string, answers: Record<string, QuestionnaireResponseItem['answer']>): Bundle {
  return storyBundle('centene-over-dose', { orderId, answers });
}

describe('PAS: an attestation the seed conditions on submitted evidence (CP.PHAR.312 I.A.5.b, II.A.3.b)', () => {
  it('pends (A4, documentation) a "yes" to dose-guideline-supported without the dose evidence attached, naming the document; never A1, never A3', async () => {
    const res = await submit(overDose('over-dose-yes-no-evidence', { 'dose-guideline-supported': [{ valueBoolean: true }] }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(cr.preAuthRef).toBeUndefined();
    expect(JSON.stringify(cr.processNote)).toMatch(/attach: Practice guideline or peer-reviewed literature supporting a dose above 28 mcg per day/);

    // The reviewer's trace: the attestation is unknown, not an answered "Yes" (the limit reads an unknown attestation
    // as not lifting it, as at signing: policy notes, "At signing the attestation is unknown").
    const detail = await review(cr.id!);
    expect(detail.status).toBe(200);
    const limit = detail.body.items[0].criteria.find((c: { id: string }) => c.id === 'max-daily-dose');
    expect(limit.evidence.find((e: { fact: string }) => e.fact === 'doseGuidelineSupported')).toMatchObject({ source: 'unknown' });

    const inq = await inquire(inquiryParameters({ preAuthRef: cr.id }));
    expect(reviewActions(claimResponseOf(inq.body.parameter[0].resource))).toEqual([`${X12}#A4`]);
  });

  it('an attachment item without data or url does not prove it either', async () => {
    const res = await submit(
      overDose('over-dose-yes-empty-attachment', {
        'dose-guideline-supported': [{ valueBoolean: true }],
        'dose-evidence': [{ valueAttachment: { contentType: 'application/pdf', title: 'no content' } }],
      }),
    );
    expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A4`]);
  });

  it('certifies (A1) the same "yes" with the dose evidence attached, as before', async () => {
    const res = await submit(
      overDose('over-dose-yes-evidence', {
        'dose-guideline-supported': [{ valueBoolean: true }],
        'dose-evidence': [{ valueAttachment: EVIDENCE }],
      }),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.preAuthRef).toMatch(/^PA-CENTENE-/);
    // The certification says the dose is over I.A.5.a and was accepted on the submitted justification (review s42 F2).
    expect(JSON.stringify(cr)).toMatch(/Over the policy limit, accepted on the prescriber's justification: Dose does not exceed 28 mcg per day[^"]*\(CP\.PHAR\.312 I\.A\.5/);
  });

  it('a "no" needs no document: the dose is outside the limit and goes to clinical review (A4), as before', async () => {
    const res = await submit(overDose('over-dose-no', { 'dose-guideline-supported': [{ valueBoolean: false }] }));
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(JSON.stringify(cr.processNote)).toMatch(/Needed: Clinical review: the order is outside the limit .*28/);
    expect(JSON.stringify(cr.processNote)).not.toMatch(/attach:/);
  });
});
