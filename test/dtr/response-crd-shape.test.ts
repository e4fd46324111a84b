/**
 * A DTR response's determination carries the approved period as data where the CRD coverage-information extension has
 * a slot for it (design.md §4 "Versions", §7): a response that claims DTR 2.2's QuestionnaireResponse profile is answered
 * in CRD 2.2's shape, `expiry-date` and `detail` allowed-period, as order-sign answers a 2.2 request; one that claims no
 * version keeps the shape CRD 2.0.1 and 2.2 share, which has no such slot and says the period in its reasons.
 * Centene CP.PHAR.312 (Kwame, the MRD level missing from the chart and answered in DTR: I.A.4).
 */
import type { Extension, MedicationRequest, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL, coverageInformationProblems } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { answering, coverageInfo, packageDraft, reasons, sub } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { CANONICAL_BASE, fhirApp } from './helpers.js';

const FHIR = 'application/fhir+json';
const STORY = 'centene-missing-mrd';
const DTR_QR = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-questionnaireresponse';
const DETAIL_CODES = 'http://terminology.hl7.org/CodeSystem/crd-coverage-detail';

type App = ReturnType<typeof buildApp>['app'];

/** Kwame's order signed (CRD 2.2), then its pre-filled response with the MRD level answered, completed, as `profile`. */
async function answered(app: App, profile: string): Promise<{ signed: Extension[]; qr: QuestionnaireResponse }> {
  const order = storyOrder(STORY);
  const hook = orderSignRequest(storyResources(STORY), order) as { extension?: Record<string, unknown> };
  hook.extension = { ...(hook.extension ?? {}), 'davinci-crd.requestedVersion': '2.2' };
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(hook).expect(200);
  const signedOrder = res.body.systemActions[0].resource as MedicationRequest;
  const coverage = storyResources(STORY).find((r) => r.resourceType === 'Coverage');
  const draft = await packageDraft(app, coverage, signedOrder);
  const item = answering(draft, 'mrd-percent', { valueDecimal: 0.4 });
  const qr = { ...draft, item, status: 'completed' as const, meta: { profile: [profile] } };
  return { signed: coverageInfo(signedOrder), qr };
}

async function send(app: App, qr: QuestionnaireResponse): Promise<Extension[]> {
  const created = await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(201);
  return coverageInfo(created.body as QuestionnaireResponse);
}

const allowedPeriod = (ext: Extension[]) =>
  ext
    .filter((e) => e.url === 'detail')
    .find((d) => d.extension?.some((x) => x.url === 'code' && x.valueCodeableConcept?.coding?.some((c) => c.system === DETAIL_CODES && c.code === 'allowed-period')))
    ?.extension?.find((x) => x.url === 'value')?.valuePeriod;

describe("the DTR answer's approval period as data", () => {
  it('a DTR 2.2 response gets expiry-date and the allowed-period detail, as a 2.2 signing does, not the period in words; was words only', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const { signed, qr } = await answered(app, `${DTR_QR}|2.2.0`);
    expect(sub(signed, 'pa-needed')?.valueCode, 'the chart lacks the MRD level').toBe('auth-needed');
    const ext = await send(app, qr);
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
    const number = sub(ext, 'satisfied-pa-id')!.valueString!;
    const period = allowedPeriod(ext);
    expect(period?.start).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(sub(ext, 'expiry-date')?.valueDate).toBe(period?.end);
    expect(reasons(ext).join(' ')).not.toContain(`Authorization ${number} is valid from`);
    expect(coverageInformationProblems({ url: 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information', extension: ext }, '2.2')).toEqual([]);
  });

  it('a response claiming no DTR version keeps the shared shape: no expiry-date, the period in its reasons', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const { qr } = await answered(app, DTR_QR);
    const ext = await send(app, qr);
    const number = sub(ext, 'satisfied-pa-id')!.valueString!;
    expect(sub(ext, 'expiry-date')).toBeUndefined();
    expect(allowedPeriod(ext)).toBeUndefined();
    expect(reasons(ext).join(' ')).toContain(`Authorization ${number} is valid from`);
  });
});

describe('the adaptive form keeps the DTR version its response declared', () => {
  // Before: $next-question answered every step claiming dtr-questionnaireresponse-adapt with no version, so the
  // client's next step, and the completed determination, fell back to the shared shape whatever the client declared.
  const ADAPT = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-questionnaireresponse-adapt';
  const start = (profile: string): QuestionnaireResponse => ({
    resourceType: 'QuestionnaireResponse',
    meta: { profile: [profile] },
    questionnaire: `${CANONICAL_BASE}/Questionnaire/centene-blinatumomab|2026-11`,
    status: 'in-progress',
    subject: { reference: 'Patient/p1' },
    item: [
      { linkId: 'daily-dose', answer: [{ valueDecimal: 28 }] },
      { linkId: 'dose-guideline-supported', answer: [{ valueBoolean: false }] },
    ],
  });

  it.each([`${ADAPT}|2.2.0`, `${DTR_QR}|2.2.0`])('each step, and the completion, claims DTR 2.2 when the first step claimed %s', async (profile) => {
    const { app } = fhirApp();
    let qr = start(profile);
    const claimed: string[][] = [];
    for (let step = 0; step < 12 && qr.status !== 'completed'; step++) {
      qr = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
      claimed.push(qr.meta?.profile ?? []);
    }
    expect(qr.status).toBe('completed');
    expect(new Set(claimed.flat())).toEqual(new Set([`${ADAPT}|2.2.0`]));
    const info = (qr.extension ?? []).find((e) => e.url === COVERAGE_INFO_URL)!;
    expect(coverageInformationProblems(info, '2.2')).toEqual([]);
  });

  it('a response claiming no version is answered claiming none', async () => {
    const { app } = fhirApp();
    const out = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(start(ADAPT))).expect(200)).body as QuestionnaireResponse;
    expect(out.meta?.profile).toEqual([ADAPT]);
  });
});
