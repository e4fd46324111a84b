import type { Bundle, Extension, Library, Parameters, Questionnaire, QuestionnaireItem } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * The substance of the Inferno DTR payer server suite (inferno-framework/davinci-dtr-test-kit, `dtr_payer_server`,
 * DTR 2.0.1, group "Static Questionnaire Package Retrieval") without the HL7 validator. Each `it` names the kit test
 * and the DTR 2.0.1 requirements it checks. The request is the kit's shape for a blinatumomab order: a Parameters
 * with the order and the Coverage and no context, claiming the DTR 2.0.1 input profile (`|2.0.1`), as docs/conformance.md
 * tells a tester to send it. The kit reads every Bundle part of the answer (`extract_bundles_from_parameter`), not
 * only the `PackageBundle` ones; without a version signal the answer also holds the DTR 2.2 `packagebundle`
 * parts (design.md §7), whose FHIRPath forms the kit's tests 5 and 6 fail (last test below).
 */
const SDC = 'http://hl7.org/fhir/uv/sdc/StructureDefinition';
const ROOT_EXPRESSIONS = [`${SDC}/sdc-questionnaire-launchContext`, 'http://hl7.org/fhir/StructureDefinition/variable', `${SDC}/sdc-questionnaire-itemPopulationContext`, 'http://hl7.org/fhir/StructureDefinition/cqf-library'];
const ITEM_EXPRESSIONS = ['initialExpression', 'candidateExpression', 'contextExpression'].map((n) => `${SDC}/sdc-questionnaire-${n}`);

const INPUT_2_0_1 = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.0.1';

async function staticPackage(story: string, versioned = true) {
  const resources = storyResources(story);
  const order = storyOrder(story, resources);
  const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
  const { app } = buildApp();
  const res = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .send({
      resourceType: 'Parameters',
      ...(versioned ? { meta: { profile: [INPUT_2_0_1] } } : {}),
      parameter: [{ name: 'order', resource: order }, { name: 'coverage', resource: coverage }],
    });
  return res;
}

/** The package Bundles the kit reads: a bare Bundle, or every Bundle part of the Parameters, whatever its name. */
function packageBundles(body: Bundle | Parameters): Bundle[] {
  if (body.resourceType === 'Bundle') return [body];
  return (body.parameter ?? []).filter((p) => p.resource?.resourceType === 'Bundle').map((p) => p.resource as Bundle);
}
const resourcesOf = <T>(bundles: Bundle[], type: string) => bundles.flatMap((b) => b.entry!.map((e) => e.resource!)).filter((r) => r.resourceType === type) as T[];
function itemExtensions(items: QuestionnaireItem[] | undefined): Extension[] {
  return (items ?? []).flatMap((i) => [...(i.extension ?? []), ...itemExtensions(i.item)]);
}

describe.each(['centene-missing-mrd', 'ohsu-infant-kmt2a', 'bcbsnc-status-unknown', 'mmm-ph-positive-tki', 'bcbsnc-inotuzumab-status-unknown'])('DTR payer server, static package for %s', (story) => {
  it('dtr_v201_payer_static_form_response_test: 200/201 with a Bundle or a Parameters holding a package Bundle (#169, #294, #303, #306)', async () => {
    const res = await staticPackage(story);
    expect([200, 201]).toContain(res.status);
    expect(['Bundle', 'Parameters']).toContain(res.body.resourceType);
    const bundles = packageBundles(res.body);
    expect(bundles.length).toBeGreaterThan(0);
    for (const b of bundles) {
      expect(b.type).toBe('collection');
      expect(b.entry![0].resource!.resourceType).toBe('Questionnaire');
    }
  });

  it('dtr_v201_payer_static_form_libraries_test: Libraries with text/cql and application/elm+json content, unique names (#84, #95, #96, #99, #101, #102)', async () => {
    const libraries = resourcesOf<Library>(packageBundles((await staticPackage(story)).body), 'Library');
    expect(libraries.length).toBeGreaterThan(0);
    for (const l of libraries) {
      const types = (l.content ?? []).map((c) => c.contentType);
      expect(types, l.name).toContain('text/cql');
      expect(types, l.name).toContain('application/elm+json');
      for (const c of l.content!) expect(c.data, `${l.name} ${c.contentType}`).toBeTruthy();
    }
    const names = libraries.map((l) => l.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('dtr_v201_payer_static_form_extensions_test: pre-population shown at the root; variable/itemPopulationContext in text/cql; every cqf-library equals a packaged Library url (#57, #62, #83, #98, #309, #317)', async () => {
    const bundles = packageBundles((await staticPackage(story)).body);
    const urls = new Set(resourcesOf<Library>(bundles, 'Library').map((l) => l.url));
    for (const q of resourcesOf<Questionnaire>(bundles, 'Questionnaire')) {
      const root = q.extension ?? [];
      expect(root.some((e) => ROOT_EXPRESSIONS.includes(e.url))).toBe(true);
      for (const e of root.filter((x) => x.url.endsWith('/variable') || x.url.endsWith('-itemPopulationContext'))) expect(e.valueExpression?.language).toBe('text/cql');
      const libs = root.filter((e) => e.url === 'http://hl7.org/fhir/StructureDefinition/cqf-library');
      expect(libs.length).toBeGreaterThan(0);
      for (const e of libs) expect(urls.has(e.valueCanonical)).toBe(true);
    }
  });

  it('dtr_v201_payer_static_form_expressions_test: at least one initial/candidate/context expression, all text/cql, naming a packaged Library (#64)', async () => {
    const bundles = packageBundles((await staticPackage(story)).body);
    const names = resourcesOf<Library>(bundles, 'Library').map((l) => l.name);
    for (const q of resourcesOf<Questionnaire>(bundles, 'Questionnaire')) {
      const expressions = itemExtensions(q.item).filter((e) => ITEM_EXPRESSIONS.includes(e.url));
      expect(expressions.length).toBeGreaterThan(0);
      for (const e of expressions) {
        expect(e.valueExpression!.language).toBe('text/cql');
        const lib = /^"([^"]+)"\./.exec(e.valueExpression!.expression!)?.[1];
        expect(names).toContain(lib);
      }
    }
  });
});

describe('DTR payer server, static package without a version signal (the kit preset\'s request as it stands)', () => {
  it('also holds the DTR 2.2 packagebundle, FHIRPath: the kit reads it, so its static tests 5 (variable not CQL) and 6 (initialExpression not CQL) fail unless the request claims the 2.0.1 input profile', async () => {
    const body = (await staticPackage('centene-missing-mrd', false)).body as Parameters;
    expect(body.parameter!.filter((p) => p.resource?.resourceType === 'Bundle').map((p) => p.name)).toEqual(['PackageBundle', 'packagebundle']);
    const forms = resourcesOf<Questionnaire>(packageBundles(body), 'Questionnaire');
    const languages = forms.flatMap((q) => [...(q.extension ?? []), ...itemExtensions(q.item)]).filter((e) => e.valueExpression && (e.url.endsWith('/variable') || ITEM_EXPRESSIONS.includes(e.url)));
    expect(new Set(languages.map((e) => e.valueExpression!.language))).toEqual(new Set(['text/cql', 'text/fhirpath', 'application/x-fhir-query']));
  });
});

describe('DTR 2.0.1 Library read', () => {
  it('serves every packaged Library at /fhir/Library by id and by url', async () => {
    const { app } = buildApp();
    const all = await request(app).get('/fhir/Library').expect(200);
    const libraries = (all.body as Bundle).entry!.map((e) => e.resource as Library);
    expect(libraries.map((l) => l.name)).toContain('FHIRHelpers');
    for (const l of libraries) {
      await request(app).get(`/fhir/Library/${l.id}`).expect(200);
      const byUrl = await request(app).get('/fhir/Library').query({ url: `${l.url}|${l.version}` }).expect(200);
      expect((byUrl.body as Bundle).entry!.map((e) => e.resource!.id)).toEqual([l.id]);
      // A client that fetches Libraries one by one (the DTR reference app follows depends-on) finds each one a Library
      // depends on, the parts a policy's CQL is split into among them.
      for (const d of (l.relatedArtifact ?? []).filter((r) => r.type === 'depends-on')) {
        expect(libraries.some((x) => `${x.url}|${x.version}` === d.resource), `${l.name} depends on ${d.resource}`).toBe(true);
      }
    }
    expect(libraries.filter((l) => /Part\d+$/.test(l.name!)).length).toBeGreaterThan(0);
    await request(app).get('/fhir/Library/no-such-library').expect(404);
  });
});
