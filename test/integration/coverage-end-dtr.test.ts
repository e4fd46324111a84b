import type { Bundle, Coverage, Extension, MedicationRequest, Questionnaire, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { coverageInfo, packageDraft, sub } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { CANONICAL_BASE, withAnswers } from '../dtr/helpers.js';

/**
 * DTR judges the Coverage as CRD and PAS do (docs/design.md §4 "Payer"): `$questionnaire-package` on the dates of the
 * orders it is for, not on the day it is asked; and an approval a completed response gives ends no later than the
 * last day of the Coverage CRD judged the order under (review s43 F1; the response names the Coverage only by
 * reference). The story: a Centene member's Blincyto order, planned start 2026-11-21, whose MRD result is missing at
 * signing (documentation needed) and answered in DTR (MRD 0.6 %: approved by CP.PHAR.312).
 */
const STORY = 'centene-missing-mrd';
const SIGN = '/cds-services/priorpath-order-sign';
const TODAY = '2026-11-19';

function withCoverage(change: Partial<Coverage>): Resource[] {
  return storyResources(STORY).map((r) => (r.resourceType === 'Coverage' ? { ...r, ...change } : r));
}

function packageRequest(coverage: Resource, order?: MedicationRequest, context?: string) {
  return {
    resourceType: 'Parameters',
    meta: { profile: ['http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.2.0'] },
    parameter: [
      { name: 'coverage', resource: coverage },
      ...(order ? [{ name: 'order', resource: order }] : []),
      ...(context ? [{ name: 'context', valueString: context }] : []),
    ],
  };
}

const askPackage = (app: Parameters<typeof request>[0], body: object) =>
  request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', 'application/fhir+json').send(JSON.stringify(body));

/** Sets (or adds) the answer of the item with `linkId`, wherever it is nested. */
function answer(items: { linkId: string; item?: unknown[]; answer?: unknown[] }[], linkId: string, value: unknown[]): void {
  const find = (list: typeof items): boolean =>
    list.some((i) => (i.linkId === linkId ? ((i.answer = value), true) : find((i.item ?? []) as typeof items)));
  if (!find(items)) items.push({ linkId, answer: value });
}

/**
 * The story's order signed under `resources` (CRD: documentation needed), its form drafted by `$questionnaire-package`
 * under `coverage` (the Coverage the DTR launch names; default the one signing judged), the missing MRD answered
 * (0.6 %) and the completed response saved: the order, the signed order and the saved response's coverage-information.
 */
async function signedAndAnswered(app: ReturnType<typeof buildApp>['app'], resources: Resource[], coverage = resources.find((r) => r.resourceType === 'Coverage')!) {
  const order = storyOrder(STORY, resources);
  const signed = (await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200)).body.systemActions[0].resource as MedicationRequest;
  const qr = await packageDraft(app, coverage, signed);
  answer((qr.item ??= []) as never, 'mrd-percent', [{ valueDecimal: 0.6 }]);
  qr.status = 'completed';
  const saved = await request(app).post('/fhir/QuestionnaireResponse').send(qr).expect(201);
  return { order, signed, info: coverageInfo(saved.body as { extension?: Extension[] }) };
}

describe('DTR: the Coverage judged on the order dates, and approvals within it', () => {
  it("caps a completed response's approval at the last day of the Coverage the order was signed under", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = withCoverage({ period: { start: '2026-01-01', end: '2026-12-31' } });
    const { order, signed, info } = await signedAndAnswered(app, resources);
    expect(sub(coverageInfo(signed), 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(sub(info, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(info, 'satisfied-pa-id')!.valueString!;
    // Six months from 2026-11-21 would run to 2027-05-21. The DTR 2.0 coverage-information states no period: its
    // assertion and the order's record hold it.
    const assertion = await storage.getAssertion(sub(info, 'coverage-assertion-id')!.valueString!);
    expect(assertion?.authorization).toEqual({ number, start: '2026-11-21', end: '2026-12-31' });
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const record = await storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' });
    expect(record?.authorization).toEqual({ number, start: '2026-11-21', end: '2026-12-31' });
  });

  it('caps at the end of the Coverage signing judged even when the response names another Coverage, whose end a reference does not give (review-diff s45 M2)', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = withCoverage({ period: { start: '2026-01-01', end: '2026-12-31' } });
    // The plan renewed: the EHR's DTR launch names the new Coverage, in force through 2027.
    const old = resources.find((r) => r.resourceType === 'Coverage')!;
    const renewed = { ...old, id: `${old.id}-2027`, period: { start: '2026-01-01', end: '2027-12-31' } };
    const { info } = await signedAndAnswered(app, resources, renewed);
    expect(sub(info, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(info, 'satisfied-pa-id')!.valueString!;
    const assertion = await storage.getAssertion(sub(info, 'coverage-assertion-id')!.valueString!);
    // The response names the renewed Coverage by reference only (any id would do): the approval is issued under the
    // Coverage signing judged, and ends on its last day, not six months on (2027-05-20).
    expect(assertion?.authorization).toEqual({ number, start: '2026-11-21', end: '2026-12-31' });
  });

  it("caps the approval of an adaptive form completed by $next-question at the Coverage's last day", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = withCoverage({ period: { start: '2026-01-01', end: '2026-12-31' } });
    const order = storyOrder(STORY, resources);
    const signedRes = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const signed: MedicationRequest = signedRes.body.systemActions[0].resource;
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const pkg = await askPackage(app, {
      ...packageRequest(coverage, signed),
      parameter: [...packageRequest(coverage, signed).parameter, { name: 'questionnaire', valueCanonical: `${CANONICAL_BASE}/Questionnaire/centene-blinatumomab-adaptive` }],
    }).expect(200);
    const bundle = pkg.body.parameter.find((p: { name: string }) => p.name === 'packagebundle').resource as Bundle;
    let qr = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
    const next = (r: QuestionnaireResponse) =>
      request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', 'application/fhir+json').send(JSON.stringify(r)).expect(200);
    for (let round = 0; round < 6 && qr.status !== 'completed'; round++) {
      qr = (await next(qr)).body as QuestionnaireResponse;
      if (qr.status === 'completed') break;
      const asked = ((qr.contained?.[0] as Questionnaire | undefined)?.item ?? []).map((i) => i.linkId);
      qr = withAnswers(qr, {
        ...(asked.includes('mrd-percent') ? { 'mrd-percent': [{ valueDecimal: 0.6 }] } : {}),
        ...(asked.includes('weight') ? { weight: [{ valueDecimal: 66 }] } : {}),
      });
    }
    const info = coverageInfo(qr as { extension?: Extension[] });
    expect(sub(info, 'pa-needed')!.valueCode).toBe('satisfied');
    const assertion = await storage.getAssertion(sub(info, 'coverage-assertion-id')!.valueString!);
    expect(assertion?.authorization).toMatchObject({ start: '2026-11-21', end: '2026-12-31' });
  });

  it('$questionnaire-package refuses a Coverage in force today that ends before the order starts, naming both dates', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = withCoverage({ period: { start: '2026-01-01', end: '2026-11-20' } });
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const res = await askPackage(app, packageRequest(coverage, storyOrder(STORY, resources)));
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/No active Coverage.*ended on 2026-11-20.*order date 2026-11-21/);
  });

  it('$questionnaire-package drafts the form under a Coverage that begins after today but by the order start (s40 M4)', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = withCoverage({ period: { start: '2026-11-21' } });
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const res = await askPackage(app, packageRequest(coverage, storyOrder(STORY, resources)));
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).toBe(200);
    const bundle = res.body.parameter.find((p: { name: string }) => p.name === 'packagebundle')?.resource;
    expect(bundle?.entry?.[0]?.resource?.resourceType).toBe('Questionnaire');
  });

  it("$questionnaire-package asked by the CRD assertion alone (context) judges the Coverage on the date that assertion judged the order on", async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = withCoverage({ period: { start: '2026-01-01' } });
    const order = storyOrder(STORY, resources);
    const signedRes = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const signed: MedicationRequest = signedRes.body.systemActions[0].resource;
    const assertionId = sub(coverageInfo(signed), 'coverage-assertion-id')!.valueString!;
    // The member's Coverage as the DTR client sends it: in force today, ended before the order's start.
    const ended = { ...resources.find((r) => r.resourceType === 'Coverage')!, period: { start: '2026-01-01', end: '2026-11-20' } };
    const res = await askPackage(app, packageRequest(ended, undefined, assertionId));
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/No active Coverage.*ended on 2026-11-20.*order date 2026-11-21/);
  });
});
