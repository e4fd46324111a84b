/**
 * PAS keeps each item's Claim quantity on the item's decision when it decides the item (adjudicate.ts
 * `ItemDecision.quantity`), in both storages, so that what a reviewer's approval covers is read from the decision and
 * never by parsing the stored request again (approval-covers.ts; stop 40 read-through). An item stating no quantity
 * keeps null: a decision without the field was stored before, and only then is its request read.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Claim } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ItemDecision } from '../../src/pas/adjudicate.js';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { claimResponseOf, pasApp, storyBundle } from './pas-fixtures.js';

const url = process.env.DATABASE_URL;

const backends: { name: string; open: () => Promise<{ storage: SqlStorage; close: () => Promise<void> }>; skip?: boolean }[] = [
  {
    name: 'embedded PGlite',
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'priorpath-item-quantity-'));
      const storage = await createStorage({ dataDir: dir });
      return { storage, close: async () => (await storage.close(), rmSync(dir, { recursive: true, force: true })) };
    },
  },
  {
    name: 'PostgreSQL (DATABASE_URL)',
    skip: !url,
    open: async () => {
      const schema = `pp_test_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
      const storage = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
      return {
        storage,
        close: async () => {
          await storage.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
          await storage.close();
        },
      };
    },
  },
];

for (const backend of backends) {
  describe.skipIf(!!backend.skip)(`the item's Claim quantity is kept on its decision (${backend.name})`, () => {
    let opened: Awaited<ReturnType<(typeof backends)[number]['open']>>;
    beforeAll(async () => {
      opened = await backend.open();
    }, 120_000);
    afterAll(async () => opened?.close());

    const stored = async (bundle: ReturnType<typeof storyBundle>) => {
      const { app } = pasApp(opened.storage);
      const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle)).expect(200);
      const s = await opened.storage.getPasSubmission(claimResponseOf(res.body).id!);
      return ((s?.detail as { items?: ItemDecision[] }).items ?? [])[0];
    };

    it('a quantity asked is kept as asked (the whole authorization, J9039 units), with the amounts its limits read from the order', async () => {
      const bundle = storyBundle('centene-mrd-positive', { orderId: `order-${randomUUID().slice(0, 8)}` });
      (bundle.entry![0].resource as Claim).item![0].quantity = { value: 1568, unit: 'UN', system: 'http://unitsofmeasure.org', code: '{unit}' };
      const item = await stored(bundle);
      expect(item.quantity).toEqual({ value: 1568, unit: 'UN', system: 'http://unitsofmeasure.org', code: '{unit}' });
      expect(item.askedAmounts).toEqual(expect.arrayContaining(['dailyDoseUg', 'cyclesRequested']));
      expect(item.askedAmounts).not.toContain('weightKg');
    });

    it('an item stating no quantity keeps null', async () => {
      const bundle = storyBundle('centene-mrd-positive', { orderId: `order-${randomUUID().slice(0, 8)}` });
      delete (bundle.entry![0].resource as Claim).item![0].quantity;
      expect((await stored(bundle)).quantity).toBeNull();
    });
  });
}
