/**
 * Embedded storage knows which orders have no record (it is its database's only writer) and answers their reads
 * without a statement. What must not change for a user: a decision made by the reviewer, or by PAS, is what the next
 * order-sign answers, also after a restart on the same DATA_DIR; an order never seen is still evaluated afresh.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Extension } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { createLogger } from '../../src/logger.js';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { BASE, testContent } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

const SIGN = '/cds-services/priorpath-order-sign';
const X12 = 'https://codesystem.x12.org/005010/306';
const REVIEW_TOKEN = 'review-token-for-embedded-records';
const STORY = 'centene-missing-mrd';

function appOn(storage: SqlStorage, dir: string) {
  const config = loadConfig({ PUBLIC_BASE_URL: BASE, CDS_AUTH: 'open', PAYER_API_AUTH: 'open', LOG_LEVEL: 'silent', DATA_DIR: dir, REVIEW_TOKEN });
  return createApp({ config, content: testContent(), storage, logger: createLogger('silent'), today: () => '2026-11-23' });
}

const coverageInfo = (body: { systemActions: { resource: { extension?: Extension[] } }[] }) => {
  const ext = body.systemActions[0].resource.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
  const sub = (url: string) => ext.extension!.find((e) => e.url === url);
  return { paNeeded: sub('pa-needed')?.valueCode, number: sub('satisfied-pa-id')?.valueString };
};

describe('embedded storage: order records without a read for orders it has never recorded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-embedded-records-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("answers the reviewer's approval at the next signing, and again after a restart; a new order is evaluated afresh", async () => {
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const key = { payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' };

    const first = await createStorage({ dataDir: dir });
    let number: string;
    try {
      const app = appOn(first, dir);
      expect(await first.findOrderRecords({ payer: 'centene', patientId, orderRefs: [key.orderRef] })).toEqual([]);
      // Signing: documentation is needed; the order's record is written behind the answer and read back at once.
      const signed = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
      expect(coverageInfo(signed.body).paNeeded).toBe('auth-needed');
      expect(await first.findOrderRecords({ payer: 'centene', patientId, orderRefs: [key.orderRef] })).toMatchObject([{ state: 'auth-needed' }]);

      // PAS pends it; the reviewer approves.
      const pended = claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(storyBundle(STORY)).expect(200)).body);
      expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
      expect(await first.getOrderRecord(key)).toMatchObject({ state: 'pended' });
      const decided = await request(app)
        .post(`/review/${pended.id}/decision`)
        .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
        .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' })
        .expect(200);
      number = decided.body.preAuthRef;
      expect(number).toMatch(/^PA-CENTENE-/);

      // The next signing answers the reviewer's approval, not a fresh "documentation needed".
      const again = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
      expect(coverageInfo(again.body)).toEqual({ paNeeded: 'satisfied', number });
    } finally {
      await first.close();
    }

    // A restart on the same directory: the record is known again, and so is the approval.
    const second = await createStorage({ dataDir: dir });
    try {
      const app = appOn(second, dir);
      const afterRestart = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
      expect(coverageInfo(afterRestart.body)).toEqual({ paNeeded: 'satisfied', number });
      expect(await second.getOrderRecord(key)).toMatchObject({ state: 'approved', authorization: { number } });

      // Another order of the same patient, never signed: no record, so it is evaluated and gets its own.
      const other = { ...order, id: `${order.id}-second` };
      const fresh = await request(app).post(SIGN).send(orderSignRequest(resources, other)).expect(200);
      expect(coverageInfo(fresh.body).paNeeded).toBe('auth-needed');
      expect(await second.findOrderRecords({ payer: 'centene', patientId, orderRefs: [`MedicationRequest/${other.id}`] })).toMatchObject([{ state: 'auth-needed', history: [{ source: 'crd' }] }]);
    } finally {
      await second.close();
    }
  }, 120_000);
});
