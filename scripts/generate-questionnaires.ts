/**
 * Writes `questionnaires/<policy-id>.json` for every policy under cds-services/policies (design.md §5: the DTR
 * Questionnaire is generated from the policy). `npm run questionnaires`; with `--check`, writes nothing and exits 1
 * when a committed file differs from what the policies generate (the content test in test/dtr checks the same).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadContent } from '../src/content.js';
import { generateQuestionnaireFiles } from '../src/dtr/questionnaire-files.js';

const root = join(import.meta.dirname, '..');
const check = process.argv.includes('--check');
// The committed files use the default CANONICAL_BASE; a deployment with another base serves generated forms.
const content = loadContent({ root, canonicalBase: 'https://priorpath.dev/fhir' });
const dir = join(root, 'questionnaires');
if (!existsSync(dir)) mkdirSync(dir, { recursive: true });

let stale = 0;
for (const f of generateQuestionnaireFiles(content)) {
  const path = join(dir, f.fileName);
  const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (current === f.text) continue;
  stale++;
  if (check) console.error(`questionnaires/${f.fileName} is out of date`);
  else {
    writeFileSync(path, f.text);
    console.log(`wrote questionnaires/${f.fileName}`);
  }
}
if (check && stale > 0) {
  console.error('run: npm run questionnaires');
  process.exit(1);
}
if (!check && stale === 0) console.log('questionnaires are up to date');
