import type { Bundle, Extension, Library, OperationOutcome, Parameters, Questionnaire, QuestionnaireItem, QuestionnaireResponse, ValueSet } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * `$questionnaire-package` as an operation, per DTR version signal (none, `|2.0.1`, `|2.2.0` on
 * `dtr-qpackage-input-parameters`): the two endpoints, what every package Bundle must hold (DTR §"Retrieving
 * Questionnaire Packages": the Questionnaire first (dtrb-1), every Library its `cqf-library` names with the
 * `depends-on` closure, Libraries with CQL and ELM and unique names, the ValueSets it binds, expanded, one draft
 * QuestionnaireResponse referencing the Questionnaire version), the expression languages of each version, and the
 * error paths (malformed input is a 400 OperationOutcome naming the parameter; nothing applicable is an outcome part).
 */
const DTR = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition';
const INPUT = `${DTR}/dtr-qpackage-input-parameters`;
const CQF_LIBRARY = 'http://hl7.org/fhir/StructureDefinition/cqf-library';
const SIGNALS = [undefined, '2.0.1', '2.2.0'] as const;
const STORIES = ['centene-missing-mrd', 'ohsu-infant-kmt2a', 'bcbsnc-inotuzumab-status-unknown', 'mmm-cd19-unknown'];

const { app } = buildApp();

function body(parameter: Parameters['parameter'], version?: string): Parameters {
  return { resourceType: 'Parameters', ...(version ? { meta: { profile: [`${INPUT}|${version}`] } } : {}), parameter };
}
function storyParameters(id: string): Parameters['parameter'] {
  const resources = storyResources(id);
  return [
    { name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage')! },
    { name: 'order', resource: storyOrder(id, resources) },
  ];
}
const post = (path: string, b: unknown) => request(app).post(path).set('Content-Type', 'application/fhir+json').send(JSON.stringify(b));
const partsOf = (p: Parameters) => (p.parameter ?? []).filter((x) => x.name === 'PackageBundle' || x.name === 'packagebundle');

function walk(items: QuestionnaireItem[] | undefined): QuestionnaireItem[] {
  return (items ?? []).flatMap((i) => [i, ...walk(i.item)]);
}
/** Every Expression in a Questionnaire (root and items), with the extension it sits in. */
function expressions(q: Questionnaire): { url: string; language: string; expression: string }[] {
  const exts: Extension[] = [...(q.extension ?? []), ...walk(q.item).flatMap((i) => i.extension ?? [])];
  return exts.filter((e) => e.valueExpression).map((e) => ({ url: e.url, language: e.valueExpression!.language as string, expression: e.valueExpression!.expression ?? '' }));
}

describe('both endpoints, every version signal', () => {
  it.each(SIGNALS)('POST /fhir/Questionnaire/$questionnaire-package and POST /fhir/$questionnaire-package answer alike (signal %s)', async (version) => {
    const a = (await post('/fhir/Questionnaire/$questionnaire-package', body(storyParameters('centene-missing-mrd'), version)).expect(200)).body as Parameters;
    const b = (await post('/fhir/$questionnaire-package', body(storyParameters('centene-missing-mrd'), version)).expect(200)).body as Parameters;
    const summary = (p: Parameters) => partsOf(p).map((x) => [x.name, (x.resource as Bundle).entry!.map((e) => `${e.resource!.resourceType}/${e.resource!.id}`).filter((r) => !r.startsWith('QuestionnaireResponse'))]);
    expect(summary(a)).toEqual(summary(b));
    const names = partsOf(a).map((x) => x.name);
    expect(names).toEqual(version === '2.0.1' ? ['PackageBundle'] : version === '2.2.0' ? ['packagebundle'] : ['PackageBundle', 'packagebundle']);
  });
});

describe.each(STORIES)('package Bundles for %s', (story) => {
  it.each(SIGNALS)('hold the Questionnaire first, its Libraries (CQL + ELM, depends-on closure, unique names), its expanded ValueSets and one draft response (signal %s)', async (version) => {
    const out = (await post('/fhir/Questionnaire/$questionnaire-package', body(storyParameters(story), version)).expect(200)).body as Parameters;
    const parts = partsOf(out);
    expect(parts.length).toBeGreaterThan(0);
    for (const part of parts) {
      const bundle = part.resource as Bundle;
      const at = `${story} ${part.name}`;
      expect(bundle.type, at).toBe('collection');
      const resources = bundle.entry!.map((e) => e.resource!);
      expect(resources[0].resourceType, `${at}: dtrb-1`).toBe('Questionnaire');
      const q = resources[0] as Questionnaire;
      const libraries = resources.filter((r): r is Library => r.resourceType === 'Library');
      const valueSets = resources.filter((r): r is ValueSet => r.resourceType === 'ValueSet');
      // Libraries: everything cqf-library names, and what they depend on, is in the Bundle, each once.
      const urls = libraries.map((l) => l.url!);
      expect(new Set(urls).size, `${at}: each Library once`).toBe(urls.length);
      expect(new Set(libraries.map((l) => l.name)).size, `${at}: Library names unique`).toBe(libraries.length);
      for (const e of (q.extension ?? []).filter((x) => x.url === CQF_LIBRARY)) expect(urls, `${at}: cqf-library ${e.valueCanonical}`).toContain(e.valueCanonical!.split('|')[0]);
      for (const l of libraries) {
        const types = (l.content ?? []).map((c) => c.contentType);
        expect(types, `${at}: ${l.name}`).toEqual(expect.arrayContaining(['text/cql', 'application/elm+json']));
        for (const d of (l.relatedArtifact ?? []).filter((r) => r.type === 'depends-on')) expect(urls, `${at}: ${l.name} depends on ${d.resource}`).toContain(d.resource!.split('|')[0]);
        // Every Library its ELM includes (FHIRHelpers, the parts a policy's CQL is split into) is in the Bundle, by
        // name and version, as an engine resolves an include.
        const elm = JSON.parse(Buffer.from(l.content!.find((c) => c.contentType === 'application/elm+json')!.data!, 'base64').toString('utf8'));
        for (const inc of (elm.library.includes?.def ?? []) as { path: string; version?: string }[]) {
          expect(libraries.some((x) => x.name === inc.path && x.version === inc.version), `${at}: ${l.name} includes ${inc.path} ${inc.version}`).toBe(true);
        }
      }
      // ValueSets: every answerValueSet and every value set a Library's ELM names, with an expansion.
      const bound = walk(q.item).map((i) => i.answerValueSet).filter((v): v is string => !!v);
      const named = libraries.flatMap((l) => {
        const elm = JSON.parse(Buffer.from(l.content!.find((c) => c.contentType === 'application/elm+json')!.data!, 'base64').toString('utf8'));
        return (elm.library.valueSets?.def ?? []).map((d: { id: string }) => d.id);
      });
      for (const url of [...bound, ...named]) {
        const vs = valueSets.find((v) => v.url === url.split('|')[0]);
        expect(vs?.expansion?.contains?.length, `${at}: ValueSet ${url} expanded in the package`).toBeGreaterThan(0);
      }
      // One draft response for this Questionnaire version, about the order's patient.
      const qrs = resources.filter((r): r is QuestionnaireResponse => r.resourceType === 'QuestionnaireResponse');
      expect(qrs, at).toHaveLength(1);
      expect(qrs[0].questionnaire, at).toBe(`${q.url}|${q.version}`);
      expect(qrs[0].status, at).toBe('in-progress');
      expect(qrs[0].subject?.reference, at).toBe(storyOrder(story).subject!.reference);
    }
  });
});

describe('expression languages per version', () => {
  it('2.0.1 packages: every expression that pre-fills or sets context is CQL naming a packaged Library ("Library".define), as the 2.0.1 payer tests require', async () => {
    for (const story of STORIES) {
      const out = (await post('/fhir/Questionnaire/$questionnaire-package', body(storyParameters(story), '2.0.1')).expect(200)).body as Parameters;
      for (const part of partsOf(out)) {
        const resources = (part.resource as Bundle).entry!.map((e) => e.resource!);
        const q = resources[0] as Questionnaire;
        const libraries = resources.filter((r): r is Library => r.resourceType === 'Library');
        const names = libraries.map((l) => l.name);
        const prefill = expressions(q).filter((e) => /-(initialExpression|candidateExpression|contextExpression)$|\/variable$|-itemPopulationContext$/.test(e.url));
        // dtr_v201_payer_static_form_expressions_test needs at least one text/cql initial, candidate or context
        // expression in every package (both drugs: the Besponsa form had none while its Library expressed no fact).
        expect(prefill.filter((e) => e.url.endsWith('initialExpression')).length, story).toBeGreaterThan(0);
        for (const e of prefill) {
          expect(e.language, `${story} ${e.url}`).toBe('text/cql');
          const m = /^"([^"]+)"\.([A-Za-z0-9_]+)$/.exec(e.expression);
          if (e.url.endsWith('initialExpression')) expect(names, `${story} ${e.expression}`).toContain(m?.[1]);
        }
      }
    }
  });

  it('2.2 packages: every expression is FHIRPath, x-fhir-query or CQL (DTR 2.2 clients SHALL handle CQL and FHIRPath), and FHIRPath is marked text/fhirpath', async () => {
    for (const story of STORIES) {
      const out = (await post('/fhir/Questionnaire/$questionnaire-package', body(storyParameters(story), '2.2.0')).expect(200)).body as Parameters;
      for (const part of partsOf(out)) {
        const q = (part.resource as Bundle).entry![0].resource as Questionnaire;
        const all = expressions(q);
        expect(all.length, story).toBeGreaterThan(0);
        for (const e of all) expect(['text/fhirpath', 'application/x-fhir-query', 'text/cql', 'text/cql-identifier'], `${story} ${e.url}`).toContain(e.language);
        expect(all.some((e) => e.language === 'text/fhirpath'), story).toBe(true);
      }
    }
  });
});

describe('error paths', () => {
  const coverage = storyResources('centene-missing-mrd').find((r) => r.resourceType === 'Coverage')!;
  const order = storyOrder('centene-missing-mrd');
  it.each([
    ['a body that is not a Parameters', { resourceType: 'Bundle', type: 'collection' }, 'Parameters'],
    ['no coverage (coverage 1..*)', body([{ name: 'order', resource: order }]), 'Parameters.parameter'],
    ['none of order, questionnaire, context (dtr-1)', body([{ name: 'coverage', resource: coverage }]), 'Parameters.parameter'],
    ['a coverage parameter holding another resource', body([{ name: 'coverage', resource: order }, { name: 'order', resource: order }]), 'Parameters.parameter[0].resource'],
    ['a questionnaire parameter without a canonical', body([{ name: 'coverage', resource: coverage }, { name: 'questionnaire', valueString: ' ' }]), 'Parameters.parameter[1].valueCanonical'],
  ])('%s: 400 OperationOutcome naming where', async (_label, b, where) => {
    const res = await post('/fhir/Questionnaire/$questionnaire-package', b);
    expect(res.status).toBe(400);
    const oo = res.body as OperationOutcome;
    expect(oo.resourceType).toBe('OperationOutcome');
    expect(oo.issue![0].severity).toBe('error');
    expect(oo.issue!.flatMap((i) => i.expression ?? [])).toContain(where);
  });

  it.each([
    ['a 2.2 request with two coverage parameters (coverage 1..1 in 2.2)', body([{ name: 'coverage', resource: coverage }, { name: 'coverage', resource: { ...coverage, id: 'second' } }, { name: 'order', resource: order }], '2.2.0'), 'Parameters.parameter'],
    ['an input profile version this payer does not serve', body([{ name: 'coverage', resource: coverage }, { name: 'order', resource: order }], '9.9.9'), 'Parameters.meta.profile[0]'],
    ['an input profile version before DTR 2.0', body([{ name: 'coverage', resource: coverage }, { name: 'order', resource: order }], '1.0.0'), 'Parameters.meta.profile[0]'],
  ])('%s: 400 naming where, and what is served', async (_label, b, where) => {
    const res = await post('/fhir/Questionnaire/$questionnaire-package', b);
    expect(res.status).toBe(400);
    const oo = res.body as OperationOutcome;
    expect(oo.issue![0].expression).toEqual([where]);
    if (where.startsWith('Parameters.meta')) expect(oo.issue![0]).toMatchObject({ code: 'not-supported', diagnostics: expect.stringMatching(/serves 2\.0, 2\.1, 2\.2$/) });
  });

  it('two coverage parameters are still taken from a 2.0.1 request (coverage 1..*)', async () => {
    const b = body([{ name: 'coverage', resource: coverage }, { name: 'coverage', resource: { ...coverage, id: 'second' } }, { name: 'order', resource: order }], '2.0.1');
    expect(partsOf((await post('/fhir/Questionnaire/$questionnaire-package', b).expect(200)).body as Parameters).map((p) => p.name)).toEqual(['PackageBundle']);
  });

  it.each([
    [undefined, 'operationOutcome'],
    ['2.0.1', 'operationOutcome'],
    ['2.2.0', 'outcome'],
  ])('an order no policy governs is a warning naming it, alone or beside an order that gets its form (signal %s)', async (version, name) => {
    const aspirin = { ...order, id: 'aspirin-81', medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1191', display: 'aspirin' }] } };
    const warningsOf = (p: Parameters) => ((p.parameter!.find((x) => x.name === name)?.resource as OperationOutcome | undefined)?.issue ?? []).filter((i) => i.severity === 'warning');
    const alone = (await post('/fhir/Questionnaire/$questionnaire-package', body([{ name: 'coverage', resource: coverage }, { name: 'order', resource: aspirin }], version)).expect(200)).body as Parameters;
    expect(warningsOf(alone).map((i) => [i.code, i.diagnostics, i.expression])).toEqual([
      ['not-found', expect.stringMatching(/^No payer Questionnaire applies to order MedicationRequest\/aspirin-81: no policy of payer centene governs it \(code 1191\)/), ["Parameters.parameter.where(name = 'order')[0].resource"]],
    ]);
    const beside = (await post('/fhir/Questionnaire/$questionnaire-package', body([{ name: 'coverage', resource: coverage }, { name: 'order', resource: order }, { name: 'order', resource: aspirin }], version)).expect(200)).body as Parameters;
    expect(partsOf(beside).length).toBeGreaterThan(0);
    expect(warningsOf(beside).map((i) => [i.diagnostics, i.expression])).toEqual([
      [expect.stringMatching(/order MedicationRequest\/aspirin-81/), ["Parameters.parameter.where(name = 'order')[1].resource"]],
    ]);
    if (version === undefined) expect(beside.parameter!.find((x) => x.name === 'outcome')).toBeDefined();
  });

  it.each([
    ['2.0.1', 'operationOutcome'],
    ['2.2.0', 'outcome'],
  ])('nothing applicable (DTR %s): 200 with only the %s part, saying why', async (version, name) => {
    const amlodipine = { ...order, medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '197361', display: 'amlodipine 5 MG Oral Tablet' }] } };
    const none = (await post('/fhir/Questionnaire/$questionnaire-package', body([{ name: 'coverage', resource: coverage }, { name: 'order', resource: amlodipine }], version)).expect(200)).body as Parameters;
    expect(none.parameter!.map((p) => p.name)).toEqual([name]);
    expect((none.parameter![0].resource as OperationOutcome).issue![0].diagnostics).toMatch(/no policy/);
    // A context that is the request's only selector and names no assertion PriorPath recorded is a 404 naming it.
    const unknownContext = (await post('/fhir/Questionnaire/$questionnaire-package', body([{ name: 'coverage', resource: coverage }, { name: 'context', valueString: 'b0c5e7e6-0000-4000-8000-000000000000' }], version)).expect(404)).body as OperationOutcome;
    expect(unknownContext.issue![0].diagnostics).toMatch(/context b0c5e7e6-0000-4000-8000-000000000000 is not a coverage-assertion-id/);
    const unknownForm = (await post('/fhir/Questionnaire/$questionnaire-package', body([{ name: 'coverage', resource: coverage }, { name: 'questionnaire', valueCanonical: 'https://priorpath.dev/fhir/Questionnaire/no-such-form' }], version)).expect(200)).body as Parameters;
    const issues = (unknownForm.parameter![0].resource as OperationOutcome).issue!.map((i) => i.diagnostics);
    expect(issues).toEqual(expect.arrayContaining([expect.stringMatching(/none of the requested Questionnaires/), expect.stringMatching(/no-such-form is not offered/)]));
  });
});

describe('ValueSet/$expand (DTR: the payer SHALL support it)', () => {
  it('expands every ValueSet a package binds, by id and by url, with GET or POST (FHIR R4 §Operations: POST is always allowed)', async () => {
    const out = (await post('/fhir/Questionnaire/$questionnaire-package', body(storyParameters('ohsu-infant-kmt2a'), '2.2.0')).expect(200)).body as Parameters;
    const valueSets = (partsOf(out)[0].resource as Bundle).entry!.map((e) => e.resource!).filter((r): r is ValueSet => r.resourceType === 'ValueSet');
    expect(valueSets.length).toBeGreaterThan(0);
    for (const vs of valueSets) {
      const byId = (await request(app).get(`/fhir/ValueSet/${vs.id}/$expand`).expect(200)).body as ValueSet;
      const byUrl = (await request(app).get('/fhir/ValueSet/$expand').query({ url: vs.url }).expect(200)).body as ValueSet;
      expect(byId.expansion!.contains).toEqual(vs.expansion!.contains);
      expect(byUrl.expansion!.contains).toEqual(vs.expansion!.contains);
      const postedById = (await post(`/fhir/ValueSet/${vs.id}/$expand`, { resourceType: 'Parameters', parameter: [{ name: 'count', valueInteger: 1 }] }).expect(200)).body as ValueSet;
      expect(postedById.expansion!.contains).toEqual(vs.expansion!.contains!.slice(0, 1));
      expect(postedById.expansion!.total).toBe(vs.expansion!.contains!.length);
    }
    const missing = await request(app).get('/fhir/ValueSet/$expand').query({ url: 'https://priorpath.dev/fhir/ValueSet/no-such-set' });
    expect(missing.status).toBe(404);
    expect(missing.body.resourceType).toBe('OperationOutcome');
  });
});
