/**
 * The adaptive route into DTR (DTR §"Adaptive Form"; Inferno DTR payer suite group 2): `$questionnaire-package`
 * naming a policy's adaptive canonical (`…/Questionnaire/<policy-id>-adaptive`) returns the empty adaptive
 * Questionnaire (`dtr-questionnaire-adapt-search`) with its Libraries and a draft response, and `$next-question` takes
 * that response to the policy's first questions. Every policy gets one, from the catalog.
 */
import type { Bundle, Library, Parameters, Questionnaire, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { CANONICAL_BASE, draftOrder, dtrContent, FHIR_BASE, fhirApp, fhirIssues, memberCoverage } from './helpers.js';

const content = dtrContent();
const FHIR = 'application/fhir+json';
const ADAPTIVE_EXT = 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive';
const CQF_LIBRARY = 'http://hl7.org/fhir/StructureDefinition/cqf-library';
const ADAPT_SEARCH = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-questionnaire-adapt-search';

const packageFor = (payer: string, questionnaire: string) => ({
  resourceType: 'Parameters',
  parameter: [
    { name: 'coverage', resource: memberCoverage(payer) },
    { name: 'questionnaire', valueCanonical: questionnaire },
  ],
});
const bundlesOf = (out: Parameters) =>
  (out.parameter ?? [])
    .filter((p) => p.name === 'PackageBundle' || p.name === 'packagebundle')
    .map((p) => [p.name, p.resource as Bundle] as const);
const ofType = <T>(b: Bundle, type: string) => (b.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === type) as T[];

describe.each(content.policies.map((p) => [p.file.id, p] as const))('adaptive form of %s', (id, policy) => {
  const standardUrl = `${CANONICAL_BASE}/Questionnaire/${id}`;
  const adaptiveUrl = `${standardUrl}-adaptive`;
  const version = policy.file.version;

  it('a package naming the adaptive canonical (with or without |version) holds the empty adaptive Questionnaire first and a draft response in both DTR shapes; the 2.0.1 one names its Library (cqf-library) and carries it with CQL and ELM, the 2.2 one (FHIRPath) neither', async () => {
    const { app } = fhirApp();
    for (const canonical of [adaptiveUrl, `${adaptiveUrl}|${version}`]) {
      const out = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(packageFor(policy.file.payer, canonical))).expect(200)).body as Parameters;
      expect(fhirIssues(out)).toEqual([]);
      expect(out.parameter!.some((p) => p.name === 'operationOutcome' || p.name === 'outcome')).toBe(false);
      const bundles = bundlesOf(out);
      expect(bundles.map(([name]) => name)).toEqual(['PackageBundle', 'packagebundle']);
      for (const [part, b] of bundles) {
        const q = b.entry![0].resource as Questionnaire;
        expect(q).toMatchObject({
          resourceType: 'Questionnaire',
          id: `${id}-adaptive`,
          url: adaptiveUrl,
          version,
          status: 'active',
          subjectType: ['Patient'],
          derivedFrom: [`${standardUrl}|${version}`],
        });
        expect(q.title).toBeTruthy();
        expect(q.meta?.profile).toEqual([ADAPT_SEARCH]);
        expect(q.item).toBeUndefined();
        expect(q.extension!.filter((e) => e.url === ADAPTIVE_EXT)).toEqual([{ url: ADAPTIVE_EXT, valueUrl: FHIR_BASE }]);
        const libraries = ofType<Library>(b, 'Library');
        const cqf = q.extension!.filter((e) => e.url === CQF_LIBRARY).map((e) => e.valueCanonical);
        const drafts = ofType<QuestionnaireResponse>(b, 'QuestionnaireResponse');
        expect(drafts).toHaveLength(1);
        expect(drafts[0]).toMatchObject({ status: 'in-progress', questionnaire: '#adaptive', subject: { reference: 'Patient/p1' } });
        const contained = drafts[0].contained![0] as Questionnaire;
        expect(contained.derivedFrom).toEqual([`${adaptiveUrl}|${version}`]);
        // The draft's form carries the form's extensions: what decides the language $next-question answers in.
        expect(contained.extension).toEqual(q.extension);
        // DTR 2.0.1 dtr-questionnaire-adapt, the profile the contained form claims: text 1..1.
        expect(contained.text).toMatchObject({ status: 'generated', div: expect.stringContaining(q.title!) });
        if (part === 'packagebundle') {
          expect(cqf).toEqual([]);
          expect(libraries).toEqual([]);
          continue;
        }
        expect(cqf).toHaveLength(1);
        // Inferno compares cqf-library with Library.url as strings.
        const own = libraries.find((l) => l.url === cqf[0])!;
        expect(own).toBeDefined();
        for (const l of libraries) {
          expect(l.content!.map((c) => c.contentType)).toEqual(expect.arrayContaining(['text/cql', 'application/elm+json']));
        }
      }
    }
  });

  it("$next-question takes the package's draft response to the policy's first questions, the same the standard form's adaptive start gets", async () => {
    const { app } = fhirApp();
    const out = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(packageFor(policy.file.payer, adaptiveUrl))).expect(200)).body as Parameters;
    expect(bundlesOf(out)).toHaveLength(2);
    for (const [, b] of bundlesOf(out)) {
      const draft = ofType<QuestionnaireResponse>(b, 'QuestionnaireResponse')[0];
      const first = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(draft)).expect(200)).body as QuestionnaireResponse;
      const asked = (first.contained![0] as Questionnaire).item ?? [];
      expect(first.status).toBe('in-progress');
      expect(asked.length).toBeGreaterThan(0);
      expect((first.contained![0] as Questionnaire).derivedFrom).toEqual([`${adaptiveUrl}|${version}`]);

      const fromStandard: QuestionnaireResponse = {
        ...draft,
        contained: [{ ...(draft.contained![0] as Questionnaire), url: undefined, derivedFrom: [`${standardUrl}|${version}`] }],
      };
      const viaStandard = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(fromStandard)).expect(200)).body as QuestionnaireResponse;
      expect(asked.map((i) => i.linkId)).toEqual(((viaStandard.contained![0] as Questionnaire).item ?? []).map((i) => i.linkId));
    }
  });

  it('GET /fhir/Questionnaire/<id>-adaptive and a search by url find it; a package without the adaptive canonical stays the standard one', async () => {
    const { app } = fhirApp();
    const read = (await request(app).get(`/fhir/Questionnaire/${id}-adaptive`).expect(200)).body as Questionnaire;
    expect(read.url).toBe(adaptiveUrl);
    const found = (await request(app).get('/fhir/Questionnaire').query({ url: adaptiveUrl }).expect(200)).body as Bundle;
    expect(found.entry!.map((e) => (e.resource as Questionnaire).id)).toEqual([`${id}-adaptive`]);

    const std = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(packageFor(policy.file.payer, standardUrl))).expect(200)).body as Parameters;
    for (const [, b] of bundlesOf(std)) {
      const q = b.entry![0].resource as Questionnaire;
      expect(q.url).toBe(standardUrl);
      expect(q.item!.length).toBeGreaterThan(0);
      expect(ofType<QuestionnaireResponse>(b, 'QuestionnaireResponse')[0].questionnaire).toBe(`${standardUrl}|${version}`);
    }
  });
});

describe('a named form is the Coverage payer\'s (design.md §4 "Payer", §8)', () => {
  it('is not packaged for a member whose Coverage names another payer PriorPath serves, and the outcome says whose form it is; the same form is packaged for its own payer and for a Coverage naming no payer PriorPath serves', async () => {
    const { app } = fhirApp();
    const bcbsncForm = `${CANONICAL_BASE}/Questionnaire/bcbsnc-blinatumomab`;
    for (const form of [bcbsncForm, `${bcbsncForm}-adaptive`]) {
      const other = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(packageFor('centene', form))).expect(200)).body as Parameters;
      expect(bundlesOf(other)).toEqual([]);
      const outcome = other.parameter!.find((p) => p.name === 'outcome' || p.name === 'operationOutcome')?.resource as { issue: { diagnostics?: string }[] } | undefined;
      expect(outcome?.issue.map((i) => i.diagnostics).join(' ')).toMatch(/payer bcbsnc's form; the Coverage names payer centene/);

      const own = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(packageFor('bcbsnc', form))).expect(200)).body as Parameters;
      expect(bundlesOf(own).length).toBeGreaterThan(0);
      const unknown = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(packageFor('aetna', form))).expect(200)).body as Parameters;
      expect(bundlesOf(unknown).length).toBeGreaterThan(0);
    }
  });
});

describe('the adaptive draft response (dtr-questionnaireresponse-adapt)', () => {
  it('marks the order date the payer filled with its information-origin: auto in the 2.0.1 package, auto-server in the 2.2 one', async () => {
    const { app } = fhirApp();
    const order = draftOrder(
      'ord-adaptive-origin',
      { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1597262', display: 'blinatumomab 0.035 MG Injection' },
      { dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-12-14' } } }, doseAndRate: [{ doseQuantity: { value: 28, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } }] }] },
    );
    const body = packageFor('bcbsnc', `${CANONICAL_BASE}/Questionnaire/bcbsnc-blinatumomab-adaptive`);
    body.parameter.push({ name: 'order', resource: order } as never);
    const out = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(body)).expect(200)).body as Parameters;
    const bundles = bundlesOf(out);
    expect(bundles.map(([name]) => name)).toEqual(['PackageBundle', 'packagebundle']);
    for (const [part, b] of bundles) {
      const [qr] = ofType<QuestionnaireResponse>(b, 'QuestionnaireResponse');
      const answers = (qr.item ?? []).flatMap((i) => i.answer ?? []);
      // The order date and the start the order states (order-start, design.md §6 Recency): the same day here.
      expect(answers.map((a) => a.valueDate)).toEqual(['2026-12-14', '2026-12-14']);
      for (const a of answers) {
        const origin = a.extension?.find((e) => e.url === 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin');
        expect(origin?.extension?.find((e) => e.url === 'source')?.valueCode, part).toBe(part === 'packagebundle' ? 'auto-server' : 'auto');
      }
    }
  });
});

describe('a form version the payer no longer offers', () => {
  it('is answered with the current version of the same form, the outcome naming the version asked for and the one given', async () => {
    const { app } = fhirApp();
    const url = `${CANONICAL_BASE}/Questionnaire/centene-blinatumomab`;
    const out = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(packageFor('centene', `${url}|1999-01`))).expect(200)).body as Parameters;
    const bundles = bundlesOf(out);
    expect(bundles.length).toBeGreaterThan(0);
    const current = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!.file.version;
    for (const [, b] of bundles) expect(b.entry![0].resource).toMatchObject({ resourceType: 'Questionnaire', url, version: current });
    const outcome = out.parameter!.find((p) => p.name === 'outcome' || p.name === 'operationOutcome')?.resource as { issue: { severity: string; diagnostics?: string }[] };
    expect(outcome.issue).toEqual([expect.objectContaining({ severity: 'information', diagnostics: expect.stringContaining(`version 1999-01 is no longer offered; its current version ${current} is given`) })]);
  });
});
