import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import { MIGRATIONS } from '../../src/storage/migrations.js';
import { ensurePgliteTemplate, pgliteTemplateData } from '../../src/storage/pglite-template.js';
import { newAssertion } from './storage-contract.js';

describe('embedded storage from a data-directory template', () => {
  const root = mkdtempSync(join(tmpdir(), 'priorpath-template-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const template = join(root, 'template');

  it('makes the template once, and a new DATA_DIR starts from it with the schema in place and nothing of the others', async () => {
    expect(await ensurePgliteTemplate(template)).toBe(true);
    expect(await ensurePgliteTemplate(template)).toBe(false);
    expect(existsSync(join(template, 'storage.lock'))).toBe(false);

    const a = await createStorage({ dataDir: join(root, 'a'), pgliteTemplate: pgliteTemplateData(template) });
    const assertion = newAssertion();
    try {
      const versions = await a.driver.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(versions.map((v) => Number(v.version))).toEqual(MIGRATIONS.map((m) => m.version));
      // Only the database the service uses: the template databases' files are not copied into every new DATA_DIR.
      expect((await a.driver.query<{ datname: string }>('SELECT datname FROM pg_database')).map((d) => d.datname)).toEqual(['postgres']);
      expect(readdirSync(join(pgliteTemplateData(template), 'base'))).toHaveLength(1);
      await a.saveAssertion(assertion);
      expect(await a.getAssertion(assertion.assertionId)).toEqual(assertion);
    } finally {
      await a.close();
    }
    // A second directory from the same template holds none of the first one's records: each is a copy.
    const b = await createStorage({ dataDir: join(root, 'b'), pgliteTemplate: pgliteTemplateData(template) });
    try {
      expect(await b.getAssertion(assertion.assertionId)).toBeUndefined();
    } finally {
      await b.close();
    }
    // And a directory that already holds data is opened as it is, never overwritten by the template.
    const again = await createStorage({ dataDir: join(root, 'a'), pgliteTemplate: pgliteTemplateData(template) });
    try {
      expect(await again.getAssertion(assertion.assertionId)).toEqual(assertion);
    } finally {
      await again.close();
    }
    // A copy cut short (the process killed mid-copy) left only its staging directory: the next start copies afresh.
    const cut = join(root, 'cut');
    mkdirSync(join(cut, 'pglite.copying', 'base'), { recursive: true });
    writeFileSync(join(cut, 'pglite.copying', 'PG_VERSION'), '18\n');
    const resumed = await createStorage({ dataDir: cut, pgliteTemplate: pgliteTemplateData(template) });
    try {
      expect(await resumed.getAssertion(assertion.assertionId)).toBeUndefined();
      expect(existsSync(join(cut, 'pglite.copying'))).toBe(false);
    } finally {
      await resumed.close();
    }
  }, 180_000);
});
