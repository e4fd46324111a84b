import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Library, MedicationRequest, ValueSet } from '@medplum/fhirtypes';
import cql from 'cql-execution';
import cqlfhir from 'cql-exec-fhir';
import { describe, expect, it } from 'vitest';
import { policiesFor } from '../../src/content.js';
import { cqlLibrarySource } from '../../src/cql/cql-library-source.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { testContent } from '../helpers/app.js';
import { repoRoot, storyOrder, storyResources } from '../helpers/stories.js';

/**
 * One truth, three evaluators (design.md §7): the ELM of every committed Library, run with cql-execution and
 * cql-exec-fhir as a DTR 2.0.1 client runs it, gives for every sandbox story the same answer as the policy's FHIRPath
 * fact that CRD evaluates. The Libraries are the committed files (libraries/), so a stale translation fails here too.
 */
const content = testContent();
const dir = join(repoRoot, 'libraries');
const libraries = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Library);
const elmOf = (l: Library) => JSON.parse(Buffer.from(l.content!.find((c) => c.contentType === 'application/elm+json')!.data!, 'base64').toString('utf8'));
const helpers = libraries.find((l) => l.name === 'FHIRHelpers')!;
const stories = readdirSync(join(repoRoot, 'sandbox'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.replace(/\.json$/, ''));

/** The local expansions of the value sets a Library names, as cql-execution's CodeService wants them. */
function codeService(library: Library) {
  const sets: Record<string, Record<string, { code: string; system: string; version?: string }[]>> = {};
  for (const def of elmOf(library).library.valueSets?.def ?? []) {
    const vs = content.valueSets.get(def.id) as ValueSet | undefined;
    sets[def.id] = { [vs?.version ?? '1']: (vs?.expansion?.contains ?? []).map((c) => ({ code: c.code!, system: c.system! })) };
  }
  return new cql.CodeService(sets);
}

/** A CQL result as the FHIRPath engine would give it: null for empty, dates as YYYY-MM-DD strings. */
function normal(v: unknown): unknown {
  if (v === null || v === undefined) return undefined;
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.length === 1 ? normal(v[0]) : v.map(normal);
  if (typeof v === 'object' && v !== null && 'isDate' in v) return String(v);
  return v;
}

describe('committed Libraries (npm run libraries)', () => {
  it('hold the CQL the current policy facts generate, with ELM beside it, for every policy', () => {
    for (const policy of content.policies) {
      const library = libraries.find((l) => l.id === policy.file.id);
      expect(library, `libraries/${policy.file.id}.json: run npm run libraries`).toBeDefined();
      const cqlText = Buffer.from(library!.content!.find((c) => c.contentType === 'text/cql')!.data!, 'base64').toString('utf8');
      expect(cqlText, `libraries/${policy.file.id}.json is stale: run npm run libraries`).toBe(cqlLibrarySource(policy, { canonicalBase: content.canonicalBase }).cql);
      const elm = elmOf(library!);
      expect(elm.library.identifier).toEqual({ id: library!.name, version: library!.version });
      const errors = (elm.library.annotation ?? []).filter((a: { type: string; errorSeverity?: string }) => a.type === 'CqlToElmError' && a.errorSeverity !== 'warning');
      expect(errors).toEqual([]);
    }
  });
});

describe('CQL agrees with FHIRPath (every Library, every sandbox story)', () => {
  it('runs every committed Library for every story whose order its policy governs', async () => {
    let compared = 0;
    for (const story of stories) {
      const resources = storyResources(story);
      const order = storyOrder(story, resources) as MedicationRequest;
      const payer = story.split('-')[0];
      for (const policy of policiesFor(content, payer, order)) {
        const library = libraries.find((l) => l.id === policy.file.id);
        expect(library, `libraries/${policy.file.id}.json`).toBeDefined();
        const src = cqlLibrarySource(policy, { canonicalBase: content.canonicalBase });

        const record = indexRecord(recordFromResources(resources, [order], order.requester?.reference));
        const ev = evaluatePolicy(policy, evaluationDataFor(record, order, new Date().toISOString().slice(0, 10)));

        const repository = new cql.Repository({ FHIRHelpers: elmOf(helpers) });
        const lib = new cql.Library(elmOf(library!), repository);
        const wrapped = cqlfhir.FHIRWrapper.FHIRv401().wrap(order);
        const executor = new cql.Executor(lib, codeService(library!), { medication_request: wrapped });
        const source = cqlfhir.PatientSource.FHIRv401();
        const bundle: Bundle = { resourceType: 'Bundle', type: 'collection', entry: resources.map((resource) => ({ resource })) };
        source.loadBundles([bundle]);
        const results = await executor.exec(source);
        const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
        const cqlValues = results.patientResults[patientId];

        for (const [fact, define] of src.defines) {
          const fhirpathValue = ev.facts.find((f) => f.name === fact)?.value;
          expect(normal(cqlValues[define]), `${story} ${policy.file.id} ${fact}`).toEqual(fhirpathValue ?? undefined);
          compared++;
        }
      }
    }
    expect(compared, 'facts compared across stories').toBeGreaterThan(0);
  }, 120_000);
});
