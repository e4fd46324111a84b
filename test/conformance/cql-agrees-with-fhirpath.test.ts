import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Library, MedicationRequest, QuestionnaireItem, Resource, ValueSet } from '@medplum/fhirtypes';
import cql from 'cql-execution';
import cqlfhir from 'cql-exec-fhir';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { policiesFor } from '../../src/content.js';
import { cqlLibrarySource } from '../../src/cql/cql-library-source.js';
import { buildCatalog } from '../../src/dtr/catalog.js';
import { loadFhirModel } from '../../src/cql/model-info.js';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import type { FactValue, PolicyEvaluation } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { testContent } from '../helpers/app.js';
import { deepMerge, repoRoot, storyOrder, storyResources } from '../helpers/stories.js';

/**
 * One truth, three evaluators (design.md §7): the ELM of every committed Library, run with cql-execution and
 * cql-exec-fhir as a DTR 2.0.1 client runs it, gives for every sandbox story and every policy case file
 * (test/policies/cases: lineage-free codes, stale and entered-in-error results, renewals, name-matched drugs...) the
 * same value as the policy's FHIRPath fact, define by define; and the policy's rules decide the same over the CQL's
 * values as CRD decided over FHIRPath's. The Libraries are the committed files (libraries/), so a stale translation
 * fails here too.
 */
const content = testContent();
const model = loadFhirModel(repoRoot);
const sourceOf = (policy: CompiledPolicy) =>
  cqlLibrarySource(policy, { canonicalBase: content.canonicalBase, model, namesOf: (url) => content.valueSets.namesOf(url) });
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

/** A CQL result as the FHIRPath engine gives it: undefined for empty, dates as their strings. */
function normal(v: unknown): unknown {
  if (v === null || v === undefined) return undefined;
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.length === 1 ? normal(v[0]) : v.map(normal);
  if (typeof v === 'object' && v !== null && 'isDate' in v) return String(v);
  return v;
}

/** Same value: numbers to CQL's decimal precision (8 places), everything else exactly. */
function expectSame(cqlValue: unknown, fhirpathValue: FactValue | undefined, label: string) {
  if (typeof cqlValue === "number" && typeof fhirpathValue === "number") expect.soft(cqlValue, label).toBeCloseTo(fhirpathValue, 7);
  else expect.soft(cqlValue, label).toEqual(fhirpathValue);
}

interface Scenario {
  label: string;
  resources: Resource[];
  order: MedicationRequest;
  today: string;
  policies: CompiledPolicy[];
}

interface PolicyCase {
  name: string;
  from?: string;
  remove?: string[];
  add?: Resource[];
  resources?: Resource[];
  order?: Partial<MedicationRequest>;
}

/** The scenarios: every sandbox story under the policies that govern its order, and every policy case. */
function scenarios(): Scenario[] {
  const out: Scenario[] = [];
  const today = new Date().toISOString().slice(0, 10);
  for (const story of stories) {
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    out.push({ label: `story ${story}`, resources, order, today, policies: policiesFor(content, story.split('-')[0], order) });
  }
  const casesDir = join(repoRoot, 'test', 'policies', 'cases');
  for (const file of readdirSync(casesDir).filter((f) => f.endsWith('.yaml')).sort()) {
    const spec = parseYaml(readFileSync(join(casesDir, file), 'utf8')) as { policy: string; today: string; cases: PolicyCase[] };
    const policy = content.policies.find((p) => p.file.id === spec.policy)!;
    for (const c of spec.cases) {
      // Built as test/policies/policy-cases.test.ts builds them: a story with patches, or an inline record.
      let resources: Resource[];
      let order: MedicationRequest;
      if (c.from) {
        const story = storyResources(c.from);
        const drop = new Set(c.remove ?? []);
        const base = storyOrder(c.from, story);
        order = deepMerge(base, c.order);
        resources = [...story.filter((r) => !drop.has(r.id ?? '') && r !== base), ...(c.add ?? [])];
      } else {
        order = c.order as MedicationRequest;
        resources = [...(c.resources ?? []), ...(c.add ?? [])];
      }
      out.push({ label: `${file} "${c.name}"`, resources, order, today: spec.today, policies: [policy] });
    }
  }
  return out;
}

const compiled = new Map<string, { lib: InstanceType<typeof cql.Library>; codes: InstanceType<typeof cql.CodeService> }>();
function elmLibrary(policy: CompiledPolicy) {
  let hit = compiled.get(policy.file.id);
  if (!hit) {
    const library = libraries.find((l) => l.id === policy.file.id);
    expect(library, `libraries/${policy.file.id}.json`).toBeDefined();
    hit = { lib: new cql.Library(elmOf(library!), new cql.Repository({ FHIRHelpers: elmOf(helpers) })), codes: codeService(library!) };
    compiled.set(policy.file.id, hit);
  }
  return hit;
}

// cql-exec-fhir parses its FHIR model info for each factory call: once for the whole run.
const wrapper = cqlfhir.FHIRWrapper.FHIRv401();
const source = cqlfhir.PatientSource.FHIRv401();

/** Runs a policy's ELM as a DTR client does: the order as `medication_request`, the record as the patient's data. */
async function runCql(policy: CompiledPolicy, s: Scenario): Promise<Record<string, unknown>> {
  const { lib, codes } = elmLibrary(policy);
  const executor = new cql.Executor(lib, codes, { medication_request: wrapper.wrap(s.order) });
  source.reset();
  const patient = s.resources.find((r) => r.resourceType === 'Patient') ?? { resourceType: 'Patient', id: 'no-patient' };
  const entries = s.resources.some((r) => r.resourceType === 'Patient') ? s.resources : [patient as Resource, ...s.resources];
  const bundle: Bundle = { resourceType: 'Bundle', type: 'collection', entry: entries.map((resource) => ({ resource })) };
  source.loadBundles([bundle]);
  const results = await executor.exec(source, cql.DateTime.parse(`${s.today}T12:00:00.000Z`) ?? undefined);
  return results.patientResults[patient.id!] ?? {};
}

const decision = (e: PolicyEvaluation) => ({
  outcome: e.outcome,
  pathway: e.pathway?.id,
  rules: e.rules.map((r) => `${r.id}=${String(r.result)}`),
  missing: e.missingFacts,
});

describe('committed Libraries (npm run libraries)', () => {
  it('hold the CQL the current policy facts generate, with ELM beside it, for every policy', () => {
    for (const policy of content.policies) {
      const library = libraries.find((l) => l.id === policy.file.id);
      expect(library, `libraries/${policy.file.id}.json: run npm run libraries`).toBeDefined();
      const cqlText = Buffer.from(library!.content!.find((c) => c.contentType === 'text/cql')!.data!, 'base64').toString('utf8');
      expect(cqlText, `libraries/${policy.file.id}.json is stale: run npm run libraries`).toBe(sourceOf(policy).cql);
      const elm = elmOf(library!);
      expect(elm.library.identifier).toEqual({ id: library!.name, version: library!.version });
      const errors = (elm.library.annotation ?? []).filter((a: { type: string; errorSeverity?: string }) => a.type === 'CqlToElmError' && a.errorSeverity !== 'warning');
      expect(errors).toEqual([]);
    }
  });

  it('express every fact the record can answer; the rest say why (the ordering clinician, or asked only)', () => {
    for (const policy of content.policies) {
      const src = sourceOf(policy);
      for (const f of policy.facts) expect(src.defines.has(f.name) || src.notExpressed.has(f.name), `${policy.file.id} ${f.name}`).toBe(true);
      for (const [fact, why] of src.notExpressed) {
        const fhirpath = policy.factsByName.get(fact)!.def.fhirpath ?? '';
        expect(fhirpath.trim() === '{}' || fhirpath.includes('%user'), `${policy.file.id} ${fact} is not expressed: ${why}`).toBe(true);
      }
    }
  });
});

describe('the DTR 2.0.1 form of every Questionnaire', () => {
  const catalog = buildCatalog(content);
  it('pre-fills every item of an expressed fact with its text/cql define, and packages the Library with FHIRHelpers', () => {
    for (const q of catalog.all) {
      const policy = catalog.policyOf.get(q)!;
      const form = catalog.cqlFormOf(q);
      expect(form, `${q.url}: a CQL form`).toBeDefined();
      const main = form!.libraries[0];
      expect(form!.libraries.map((l) => l.name)).toEqual([main.name, 'FHIRHelpers']);
      expect(main.relatedArtifact?.map((r) => r.resource)).toEqual([`${form!.libraries[1].url}|${form!.libraries[1].version}`]);
      const src = sourceOf(policy);
      const items = new Map<string, { extension?: { url: string; valueExpression?: { language?: string; expression?: string } }[] }>();
      const walk = (list: QuestionnaireItem[] | undefined): void => list?.forEach((i) => (items.set(i.linkId, i), walk(i.item)));
      walk(form!.questionnaire.item);
      let prefilled = 0;
      for (const f of policy.facts) {
        const item = f.def.linkId ? items.get(f.def.linkId) : undefined;
        if (!item || !src.defines.has(f.name)) continue;
        const initial = item.extension?.find((e) => e.url.endsWith('sdc-questionnaire-initialExpression'))?.valueExpression;
        expect(initial, `${policy.file.id} ${f.def.linkId}`).toEqual({ language: 'text/cql', expression: `"${main.name}".${f.name}` });
        prefilled++;
      }
      expect(prefilled, `${policy.file.id}: items pre-filled by CQL`).toBeGreaterThan(0);
    }
  });
});

describe('CQL agrees with FHIRPath and with CRD (every Library, every sandbox story, every policy case)', () => {
  it('gives every expressed define the FHIRPath fact value, and the rules decide the same over it', async () => {
    let compared = 0;
    let decisions = 0;
    for (const s of scenarios()) {
      for (const policy of s.policies) {
        const src = sourceOf(policy);
        const record = indexRecord(recordFromResources(s.resources, [s.order], s.order.requester?.reference));
        const data = evaluationDataFor(record, s.order, s.today);
        const crd = evaluatePolicy(policy, data);
        const cqlValues = await runCql(policy, s);

        const fromCql: Record<string, FactValue> = {};
        for (const [fact, define] of src.defines) {
          const fhirpathValue = crd.facts.find((f) => f.name === fact)?.value;
          const value = normal(cqlValues[define]);
          expectSame(value, fhirpathValue, `${s.label} ${policy.file.id} ${fact}`);
          if (value !== undefined) fromCql[fact] = value as FactValue;
          compared++;
        }
        // The third evaluator: the policy's rules over the CQL's values (the facts CQL does not express read from
        // FHIRPath as before) decide exactly what CRD decided.
        expect.soft(decision(evaluatePolicy(policy, data, fromCql)), `${s.label} ${policy.file.id} decision`).toEqual(decision(crd));
        decisions++;
      }
    }
    expect(compared, 'defines compared').toBeGreaterThan(1000);
    expect(decisions, 'decisions compared').toBeGreaterThan(250);
  }, 300_000);
});
