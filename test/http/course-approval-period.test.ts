/**
 * A later cycle's approval period ends with its course's initial authorization at signing (CRD `expiry-date`, the
 * stored `satisfied-pa-id` period), in DTR and in PAS (`preAuthPeriod`) alike (design.md §5 "satisfied"; cds-services/README.md
 * "Facts", `approval.from`). The requests are the payer pharmacist's (review F2, rrc5-ohsu): cycle 5 of an OHSU
 * relapsed/refractory course whose first cycle began 2026-07-01 (induction x2, consolidation x2 on record), ordered
 * for 2026-12-10, in second remission. HEALTHSERVICES-0382 I: "Initial: ... 30 weeks for a total of five cycles", so
 * the period ends on 2027-01-26 (course start + 30 weeks), not 2027-07-07 (30 weeks from the order). At signing, BCBSNC
 * continued therapy (rr6-bcbsnc-rep3): its 78 weeks are "the full 9-cycle course" (policy notes), so cycles 6-9 of a
 * course begun 2026-06-11 expire on 2027-12-08, not 2028-06-07.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, ClaimResponse, Extension, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { buildApp } from '../helpers/app.js';
import { repoRoot } from '../helpers/stories.js';

const fixture = (name: string) => JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'course-period', name), 'utf8')) as Record<string, unknown>;
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const PERIOD = { start: '2026-12-10', end: '2027-01-26' };
const SIGN = '/cds-services/priorpath-order-sign';
const coverageInfo = (extensions: Extension[]) => extensions.find((e) => e.url === COVERAGE_INFO)!;
const sub = (info: Extension, url: string) => info.extension!.find((e) => e.url === url);

describe('a later cycle of a course is approved to the end of the course\'s initial authorization', () => {
  it('at signing (BCBSNC rr6-bcbsnc-rep3): continued therapy, cycles 6-9 of a course begun 2026-06-11, expires with the course\'s 78 weeks', async () => {
    const storage = new MemoryStorage();
    const { app } = buildApp({ today: '2026-12-05', storage });
    const res = await request(app).post(SIGN).send(fixture('rr6-bcbsnc-rep3.order-sign.json')).expect(200);
    const info = coverageInfo(res.body.systemActions[0].resource.extension as Extension[]);
    expect(sub(info, 'pa-needed')?.valueCode, JSON.stringify(res.body)).toBe('satisfied');
    expect(sub(info, 'expiry-date')?.valueDate).toBe('2027-12-08');
    const stored = await storage.getAssertion(sub(info, 'coverage-assertion-id')!.valueString!);
    expect(stored?.authorization).toMatchObject({ start: '2026-12-10', end: '2027-12-08' });
  });

  it('in DTR: the completed form (the live-vaccine attestation OHSU asks of every order) approves to course start + 30 weeks', async () => {
    const storage = new MemoryStorage();
    const { app } = buildApp({ today: '2026-12-05', storage });
    const signed = await request(app).post(SIGN).send(fixture('rrc5-ohsu.order-sign.json')).expect(200);
    const order = signed.body.systemActions[0].resource as { extension: Extension[] };
    const assertion = coverageInfo(order.extension);
    expect(sub(assertion, 'pa-needed')?.valueCode).toBe('auth-needed');
    const pas = fixture('rrc5-ohsu.pas.json') as unknown as Bundle;
    const qr = structuredClone(pas.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse);
    delete qr.id;
    qr.extension = [{ url: COVERAGE_INFO, extension: [{ url: 'coverage-assertion-id', valueString: sub(assertion, 'coverage-assertion-id')!.valueString }] }];
    const created = await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', 'application/fhir+json').send(JSON.stringify(qr)).expect(201);
    const info = coverageInfo((created.body as QuestionnaireResponse).extension!);
    expect(sub(info, 'pa-needed')?.valueCode, JSON.stringify(created.body)).toBe('satisfied');
    const stored = await storage.getAssertion(sub(info, 'coverage-assertion-id')!.valueString!);
    expect(stored?.authorization).toMatchObject(PERIOD);
  });

  it('in PAS: preAuthPeriod ends at course start + 30 weeks', async () => {
    const { app } = buildApp({ today: '2026-12-05' });
    const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(fixture('rrc5-ohsu.pas.json'))).expect(200);
    const cr = (res.body as Bundle).entry![0].resource as ClaimResponse;
    expect(cr.outcome, JSON.stringify(cr)).toBe('complete');
    expect(cr.preAuthPeriod).toEqual(PERIOD);
  });
});
