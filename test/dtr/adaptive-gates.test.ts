/**
 * `$next-question` asks a question only of the patients it concerns (design.md §6 "Clinical readings"; forms review
 * s39 M1). The adaptive form carries no enableWhen (DTR dtr-questionnaire-adapt), so a question whose `askWhen` is still
 * open waits for the facts it reads: the birth date before the age-band questions, the Ph status before the TKI
 * questions, "is this a renewal?" before the renewal follow-ups. Before, they were asked in the same round as their
 * gates, and stayed in the form stating a false age ("This patient is 15 to 17 years old") to an 8-year-old's clinician.
 */
import type { Questionnaire, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { answerItem, bareAdaptiveResponse, dtrContent, EVIDENCE, fhirApp } from './helpers.js';

const FHIR = 'application/fhir+json';
const content = dtrContent();
const code = (c: string) => ({ valueCoding: { system: EVIDENCE, code: c } });

/** Runs the adaptive form of `policyId` from nothing, answering what `answers` holds; the linkIds asked, round by round. */
async function adaptiveRounds(policyId: string, answers: Record<string, Record<string, unknown>>): Promise<string[][]> {
  const policy = content.policies.find((p) => p.file.id === policyId)!;
  const { app } = fhirApp();
  let qr = bareAdaptiveResponse(policy.questionnaire);
  const rounds: string[][] = [];
  let seen = 0;
  for (let round = 0; round < 30 && qr.status !== 'completed'; round++) {
    qr = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
    const items = ((qr.contained![0] as Questionnaire).item ?? []).map((i) => i.linkId);
    const fresh = items.slice(seen);
    seen = items.length;
    rounds.push(fresh);
    for (const l of fresh) if (answers[l]) answerItem(qr, undefined, l, answers[l]);
  }
  expect(qr.status).toBe('completed');
  return rounds;
}

describe('$next-question asks the gates of a question before the question', () => {
  it('OHSU, an 8-year-old with Ph-negative relapsed B-ALL on a first request: no age-band, Ph-positive or renewal follow-up question is ever asked, and the birth date comes before any', async () => {
    const rounds = await adaptiveRounds('ohsu-blinatumomab', {
      'b-all-diagnosis': { valueBoolean: true },
      'disease-status': code('relapsed'),
      'treatment-phase': code('induction'),
      'cycles-given': { valueInteger: 0 },
      'renewal-request': { valueBoolean: false },
      'birth-date': { valueDate: '2018-05-02' },
      'ph-status': code('negative'),
      'cd19-positive': { valueBoolean: true },
    });
    const asked = rounds.flat();
    expect(asked).toContain('birth-date');
    expect(asked).toContain('ph-status');
    expect(asked).toContain('renewal-request');
    for (const never of ['aya-adult-criteria', 'aya-pediatric-criteria', 'first-line', 'tki-refractory', 'tki-intolerant-or-refractory', 'with-pediatric-tki', 'infant-all', 'with-interfant', 'earlier-course-indication', 'renewal-of-authorization', 'no-unacceptable-toxicity', 'disease-response']) {
      expect(asked, never).not.toContain(never);
    }
  });

  it('OHSU, the same child whose birth date is left unanswered: the age-band questions are then asked, as the form would show them', async () => {
    const rounds = await adaptiveRounds('ohsu-blinatumomab', {
      'b-all-diagnosis': { valueBoolean: true },
      'disease-status': code('relapsed'),
      'treatment-phase': code('induction'),
      'renewal-request': { valueBoolean: false },
      'ph-status': code('negative'),
    });
    const asked = rounds.flat();
    const birth = rounds.findIndex((r) => r.includes('birth-date'));
    const aya = rounds.findIndex((r) => r.includes('aya-adult-criteria'));
    expect(birth).toBeGreaterThanOrEqual(0);
    expect(aya, 'asked once its gate was asked and left open').toBeGreaterThan(birth);
    expect(asked).not.toContain('tki-refractory');
  });

  it('Centene, an adult first request: the renewal follow-ups are not asked once "is this a renewal?" is answered no', async () => {
    const rounds = await adaptiveRounds('centene-blinatumomab', {
      'b-all-diagnosis': { valueBoolean: true },
      'disease-status': code('cr1'),
      'treatment-phase': code('consolidation'),
      'cycles-given': { valueInteger: 0 },
      'renewal-request': { valueBoolean: false },
      'birth-date': { valueDate: '1980-03-01' },
      'ph-status': code('negative'),
    });
    const asked = rounds.flat();
    const renewal = rounds.findIndex((r) => r.includes('renewal-request'));
    expect(renewal).toBeGreaterThanOrEqual(0);
    const policy = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const followUps = policy.facts.filter((f) => f.def.askWhen?.trim() === 'renewalRequest = true').map((f) => f.def.linkId!);
    expect(followUps.length).toBeGreaterThan(0);
    for (const l of followUps) expect(asked, l).not.toContain(l);
  });

  it('BCBSNC Besponsa, cycle 1 of relapsed B-ALL: neither the HSCT plan nor the MRD level is asked, as the static form hides both', async () => {
    const rounds = await adaptiveRounds('bcbsnc-inotuzumab', {
      'cancer-diagnosis': { valueBoolean: true },
      'b-all-diagnosis': { valueBoolean: true },
      'disease-status': code('relapsed'),
      'renewal-request': { valueBoolean: false },
      'cycles-requested': { valueInteger: 1 },
      'cycles-given': { valueInteger: 0 },
      'birth-date': { valueDate: '1980-03-01' },
      'inotuzumab-dose': { valueDecimal: 0.8 },
      'inotuzumab-doses-per-cycle': { valueInteger: 3 },
      'inotuzumab-cycle-dose': { valueDecimal: 1.8 },
    });
    const asked = rounds.flat();
    expect(asked).toContain('cycles-requested');
    for (const never of ['proceeding-to-hsct', 'mrd-percent', 'cd22-positive']) expect(asked, never).not.toContain(never);
  });

  it('BCBSNC Besponsa, a third cycle after 2 for a patient proceeding to transplant in CR: the MRD level is asked, as the static form shows it', async () => {
    const rounds = await adaptiveRounds('bcbsnc-inotuzumab', {
      'cancer-diagnosis': { valueBoolean: true },
      'b-all-diagnosis': { valueBoolean: true },
      'disease-status': code('refractory'),
      'renewal-request': { valueBoolean: true },
      'earlier-course-indication': code('relapsed-refractory'),
      'currently-receiving': { valueBoolean: true },
      'cycles-requested': { valueInteger: 1 },
      'cycles-given': { valueInteger: 2 },
      'birth-date': { valueDate: '1980-03-01' },
      'inotuzumab-dose': { valueDecimal: 0.5 },
      'inotuzumab-doses-per-cycle': { valueInteger: 3 },
      'inotuzumab-cycle-dose': { valueDecimal: 1.5 },
      'proceeding-to-hsct': { valueBoolean: true },
      'inotuzumab-cr-cri': { valueBoolean: true },
      'mrd-percent': { valueDecimal: 0.5 },
    });
    const asked = rounds.flat();
    expect(asked).toContain('proceeding-to-hsct');
    expect(asked).toContain('mrd-percent');
  });
});
