/**
 * Writes `libraries/<policy-id>.json` (a FHIR Library with the policy's CQL and its ELM) for every policy, and
 * `libraries/FHIRHelpers-4.0.1.json`, translating the CQL generated from the policy facts (src/cql) with the CQL
 * framework's translator (design.md §7). `npm run libraries`; with `--check`, writes nothing and exits 1 when a
 * committed file differs. Translation errors stop it: a Library is never written with ELM that failed to translate.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUTHORING_BASE, loadContent } from '../src/content.js';
import { cqlLibrarySource } from '../src/cql/cql-library-source.js';
import { FHIRHELPERS, libraryResource, libraryUrl } from '../src/cql/library-resource.js';
import { loadFhirModel } from '../src/cql/model-info.js';
import { createTranslator } from './cql-translator.js';

const root = join(import.meta.dirname, '..');
const check = process.argv.includes('--check');
const content = loadContent({ root, canonicalBase: AUTHORING_BASE });
const dir = join(root, 'libraries');
if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
const translate = createTranslator();
const model = loadFhirModel(root);

const files: { name: string; text: string }[] = [];
const helpersCql = readFileSync(join(root, 'cql', 'framework', 'FHIRHelpers-4.0.1.cql'), 'utf8');
const helpers = translate(helpersCql);
if (helpers.errors.length > 0) throw new Error(`FHIRHelpers: ${helpers.errors.join('; ')}`);
files.push({
  name: `${FHIRHELPERS.name}-${FHIRHELPERS.version}.json`,
  text: `${JSON.stringify(
    libraryResource({
      id: 'FHIRHelpers-4.0.1',
      name: FHIRHELPERS.name,
      version: FHIRHELPERS.version,
      canonicalBase: AUTHORING_BASE,
      title: 'FHIRHelpers',
      description: 'The CQL framework FHIRHelpers 4.0.1 (Apache-2.0; cql/framework/README.md): conversions between FHIR and CQL types.',
      cql: helpersCql,
      elm: helpers.elm,
    }),
    null,
    2,
  )}\n`,
});

let failed = 0;
for (const policy of [...content.policies].sort((a, b) => a.file.id.localeCompare(b.file.id))) {
  const src = cqlLibrarySource(policy, { canonicalBase: AUTHORING_BASE, model, namesOf: (url) => content.valueSets.namesOf(url), answerCodings: (url) => content.valueSets.get(url)?.expansion?.contains ?? [] });
  const { elm, errors } = translate(src.cql);
  if (errors.length > 0) {
    failed++;
    console.error(`${policy.file.id}: CQL translation failed:\n  ${errors.join('\n  ')}\n${src.cql}`);
    continue;
  }
  const expressed = [...src.defines.keys()];
  const description = [
    `Pre-population logic for the ${policy.file.id} Questionnaire (policy version ${policy.file.version}), generated from the policy facts.`,
    `Expressed in CQL: ${expressed.length > 0 ? expressed.join(', ') : 'none'}.`,
    ...(src.notExpressed.size > 0 ? [`Not expressed in CQL: ${[...src.notExpressed].map(([f, why]) => `${f} (${why})`).join('; ')}.`] : []),
  ].join(' ');
  const library = libraryResource({
    id: policy.file.id,
    name: src.name,
    version: src.version,
    canonicalBase: AUTHORING_BASE,
    title: `${policy.file.title} (CQL)`,
    description,
    cql: src.cql,
    elm,
    dataTypes: src.dataTypes,
    dependsOn: [`${libraryUrl(AUTHORING_BASE, FHIRHELPERS.name)}|${FHIRHELPERS.version}`],
  });
  files.push({ name: `${policy.file.id}.json`, text: `${JSON.stringify(library, null, 2)}\n` });
}
if (failed > 0) process.exit(1);

let stale = 0;
for (const f of files) {
  const path = join(dir, f.name);
  const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (current === f.text) continue;
  stale++;
  if (check) console.error(`libraries/${f.name} is out of date`);
  else {
    writeFileSync(path, f.text);
    console.log(`wrote libraries/${f.name}`);
  }
}
if (check && stale > 0) {
  console.error('run: npm run libraries');
  process.exit(1);
}
if (!check && stale === 0) console.log('libraries are up to date');
