/**
 * `npm run build` — the production build (design.md §9: production runs built JavaScript, not a TypeScript loader).
 *
 * - `src/**\/*.ts` → `dist/**\/*.js`, one file per source file, same tree (so `dist/main.js` finds the repository's
 *   `cds-services/`, `questionnaires/`, `sandbox/` and `web/` at `..`, exactly as `src/main.ts` does). esbuild only
 *   strips types (about a second); type checking is `npm run typecheck`, run by CI.
 * - data files the sources read next to themselves (`src/sandbox/definitions/*.json`) are copied alongside.
 * - the browser bundles of the DTR app and the demo page → `dist/public/` (the server serves them from there when it
 *   runs from `dist/`, so a production image needs no bundler).
 * - `dist/pglite-template/`: an initialised embedded database (initdb + migrations), made once per PGlite version
 *   and schema and kept across builds; a new DATA_DIR starts as a copy of it (pglite-template.ts).
 * - `dist/fhirpath-parse-trees.json`: the content's FHIRPath expressions parsed, so that the service does not parse
 *   them again at start-up (src/fhir/fhirpath.ts `useParseTrees`).
 * - `dist/content-yaml.json`: the content's YAML files as JSON by the digest of their text, so that the service does
 *   not parse YAML at start-up (src/content-yaml.ts `useYamlCache`).
 *
 * `npm start` runs this first (prestart), then `node dist/main.js`.
 */
import { cpSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import type * as ConfigModule from '../src/config.js';
import type * as ContentModule from '../src/content.js';
import type * as ContentYamlModule from '../src/content-yaml.js';
import type * as FhirPathModule from '../src/fhir/fhirpath.js';
import { PARSE_TREES_FILE } from '../src/fhir/parse-trees-file.js';
import type * as TemplateModule from '../src/storage/pglite-template.js';
import { buildWebAssets } from '../src/web/build-web.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

async function main(): Promise<void> {
  const started = performance.now();
  // Everything but the PGlite template (made once per PGlite version and schema, below) is written afresh.
  if (existsSync(dist)) for (const name of readdirSync(dist)) if (name !== 'pglite-template') rmSync(join(dist, name), { recursive: true, force: true });
  const files = walk(src);
  const entryPoints = files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  const result = await build({
    entryPoints,
    outdir: dist,
    outbase: src,
    bundle: false,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'silent',
    tsconfig: join(root, 'tsconfig.json'),
    // Keep `with { type: 'json' }`: Node needs it to import JSON (esbuild would drop it for a node20 target).
    supported: { 'import-attributes': true },
  });
  if (result.errors.length > 0) throw new Error(result.errors.map((e) => e.text).join('; '));
  for (const f of files.filter((f) => f.endsWith('.json'))) cpSync(f, join(dist, relative(src, f)));
  await buildWebAssets({ outdir: join(dist, 'public') });
  if (!existsSync(join(dist, 'main.js'))) throw new Error('dist/main.js was not written');
  // Imported from the built output: the template is made by the same code (and PGlite) that will open its copies.
  const { ensurePgliteTemplate } = (await import(pathToFileURL(join(dist, 'storage', 'pglite-template.js')).href)) as typeof TemplateModule;
  const made = await ensurePgliteTemplate(join(dist, 'pglite-template'));
  // The content's FHIRPath parse trees, for the built service's start-up (src/fhir/fhirpath.ts `useParseTrees`):
  // recorded while the content loads here, through the same built modules.
  const fp = (await import(pathToFileURL(join(dist, 'fhir', 'fhirpath.js')).href)) as typeof FhirPathModule;
  const { loadContent } = (await import(pathToFileURL(join(dist, 'content.js')).href)) as typeof ContentModule;
  const { loadConfig } = (await import(pathToFileURL(join(dist, 'config.js')).href)) as typeof ConfigModule;
  const yaml = (await import(pathToFileURL(join(dist, 'content-yaml.js')).href)) as typeof ContentYamlModule;
  // Content that does not load writes neither file: the service reports the problem itself when it starts.
  const stop = fp.recordParseTrees();
  const stopYaml = yaml.recordYaml();
  try {
    loadContent({ root, canonicalBase: loadConfig({}).canonicalBase });
    writeFileSync(join(dist, PARSE_TREES_FILE), JSON.stringify({ stamp: fp.parseTreeStamp(), trees: stop() }));
    writeFileSync(join(dist, yaml.CONTENT_YAML_FILE), JSON.stringify({ stamp: yaml.contentYamlStamp(), files: stopYaml() }));
  } catch {
    stop();
    stopYaml();
  }
  process.stdout.write(
    `built ${entryPoints.length} modules and the web bundles into dist/${made ? ', and the embedded storage template,' : ''} in ${Math.round(performance.now() - started)} ms\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`build: ${(err as Error).message}\n`);
  process.exit(1);
});
