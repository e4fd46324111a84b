/**
 * The CDS client JWT replay record (README "JWT replays"): one statement per authenticated call, a jti one replica
 * accepted is refused by every other sharing the database, and expired jtis are pruned by the calls themselves, with
 * no sweep reading the table.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { recordStatements, tablesScannedWithoutChoice } from './plan-scans.js';

const url = process.env.DATABASE_URL;
const schema = `pp_jti_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

const backends: { name: string; open: () => Promise<SqlStorage>; cleanUp: () => Promise<void> }[] = [];
{
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-jti-'));
  backends.push({ name: 'embedded PGlite', open: () => createStorage({ dataDir: dir }), cleanUp: async () => rmSync(dir, { recursive: true, force: true }) });
}
const openShared = () => createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
if (url) backends.push({ name: 'PostgreSQL (DATABASE_URL)', open: openShared, cleanUp: async () => undefined });

const jwt = (expiresAtMs: number) => ({ issuer: 'cds:https://ehr.example.org', jti: randomUUID(), expiresAtMs });

describe.each(backends)('the JWT replay record on $name', ({ open, cleanUp }) => {
  let storage: SqlStorage;
  beforeAll(async () => {
    storage = await open();
  }, 60_000);
  afterAll(async () => {
    if (url && storage?.kind === 'postgres') await storage.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await storage?.close();
    await cleanUp();
  });

  it('records a jti in one statement, outside any transaction of several steps', async () => {
    let recording = true;
    const sent = recordStatements(storage.driver, () => recording);
    const calls: string[] = [];
    const { exec, transaction } = storage.driver;
    storage.driver.exec = (sql) => (calls.push(`exec ${sql}`), exec.call(storage.driver, sql));
    storage.driver.transaction = <T>(fn: Parameters<SqlStorage['driver']['transaction']>[0]) => (calls.push('transaction'), transaction.call(storage.driver, fn) as Promise<T>);
    try {
      const now = Date.now();
      const r = jwt(now + 300_000);
      expect(await storage.recordJti(r, now)).toBe(true);
      expect(await storage.recordJti(r, now + 1000)).toBe(false);
    } finally {
      recording = false;
      storage.driver.exec = exec;
      storage.driver.transaction = transaction;
    }
    expect(calls).toEqual([]);
    expect(sent.size).toBe(1);
    const [[sql, params]] = [...sent];
    expect(await tablesScannedWithoutChoice(storage.driver, sql, params)).toEqual([]);
  });

  it('prunes expired jtis as it records new ones, leaving unexpired ones', async () => {
    const now = Date.now();
    const expired = Array.from({ length: 5 }, () => jwt(now - 60_000));
    const alive = jwt(now + 300_000);
    for (const r of [...expired, alive]) expect(await storage.recordJti(r, now - 120_000)).toBe(true);
    const count = async () =>
      Number((await storage.driver.query<{ n: number }>('SELECT count(*)::integer AS n FROM jwt_replay WHERE expires_at_ms <= $1', [now]))[0].n);
    expect(await count()).toBeGreaterThanOrEqual(5);
    for (let i = 0; i < 3; i++) expect(await storage.recordJti(jwt(now + 300_000), now)).toBe(true);
    expect(await count()).toBe(0);
    // Unexpired records stay: the live jti is still refused, and an expired one is accepted again.
    expect(await storage.recordJti(alive, now)).toBe(false);
    expect(await storage.recordJti({ ...expired[0], expiresAtMs: now + 300_000 }, now)).toBe(true);
  });
});

describe.skipIf(!url)('the JWT replay record shared by two replicas (DATABASE_URL)', () => {
  const shared = `pp_jti2_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  let a: SqlStorage;
  let b: SqlStorage;
  beforeAll(async () => {
    a = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema: shared });
    b = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema: shared });
  }, 60_000);
  afterAll(async () => {
    await a?.driver.exec(`DROP SCHEMA IF EXISTS ${shared} CASCADE`).catch(() => undefined);
    await Promise.all([a?.close(), b?.close()]);
  });

  it('refuses on replica B a jti replica A accepted, and accepts a jti sent to both at once exactly once', async () => {
    const now = Date.now();
    const r = jwt(now + 300_000);
    expect(await a.recordJti(r, now)).toBe(true);
    expect(await b.recordJti(r, now + 10)).toBe(false);
    for (let round = 0; round < 5; round++) {
      const raced = jwt(now + 300_000);
      const answers = await Promise.all([a, b, a, b].map((s) => s.recordJti({ ...raced }, now)));
      expect(answers.filter(Boolean)).toHaveLength(1);
    }
  });

  it('prunes on either replica while the other records: no jti alive is lost', async () => {
    const now = Date.now();
    for (let i = 0; i < 20; i++) await a.recordJti(jwt(now - 1000), now - 60_000);
    const alive = Array.from({ length: 20 }, () => jwt(now + 300_000));
    const accepted = await Promise.all(alive.map((r, i) => (i % 2 ? a : b).recordJti(r, now)));
    expect(accepted.every(Boolean)).toBe(true);
    const refused = await Promise.all(alive.map((r, i) => (i % 2 ? b : a).recordJti(r, now)));
    expect(refused.some(Boolean)).toBe(false);
    const left = await a.driver.query<{ n: number }>('SELECT count(*)::integer AS n FROM jwt_replay WHERE expires_at_ms <= $1', [now]);
    expect(Number(left[0].n)).toBeLessThan(20);
  });
});
