/**
 * Writes `libraries/<policy-id>.json` (a FHIR Library with the policy's CQL and its ELM) for every policy, and
 * `libraries/FHIRHelpers-4.0.1.json`, translating the CQL generated from the policy facts (src/cql) with the CQL
 * framework's translator (design.md §7), and the Libraries a policy's CQL is split into (`libraries/<policy-id>-part<n>.json`,
 * included by the policy's Library: design.md §7 "Libraries in parts"). `npm run libraries`; with `--check`, writes
 * nothing and exits 1 when a committed file differs or is no longer generated. Translation errors stop it: a Library
 * is never written with ELM that failed to translate.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
// The parts of the policy being translated, by Library name: the main Library's includes resolve to them.
const partSources: Record<string, string> = {};
const translate = createTranslator(partSources);
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
  const helpersRef = `${libraryUrl(AUTHORING_BASE, FHIRHELPERS.name)}|${FHIRHELPERS.version}`;
  const partFiles: { name: string; text: string }[] = [];
  const translationErrors: string[] = [];
  for (const part of src.parts) {
    partSources[part.name] = part.cql;
    const t = translate(part.cql);
    if (t.errors.length > 0) {
      translationErrors.push(`${part.name}:\n  ${t.errors.join('\n  ')}\n${part.cql}`);
      continue;
    }
    const resource = libraryResource({
      id: `${policy.file.id}-part${part.index}`,
      name: part.name,
      version: src.version,
      canonicalBase: AUTHORING_BASE,
      title: `${policy.file.title} (CQL, part ${part.index})`,
      description: `Part ${part.index} of the pre-population logic for the ${policy.file.id} Questionnaire (policy version ${policy.file.version}), included by ${src.name}: definitions its facts read, split off so that each Library's ELM fits one FHIR string. ${part.defines.length} definitions.`,
      cql: part.cql,
      elm: t.elm,
      dataTypes: part.dataTypes,
      dependsOn: [helpersRef, ...src.parts.filter((p) => p.index < part.index).map((p) => `${libraryUrl(AUTHORING_BASE, p.name)}|${src.version}`)],
    });
    partFiles.push({ name: `${policy.file.id}-part${part.index}.json`, text: `${JSON.stringify(resource, null, 2)}\n` });
  }
  const { elm, errors } = translationErrors.length > 0 ? { elm: {}, errors: [] } : translate(src.cql);
  if (errors.length > 0) translationErrors.push(`${src.name}:\n  ${errors.join('\n  ')}\n${src.cql}`);
  if (translationErrors.length > 0) {
    failed++;
    console.error(`${policy.file.id}: CQL translation failed:\n${translationErrors.join('\n')}`);
    continue;
  }
  files.push(...partFiles);
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
    dependsOn: [helpersRef, ...src.parts.map((p) => `${libraryUrl(AUTHORING_BASE, p.name)}|${src.version}`)],
  });
  files.push({ name: `${policy.file.id}.json`, text: `${JSON.stringify(library, null, 2)}\n` });
  for (const f of [...partFiles, files[files.length - 1]]) console.log(`${f.name}: ELM ${JSON.parse(f.text).content[1].data.length} base64 characters`);
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
// A Library no policy generates any more (a part of a policy whose CQL shrank) goes: the service serves every file.
const generated = new Set(files.map((f) => f.name));
for (const name of readdirSync(dir).filter((n) => n.endsWith('.json') && !generated.has(n))) {
  stale++;
  if (check) console.error(`libraries/${name} is no longer generated`);
  else {
    rmSync(join(dir, name));
    console.log(`removed libraries/${name}`);
  }
}
if (check && stale > 0) {
  console.error('run: npm run libraries');
  process.exit(1);
}
if (!check && stale === 0) console.log('libraries are up to date');
