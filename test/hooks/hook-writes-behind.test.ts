/**
 * The hook answers without waiting for its writes (design.md §2 "Written behind the hook's answer": storage off the
 * hook's critical path): the coverage assertion and the order's provisional change are queued behind the answer,
 * readable at once by this process, and written once the database takes writes again. An approval at signing is not: it
 * is durable before the answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { createStorage } from '../../src/storage/create-storage.js';
import { migrate } from '../../src/storage/migrations.js';
import { openPglite } from '../../src/storage/pglite-driver.js';
import type { PgliteDriver } from '../../src/storage/pglite-driver.js';
import type { SqlDriver } from '../../src/storage/sql-driver.js';
import { SqlStorage } from '../../src/storage/sql-storage.js';
import { BASE, testContent } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

const WRITE = /^\s*(WITH|INSERT|UPDATE|DELETE)\b/i;

/** The embedded database with a valve on its writes: held, every write waits; reads go through. */
function heldWrites(driver: PgliteDriver) {
  let open: Promise<void> = Promise.resolve();
  let release = () => {};
  const gate = async (sql: string) => {
    if (WRITE.test(sql) && !/^\s*SELECT/i.test(sql)) await open;
  };
  const held: SqlDriver = {
    kind: driver.kind,
    async query(sql, params) {
      await gate(sql);
      return driver.query(sql, params);
    },
    exec: (sql) => driver.exec(sql),
    async batch(steps) {
      for (const s of steps) await gate(s.sql);
      return driver.batch(steps);
    },
    async transaction(fn) {
      await open;
      return driver.transaction(fn);
    },
    close: () => driver.close(),
  };
  return {
    driver: held,
    hold: () => {
      open = new Promise((r) => (release = r));
    },
    release: () => release(),
  };
}

const assertionIdOf = (body: { systemActions: { resource: { extension?: { url: string; extension?: { url: string; valueString?: string }[] }[] } }[] }) =>
  body.systemActions[0].resource.extension!.find((e) => e.url === COVERAGE_INFO_URL)!.extension!.find((e) => e.url === 'coverage-assertion-id')!.valueString!;

describe('hook writes behind the answer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-behind-'));
  let valve: ReturnType<typeof heldWrites>;
  let storage: SqlStorage;
  let app: ReturnType<typeof createApp>;

  beforeAll(async () => {
    const driver = await openPglite(dir);
    await migrate(driver);
    valve = heldWrites(driver);
    storage = new SqlStorage(valve.driver);
    // As createStorage opens embedded storage: orders with no record are known without a read.
    await storage.loadOrderIndex();
    const config = loadConfig({ PUBLIC_BASE_URL: BASE, CDS_AUTH: 'open', PAYER_API_AUTH: 'open', LOG_LEVEL: 'silent', DATA_DIR: dir });
    app = createApp({ config, content: testContent(), storage, logger: createLogger('silent') });
  }, 120_000);
  afterAll(async () => {
    valve.release();
    await storage.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers while the database takes no writes; the assertion and the order record are readable at once, and stored once it does', async () => {
    const resources = storyResources('centene-missing-mrd');
    const order = storyOrder('centene-missing-mrd', resources);
    valve.hold();
    const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order));
    expect(res.status).toBe(200);
    const id = assertionIdOf(res.body);
    expect(storage.queuedWrites).toBeGreaterThan(0);

    // DTR and PAS in this process find what the hook decided although nothing is written yet.
    const assertion = await storage.getAssertion(id);
    expect(assertion).toMatchObject({ assertionId: id, outcome: 'documentation-needed', orderRef: `MedicationRequest/${order.id}` });
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const reading = storage.findOrderRecords({ payer: assertion!.payer, patientId, orderRefs: [`MedicationRequest/${order.id}`] });

    valve.release();
    expect(await reading).toMatchObject([{ state: 'auth-needed', history: [{ source: 'crd', assertionId: id }] }]);
    await storage.close();

    // Durable: a new process on the same directory reads it.
    const again = await createStorage({ dataDir: dir });
    try {
      expect(await again.getAssertion(id)).toMatchObject({ assertionId: id, outcome: 'documentation-needed' });
    } finally {
      await again.close();
    }
  }, 120_000);
});

/** The embedded database refusing every new assertion (a constraint, a full disk): not an outage a retry outlives. */
function refusingAssertions(driver: SqlDriver): SqlDriver {
  const refuse = (sql: string) => {
    if (/INSERT INTO crd_assertions/i.test(sql)) throw new Error('refused: no space left on device');
  };
  return {
    kind: driver.kind,
    async query(sql, params) {
      refuse(sql);
      return driver.query(sql, params);
    },
    exec: (sql) => driver.exec(sql),
    async batch(steps) {
      steps.forEach((s) => refuse(s.sql));
      return driver.batch(steps);
    },
    transaction: (fn) =>
      driver.transaction((tx) =>
        fn({
          ...tx,
          async query(sql: string, params?: unknown[]) {
            refuse(sql);
            return tx.query(sql, params);
          },
        } as typeof tx),
      ),
    close: () => driver.close(),
  };
}

describe("an approval at signing and its assertion: one write, both or neither", () => {
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-behind-approval-'));
  let driver: PgliteDriver;
  let refusing = false;
  /** Every batch's statements, each as its SQL text and its parameters. */
  const batches: string[][] = [];

  /** An app on the embedded database, refusing assertions while `refusing`, recording every batch's statements. */
  const appOn = (storage: SqlStorage) =>
    createApp({
      config: loadConfig({ PUBLIC_BASE_URL: BASE, CDS_AUTH: 'open', PAYER_API_AUTH: 'open', LOG_LEVEL: 'silent', DATA_DIR: dir }),
      content: testContent(),
      storage,
      logger: createLogger('silent'),
    });
  let storage: SqlStorage;
  beforeAll(async () => {
    driver = await openPglite(dir);
    await migrate(driver);
    const refused = refusingAssertions(driver);
    const watched: SqlDriver = {
      ...driver,
      kind: driver.kind,
      query: (sql, params) => (refusing ? refused : driver).query(sql, params),
      exec: (sql) => driver.exec(sql),
      batch: (steps) => (batches.push(steps.map((st) => `${st.sql}\n${JSON.stringify(st.params ?? [])}`)), (refusing ? refused : driver).batch(steps)),
      transaction: (fn) => (refusing ? refused : driver).transaction(fn),
      close: () => driver.close(),
    };
    storage = new SqlStorage(watched);
    await storage.loadOrderIndex();
  }, 120_000);
  afterAll(async () => {
    await storage.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the approval and the assertion naming its number in one batch', async () => {
    const app = appOn(storage);
    const resources = storyResources('centene-mrd-positive');
    const order = storyOrder('centene-mrd-positive', resources);
    batches.length = 0;
    const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
    await storage.listAudit(1);
    const id = assertionIdOf(res.body);
    const assertion = await storage.getAssertion(id);
    expect(assertion?.authorization?.number).toMatch(/^PA-CENTENE-/);
    const writing = batches.filter((b) => b.some((st) => /INSERT INTO crd_assertions/i.test(st) && st.includes(id)));
    expect(writing).toHaveLength(1);
    expect(writing[0].some((st) => /order_authorizations/i.test(st) && st.includes(order.id!)), 'the approval rides in the batch that writes its assertion').toBe(true);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const [record] = await storage.findOrderRecords({ payer: 'centene', patientId, orderRefs: [`MedicationRequest/${order.id}`] });
    expect(record).toMatchObject({ state: 'approved', authorization: { number: assertion!.authorization!.number } });
  }, 120_000);

  it('when the assertion cannot be written, the order is not approved and the EHR is given no number', async () => {
    const app = appOn(storage);
    const resources = storyResources('centene-mrd-positive');
    const order = { ...storyOrder('centene-mrd-positive', resources), id: 'order-refused-assertion' };
    refusing = true;
    const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order));
    refusing = false;
    expect(res.status).toBe(500);
    expect(JSON.stringify(res.body)).not.toMatch(/satisfied-pa-id|PA-CENTENE-/);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const records = await storage.findOrderRecords({ payer: 'centene', patientId, orderRefs: [`MedicationRequest/${order.id}`] });
    expect(records.filter((r) => r.state === 'approved')).toEqual([]);
  }, 120_000);
});

describe('an approval no order record holds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-behind-noid-'));
  let storage: SqlStorage;
  let app: ReturnType<typeof createApp>;

  beforeAll(async () => {
    const driver = await openPglite(dir);
    await migrate(driver);
    storage = new SqlStorage(refusingAssertions(driver));
    const config = loadConfig({ PUBLIC_BASE_URL: BASE, CDS_AUTH: 'open', PAYER_API_AUTH: 'open', LOG_LEVEL: 'silent', DATA_DIR: dir });
    app = createApp({ config, content: testContent(), storage, logger: createLogger('silent') });
  }, 120_000);
  afterAll(async () => {
    await storage.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is never given: an order without an id, which no record can hold, gets no authorization number, whether or not the store records its assertion', async () => {
    // Before review accept2 A5 such an order was approved with a number kept only on its assertion (so a store that
    // refused the assertion answered 500, never a number it did not hold). It now gets no number at all: there is
    // nothing to hold first, and the answer says the order needs its id (docs/design.md §8 "An order that cannot be named").
    const resources = storyResources('centene-mrd-positive');
    const order = { ...storyOrder('centene-mrd-positive', resources) };
    delete order.id;
    const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order));
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.body)).toMatch(/"pa-needed","valueCode":"auth-needed"/);
    expect(JSON.stringify(res.body)).toMatch(/carries no id/);
    expect(JSON.stringify(res.body)).not.toMatch(/satisfied-pa-id|PA-CENTENE-/);
  }, 120_000);
});
