import type { Extension, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

const SIGN = '/cds-services/priorpath-order-sign';

/**
 * How the DTR reference app reads `appContext` when the launch has no fhirContext: the whole string URI-decoded,
 * then `key=value` pairs split on `&` (HL7-DaVinci/dtr launch handling; the CRD reference implementation's
 * smartLinkBuilder writes `questionnaire=…&order=…&coverage=…`).
 */
function parseLikeDtrReferenceApp(appContext: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const pair of decodeURIComponent(appContext).split('&')) {
    const i = pair.indexOf('=');
    (out[pair.slice(0, i)] ??= []).push(pair.slice(i + 1));
  }
  return out;
}

describe('CRD smart-link card in the reference implementations\' appContext form (configuration dtr-launch-query)', () => {
  const resources = storyResources('centene-missing-mrd');
  const order = storyOrder('centene-missing-mrd', resources);

  it('is off by default: no smart link unless the client asks', async () => {
    const { app } = buildApp();
    const res = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    expect(res.body.cards.some((c: { links?: { type: string }[] }) => c.links?.some((l) => l.type === 'smart'))).toBe(false);
  });

  it('carries questionnaire, order, coverage and the coverage-assertion-id of the systemAction', async () => {
    const { app } = buildApp();
    const body = orderSignRequest(resources, order, { extension: { 'davinci-crd.configuration': { 'dtr-launch-query': true } } });
    const res = await request(app).post(SIGN).send(body).expect(200);
    const link = res.body.cards.flatMap((c: { links?: { type: string; appContext?: string }[] }) => c.links ?? []).find((l: { type: string }) => l.type === 'smart');
    expect(link, 'a smart link').toBeDefined();
    expect(() => JSON.parse(link.appContext)).toThrow();
    const ctx = parseLikeDtrReferenceApp(link.appContext);
    const updated = res.body.systemActions[0].resource as MedicationRequest;
    const info = updated.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
    const sub = (url: string) => info.extension!.filter((e: Extension) => e.url === url);
    expect(ctx.questionnaire).toEqual(sub('questionnaire').map((e) => e.valueCanonical));
    expect(ctx.order).toEqual([`MedicationRequest/${order.id}`]);
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    expect(ctx.coverage).toEqual([`Coverage/${coverage.id}`]);
    expect(ctx.coverageAssertionId).toEqual([sub('coverage-assertion-id')[0].valueString]);
  });

  it('keeps the JSON form for dtr-clin alone', async () => {
    const { app } = buildApp();
    const body = orderSignRequest(resources, order, { extension: { 'davinci-crd.configuration': { 'dtr-clin': true } } });
    const res = await request(app).post(SIGN).send(body).expect(200);
    const link = res.body.cards.flatMap((c: { links?: { type: string; appContext?: string }[] }) => c.links ?? []).find((l: { type: string }) => l.type === 'smart');
    expect(JSON.parse(link.appContext).order).toBe(`MedicationRequest/${order.id}`);
  });
});
