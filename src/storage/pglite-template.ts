import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createStorage } from './create-storage.js';
import { MIGRATIONS } from './migrations.js';

/** What a template was made with: a template from another PGlite build or schema is made again. */
function stampOf(): string {
  const require = createRequire(import.meta.url);
  const pkg = JSON.parse(readFileSync(join(dirname(require.resolve('@electric-sql/pglite')), '..', 'package.json'), 'utf8')) as { version: string };
  return JSON.stringify({ pglite: pkg.version, schema: Math.max(...MIGRATIONS.map((m) => m.version)) });
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
    await storage.close();
    rmSync(join(work, 'storage.lock'), { force: true });
    writeFileSync(join(work, 'stamp.json'), stamp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return true;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
