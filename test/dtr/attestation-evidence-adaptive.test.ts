/**
 * The adaptive form asks for the document that proves an attestation (attachments `proves`, CP.PHAR.312 I.A.5.b
 * "prescriber must submit supporting evidence") once it is answered "Yes" without it, as the standard form shows the
 * document beside the "Yes" (test/policies/attachment-proves.test.ts).
 */
import type { Extension, QuestionnaireItem, QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { CANONICAL_BASE, fhirApp } from './helpers.js';

const FHIR = 'application/fhir+json';

function response(items: QuestionnaireResponseItem[]): QuestionnaireResponse {
  return {
    resourceType: 'QuestionnaireResponse',
    questionnaire: `${CANONICAL_BASE}/Questionnaire/centene-blinatumomab|2026-11`,
    status: 'in-progress',
    subject: { reference: 'Patient/p1' },
    item: [
      { linkId: 'daily-dose', answer: [{ valueDecimal: 56 }] },
      { linkId: 'dose-guideline-supported', answer: [{ valueBoolean: true }] },
      ...items,
    ],
  };
}

async function nextItems(qr: QuestionnaireResponse): Promise<QuestionnaireItem[]> {
  const { app } = fhirApp();
  const out = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
  const form = out.contained?.find((r) => r.resourceType === 'Questionnaire');
  return form?.resourceType === 'Questionnaire' ? (form.item ?? []) : [];
}

describe('$next-question: an attestation answered "Yes" without its proving document', () => {
  it('asks for the dose evidence', async () => {
    const doc = (await nextItems(response([]))).find((i) => i.linkId === 'dose-evidence');
    expect(doc).toMatchObject({ type: 'attachment' });
  });

  it('does not ask for it once it is attached', async () => {
    const attached = { linkId: 'dose-evidence', answer: [{ valueAttachment: { contentType: 'application/pdf', data: 'JVBERi0xLjQ=' } }] };
    expect((await nextItems(response([attached]))).map((i) => i.linkId)).not.toContain('dose-evidence');
  });
});

describe('$next-question completed with the "Yes" still unproven (CP.PHAR.312 I.A.5.b)', () => {
  it('names the missing document in the completion, as PAS does in what it pends for, not only the limit the document would lift', async () => {
    const { app } = fhirApp();
    let qr = response([]);
    // Each step sent back as returned, nothing more answered: the form asks what it still needs, then completes.
    for (let step = 0; step < 12 && qr.status !== 'completed'; step++) {
      qr = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
    }
    expect(qr.status).toBe('completed');
    const info = (qr.extension ?? []).find((e) => e.url === COVERAGE_INFO_URL)!;
    const sub = (url: string): Extension[] => (info.extension ?? []).filter((e) => e.url === url);
    expect(sub('pa-needed')[0]?.valueCode).toBe('auth-needed');
    const reasons = sub('reason').map((r) => r.valueCodeableConcept?.text ?? '');
    expect(reasons[0]).toMatch(/^Outside the policy limit: Dose does not exceed 28 mcg per day/);
    // PAS pends the same answers "Needed: … (if yes, attach: …)" (test/pas/attestation-evidence.test.ts).
    expect(reasons.some((r) => /^Prior authorization needed\. Still to document \(CP\.PHAR\.312 .*Is the requested dose supported by practice guidelines .*\(if yes, attach: Practice guideline or peer-reviewed literature supporting a dose above 28 mcg per day/.test(r))).toBe(true);
  });
});
