import type { Extension, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

const SIGN = '/cds-services/priorpath-order-sign';

/**
 * How the DTR reference app reads a legacy `appContext` (HL7-DaVinci/dtr, src/index.js): `+` turned into `%20`, the
 * whole string URI-decoded, split on `&`, each pair split on `=` keeping the part between the first and second `=`,
 * and the first value of a key kept (the CRD reference implementation's smartLinkBuilder writes
 * `questionnaire=…&order=…&coverage=…`). Every value is collected here too, to show there is one per key.
 */
function parseLikeDtrReferenceApp(appContext: string): { kept: Record<string, string>; all: Record<string, string[]> } {
  const kept: Record<string, string> = {};
  const all: Record<string, string[]> = {};
  for (const pair of decodeURIComponent(appContext.replace(/\+/g, '%20')).split('&')) {
    const [key, value] = pair.split('=');
    kept[key] ||= value;
    (all[key] ??= []).push(value);
  }
  return { kept, all };
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
    const { kept, all } = parseLikeDtrReferenceApp(link.appContext);
    const updated = res.body.systemActions[0].resource as MedicationRequest;
    const info = updated.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
    const sub = (url: string) => info.extension!.filter((e: Extension) => e.url === url);
    expect(all.questionnaire).toEqual(sub('questionnaire').map((e) => e.valueCanonical));
    expect(kept.order).toBe(`MedicationRequest/${order.id}`);
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    expect(kept.coverage).toBe(`Coverage/${coverage.id}`);
    // The reference app sends appContext.context to $questionnaire-package as `context`: the coverage-assertion-id.
    const assertionId = sub('coverage-assertion-id')[0].valueString;
    expect(all.context).toEqual([assertionId]);
    expect(all.coverageAssertionId).toEqual([assertionId]);
    for (const values of Object.values(all)) expect(values).toHaveLength(1);
  });

  it('keeps the JSON form for dtr-clin alone', async () => {
    const { app } = buildApp();
    const body = orderSignRequest(resources, order, { extension: { 'davinci-crd.configuration': { 'dtr-clin': true } } });
    const res = await request(app).post(SIGN).send(body).expect(200);
    const link = res.body.cards.flatMap((c: { links?: { type: string; appContext?: string }[] }) => c.links ?? []).find((l: { type: string }) => l.type === 'smart');
    expect(JSON.parse(link.appContext).order).toBe(`MedicationRequest/${order.id}`);
  });
});
