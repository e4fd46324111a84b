/**
 * The substance of the Inferno DTR payer server suite's adaptive group (inferno-framework/davinci-dtr-test-kit,
 * `dtr_payer_server`, DTR 2.0.1, group "Adaptive Questionnaire Retrieval") without the HL7 validator: a package request
 * naming a policy's adaptive form, as the kit sends it (no version signal, so both DTR shapes come back), then
 * `$next-question` rounds from the package's draft response until the form completes. Each `it` names the kit tests
 * and what they read. The kit reads every package Bundle of the response and every contained Questionnaire of every
 * `$next-question` answer.
 */
import type { Bundle, Extension, Library, Parameters, Questionnaire, QuestionnaireItem, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { CANONICAL_BASE, dtrContent, fhirApp } from '../dtr/helpers.js';

const content = dtrContent();
const FHIR = 'application/fhir+json';
const SDC = 'http://hl7.org/fhir/uv/sdc/StructureDefinition';
const CQF_LIBRARY = 'http://hl7.org/fhir/StructureDefinition/cqf-library';
const VARIABLE = 'http://hl7.org/fhir/StructureDefinition/variable';
const ROOT_EXPRESSIONS = [`${SDC}/sdc-questionnaire-launchContext`, VARIABLE, `${SDC}/sdc-questionnaire-itemPopulationContext`, CQF_LIBRARY];
const ITEM_EXPRESSIONS = ['initialExpression', 'candidateExpression', 'contextExpression'].map((n) => `${SDC}/sdc-questionnaire-${n}`);

const ofType = <T>(bundles: Bundle[], type: string) => bundles.flatMap((b) => (b.entry ?? []).map((e) => e.resource!)).filter((r) => r.resourceType === type) as T[];
const items = (list: QuestionnaireItem[] | undefined): QuestionnaireItem[] => (list ?? []).flatMap((i) => [i, ...items(i.item)]);
const itemExpressions = (q: Questionnaire): Extension[] => items(q.item).flatMap((i) => (i.extension ?? []).filter((e) => ITEM_EXPRESSIONS.includes(e.url)));
const containedForm = (qr: QuestionnaireResponse) => qr.contained!.find((c) => c.resourceType === 'Questionnaire') as Questionnaire;

/** An answer of the item's type, as a clinician gives one (a code from the bound ValueSet's expansion). */
function someAnswer(item: QuestionnaireItem): Record<string, unknown> | undefined {
  if (item.type === 'boolean') return { valueBoolean: true };
  if (item.type === 'decimal') return { valueDecimal: 1 };
  if (item.type === 'integer') return { valueInteger: 1 };
  if (item.type === 'date') return { valueDate: '1990-05-01' };
  if (item.type === 'string' || item.type === 'text') return { valueString: 'documented' };
  if (item.type === 'choice') {
    const c = content.valueSets.get(item.answerValueSet!.split('|')[0])?.expansion?.contains?.[0];
    return c ? { valueCoding: { system: c.system, code: c.code } } : undefined;
  }
  return undefined;
}

describe.each(content.policies.map((p) => [p.file.id, p] as const))('adaptive group for %s', (id, policy) => {
  const adaptiveUrl = `${CANONICAL_BASE}/Questionnaire/${id}-adaptive`;

  /** The kit's adaptive flow: the package (both shapes), then `$next-question` from the draft of one shape's Bundle. */
  async function run(part: 'PackageBundle' | 'packagebundle') {
    const { app } = fhirApp();
    const coverage = { resourceType: 'Coverage', id: 'cov1', status: 'active', beneficiary: { reference: 'Patient/p1' }, payor: [{ identifier: { system: 'https://priorpath.dev/fhir/sid/payer', value: policy.file.payer } }] };
    const body = { resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'questionnaire', valueCanonical: adaptiveUrl }] };
    const pkg = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).send(JSON.stringify(body)).expect(200)).body as Parameters;
    const bundles = (pkg.parameter ?? []).filter((p) => p.resource?.resourceType === 'Bundle').map((p) => p.resource as Bundle);
    const own = pkg.parameter!.find((p) => p.name === part)!.resource as Bundle;
    let qr = ofType<QuestionnaireResponse>([own], 'QuestionnaireResponse')[0];
    const answers: QuestionnaireResponse[] = [];
    for (let round = 0; round < 20 && qr.status !== 'completed'; round++) {
      qr = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
      answers.push(structuredClone(qr));
      const answered = new Set((qr.item ?? []).map((i) => i.linkId));
      for (const item of containedForm(qr).item ?? []) {
        if (answered.has(item.linkId)) continue;
        const a = someAnswer(item);
        qr.item = [...(qr.item ?? []), { linkId: item.linkId, ...(a ? { answer: [a] } : {}) }];
      }
    }
    return { bundles, own, answers };
  }

  it('dtr_v201_payer_adaptive_form_libraries_test: every Library of the response has CQL and ELM, and no Library name comes twice across its package Bundles', async () => {
    const { bundles } = await run('PackageBundle');
    expect(bundles).toHaveLength(2);
    const libraries = ofType<Library>(bundles, 'Library');
    expect(libraries.length).toBeGreaterThan(0);
    for (const l of libraries) expect(l.content!.map((c) => c.contentType)).toEqual(expect.arrayContaining(['text/cql', 'application/elm+json']));
    const names = libraries.map((l) => l.name);
    expect(new Set(names).size, names.join(', ')).toBe(names.length);
  });

  it('dtr_v201_payer_adaptive_form_extensions_test: a package form names its Library in cqf-library, and every cqf-library is a packaged Library', async () => {
    const { bundles } = await run('PackageBundle');
    const urls = new Set(ofType<Library>(bundles, 'Library').map((l) => l.url));
    const forms = ofType<Questionnaire>(bundles, 'Questionnaire');
    expect(forms.some((q) => (q.extension ?? []).some((e) => ROOT_EXPRESSIONS.includes(e.url)))).toBe(true);
    for (const q of forms) for (const e of (q.extension ?? []).filter((x) => x.url === CQF_LIBRARY)) expect(urls).toContain(e.valueCanonical);
  });

  it('dtr_v201_payer_adaptive_next_question_extensions_test and _expressions_test: from the 2.0.1 draft, every form $next-question returns names the packaged Library and pre-fills in text/cql only; the session completes', async () => {
    const { own, answers } = await run('PackageBundle');
    const libraries = ofType<Library>([own], 'Library');
    const urls = new Set(libraries.map((l) => l.url));
    const names = libraries.map((l) => l.name);
    expect(answers.length).toBeGreaterThan(1);
    const forms = answers.map(containedForm);
    for (const q of forms) {
      const root = q.extension ?? [];
      expect(root.some((e) => ROOT_EXPRESSIONS.includes(e.url))).toBe(true);
      const cqf = root.filter((e) => e.url === CQF_LIBRARY);
      expect(cqf).toHaveLength(1);
      expect(urls).toContain(cqf[0].valueCanonical);
      // The kit fails a variable or itemPopulationContext that is not CQL (FHIRPath and x-fhir-query variables go).
      for (const e of root.filter((x) => x.valueExpression)) expect(e.valueExpression!.language, e.url).toBe('text/cql');
      for (const e of itemExpressions(q)) {
        expect(e.valueExpression!.language).toBe('text/cql');
        expect(names).toContain(/^"([^"]+)"\./.exec(e.valueExpression!.expression!)?.[1]);
      }
      // DTR 2.0.1 dtr-questionnaire-adapt: text 1..1, item.enableWhen 0..0.
      expect(q.text?.div).toMatch(/^<div xmlns="http:\/\/www.w3.org\/1999\/xhtml">/);
      expect(items(q.item).some((i) => i.enableWhen)).toBe(false);
    }
    // _expressions_test: at least one pre-filling expression among the questions asked.
    expect(forms.flatMap(itemExpressions).length).toBeGreaterThan(0);
    // payer_server_adaptive_completion_test.
    expect(answers.some((qr) => qr.status === 'completed')).toBe(true);
  });

  it('the 2.2 shape stays FHIRPath: no Library in its package Bundle, no cqf-library on its form, and its $next-question forms declare their variables and name no Library', async () => {
    const { own, answers } = await run('packagebundle');
    expect(ofType<Library>([own], 'Library')).toEqual([]);
    const form = own.entry![0].resource as Questionnaire;
    expect(form.url).toBe(adaptiveUrl);
    expect((form.extension ?? []).some((e) => e.url === CQF_LIBRARY)).toBe(false);
    const forms = answers.map(containedForm);
    for (const q of forms) {
      expect((q.extension ?? []).some((e) => e.url === CQF_LIBRARY)).toBe(false);
      for (const e of itemExpressions(q)) expect(e.valueExpression!.language).toBe('text/fhirpath');
    }
    const standard = content.questionnaires.get(`${CANONICAL_BASE}/Questionnaire/${id}`) as unknown as Questionnaire;
    const variables = (standard.extension ?? []).filter((e) => e.url === VARIABLE);
    expect(variables.length).toBeGreaterThan(0);
    expect(forms.at(-1)!.extension).toEqual(expect.arrayContaining(variables));
    expect(answers.at(-1)!.status).toBe('completed');
  });
});
