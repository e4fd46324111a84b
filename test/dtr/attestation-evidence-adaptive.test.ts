/**
 * The adaptive form asks for the document that proves an attestation (attachments `proves`, CP.PHAR.312 I.A.5.b
 * "prescriber must submit supporting evidence") once it is answered "Yes" without it, as the standard form shows the
 * document beside the "Yes" (test/policies/attachment-proves.test.ts).
 */
import type { QuestionnaireItem, QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
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
