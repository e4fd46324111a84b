import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createStorage } from './create-storage.js';
import { MIGRATIONS } from './migrations.js';

/** What a template was made with: a template from another PGlite build or schema is made again. */
function stampOf(): string {
  const require = createRequire(import.meta.url);
  const pkg = JSON.parse(readFileSync(join(dirname(require.resolve('@electric-sql/pglite')), '..', 'package.json'), 'utf8')) as { version: string };
  // `databases`: a template from before the template databases were dropped is made again.
  return JSON.stringify({ pglite: pkg.version, schema: Math.max(...MIGRATIONS.map((m) => m.version)), databases: ['postgres'] });
}

/** The PGlite data directory inside a template made by `ensurePgliteTemplate(dir)`. */
export function pgliteTemplateData(dir: string): string {
  return join(dir, 'pglite');
}

/**
 * Makes (once per PGlite version and schema) an initialised, migrated and cleanly closed PGlite data directory in
 * `dir`, which a new DATA_DIR then starts from (openPglite's `template`): PostgreSQL's initdb in WebAssembly takes
 * seconds, a copy of its result a few tens of milliseconds. `npm run build` makes it in `dist/pglite-template`.
 * Returns true when it had to be made.
 */
export async function ensurePgliteTemplate(dir: string): Promise<boolean> {
  const stampFile = join(dir, 'stamp.json');
  const stamp = stampOf();
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(join(pgliteTemplateData(dir), 'PG_VERSION'))) return false;
  mkdirSync(dirname(dir), { recursive: true });
  const work = mkdtempSync(`${dir}.making-`);
  try {
    const storage = await createStorage({ dataDir: work });
    try {
      // The service uses the `postgres` database only. Without the template databases (and their ~600 files) a new
      // DATA_DIR is a copy of about 450 files instead of 1,050: on a disk busy with other writes, creating a file
      // costs about a millisecond, and the copy was most of start to ready.
      for (const name of ['template0', 'template1']) {
        await storage.driver.exec(`ALTER DATABASE ${name} IS_TEMPLATE false`);
        await storage.driver.exec(`DROP DATABASE ${name}`);
      }
      await storage.driver.exec('CHECKPOINT');
    } finally {
      await storage.close();
    }
    rmSync(join(work, 'storage.lock'), { force: true });
    writeFileSync(join(work, 'stamp.json'), stamp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return true;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
