/**
 * Every Questionnaire the payer serves declares what its expressions read (SDC §Expression-based population: a
 * FHIRPath or x-fhir-query expression may use `%name` only for a launch context or a variable in scope, besides the
 * variables SDC and FHIRPath define). LHC-Forms and Smart Forms evaluate with fhirpath.js, which throws on an
 * undeclared variable: the question is then left blank though the chart holds the answer. Checked on the forms as
 * read, in each package shape, and on every contained Questionnaire `$next-question` returns along an adaptive session.
 */
import type { Bundle, Extension, Parameters, Patient, Questionnaire, QuestionnaireItem, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { tokenize } from '../../src/fhir/fhirpath-tokens.js';
import { EXT_INITIAL_EXPRESSION, EXT_LAUNCH_CONTEXT, EXT_VARIABLE } from '../../src/fhir/dtr-urls.js';
import { buildApp, testContent } from '../helpers/app.js';
import { storyResources } from '../helpers/stories.js';

const FHIR = 'application/fhir+json';
const content = testContent();
const { app } = buildApp();
/** Variables SDC (§Expression-based population) and FHIRPath (§Environment variables) define for every expression. */
const ALWAYS = new Set(['resource', 'rootResource', 'context', 'questionnaire', 'qitem', 'ucum', 'sct', 'loinc']);

/** The names a Questionnaire's root declares: launch context names and variable names. */
function declared(q: Questionnaire): Set<string> {
  const names = new Set<string>();
  for (const e of q.extension ?? []) {
    if (e.url === EXT_LAUNCH_CONTEXT) names.add(e.extension!.find((x) => x.url === 'name')!.valueCoding!.code!);
    if (e.url === EXT_VARIABLE && e.valueExpression?.name) names.add(e.valueExpression.name);
  }
  return names;
}

/** `where: %name` for every variable an expression of the Questionnaire uses that nothing in scope declares. */
function undeclared(q: Questionnaire): string[] {
  const out: string[] = [];
  const check = (exts: Extension[] | undefined, where: string, scope: Set<string>) => {
    for (const e of exts ?? []) {
      const x = e.valueExpression;
      if (!x || !['text/fhirpath', 'application/x-fhir-query'].includes(x.language as string)) continue;
      // A name the expression defines itself (FHIRPath defineVariable, as the recency facts' pre-fill does) is in scope
      // after it; fhirpath.js resolves it.
      const own = new Set([...(x.expression ?? '').matchAll(/defineVariable\('([A-Za-z][A-Za-z0-9]*)'/g)].map((m) => m[1]));
      for (const t of tokenize(x.expression ?? ''))
        if (t.kind === 'var' && !scope.has(t.name!) && !own.has(t.name!) && !ALWAYS.has(t.name!) && !/^(vs|ext)-/.test(t.name!)) out.push(`${where}: %${t.name}`);
    }
  };
  const root = declared(q);
  check(q.extension, 'root', root);
  const visit = (items: QuestionnaireItem[] | undefined, scope: Set<string>) => {
    for (const i of items ?? []) {
      // An item's own variables are in scope for it and its descendants (SDC variable).
      const here = new Set([...scope, ...(i.extension ?? []).filter((e) => e.url === EXT_VARIABLE).map((e) => e.valueExpression?.name ?? '')]);
      check(i.extension, i.linkId, here);
      visit(i.item, here);
    }
  };
  visit(q.item, root);
  return out;
}

const post = (path: string, body: unknown) => request(app).post(path).set('Content-Type', FHIR).send(JSON.stringify(body));

/** An answer of the item's type, as a clinician would give one (codes from the bound ValueSet's expansion). */
function someAnswer(item: QuestionnaireItem): Record<string, unknown> | undefined {
  switch (item.type) {
    case 'boolean':
      return { valueBoolean: true };
    case 'decimal':
      return { valueDecimal: 1 };
    case 'integer':
      return { valueInteger: 1 };
    case 'date':
      return { valueDate: '1990-05-01' };
    case 'string':
    case 'text':
      return { valueString: 'documented' };
    case 'choice': {
      const c = content.valueSets.get(item.answerValueSet!.split('|')[0])?.expansion?.contains?.[0];
      return c ? { valueCoding: { system: c.system, code: c.code } } : undefined;
    }
    case 'attachment':
    case 'display':
    case 'group':
    case 'question':
    case 'url':
    case 'dateTime':
    case 'time':
    case 'open-choice':
    case 'reference':
    case 'quantity':
    case undefined:
      return undefined;
  }
}

/** Every contained Questionnaire along an adaptive session that answers each question as it is asked. */
async function adaptiveForms(canonical: string): Promise<Questionnaire[]> {
  let qr: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
    status: 'in-progress',
    questionnaire: '#adaptive',
    subject: { reference: 'Patient/p1' },
    contained: [{ resourceType: 'Questionnaire', id: 'adaptive', status: 'active', derivedFrom: [canonical] }],
  };
  const forms: Questionnaire[] = [];
  for (let step = 0; step < 20 && qr.status !== 'completed'; step++) {
    qr = (await post('/fhir/Questionnaire/$next-question', qr).expect(200)).body as QuestionnaireResponse;
    const q = qr.contained!.find((c) => c.resourceType === 'Questionnaire') as Questionnaire;
    forms.push(q);
    const answered = new Set((qr.item ?? []).map((i) => i.linkId));
    for (const item of q.item ?? []) {
      if (answered.has(item.linkId)) continue;
      const a = someAnswer(item);
      qr.item = [...(qr.item ?? []), { linkId: item.linkId, ...(a ? { answer: [a] } : {}) }];
    }
  }
  return forms;
}

describe.each(content.policies.map((p) => [p.file.id] as const))('%s', (id) => {
  const canonical = `${content.canonicalBase}/Questionnaire/${id}`;

  it('declares every variable its expressions use: as read, in both package shapes and along a $next-question session', async () => {
    const read = (await request(app).get(`/fhir/Questionnaire/${id}`).expect(200)).body as Questionnaire;
    const served: [string, Questionnaire][] = [['read', read]];
    const coverage = { resourceType: 'Coverage', id: 'c1', status: 'active', beneficiary: { reference: 'Patient/p1' }, payor: [{ display: 'payer' }] };
    const pkg = (await post('/fhir/Questionnaire/$questionnaire-package', { resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'questionnaire', valueCanonical: canonical }] }).expect(200)).body as Parameters;
    for (const p of pkg.parameter ?? []) if (p.resource?.resourceType === 'Bundle') served.push([p.name, (p.resource as Bundle).entry![0].resource as Questionnaire]);
    const adaptive = await adaptiveForms(canonical);
    expect(adaptive.length).toBeGreaterThan(1);
    adaptive.forEach((q, i) => served.push([`$next-question #${i + 1}`, q]));
    expect(served.map(([where]) => where)).toEqual(expect.arrayContaining(['read', 'PackageBundle', 'packagebundle']));
    for (const [where, q] of served) expect(undeclared(q), where).toEqual([]);
  });
});

describe('an adaptive question is pre-filled by a renderer from what its form declares', () => {
  it('fhirpath.js reads the birth date of the launch patient for the first $next-question items', async () => {
    const resources = storyResources('centene-missing-mrd');
    const patient = resources.find((r): r is Patient => r.resourceType === 'Patient')!;
    const [first] = await adaptiveForms(`${content.canonicalBase}/Questionnaire/centene-blinatumomab`);
    const item = first.item!.find((i) => i.linkId === 'birth-date')!;
    const expression = item.extension!.find((e) => e.url === EXT_INITIAL_EXPRESSION)!.valueExpression!.expression!;
    // The renderer's environment: the declared launch contexts, and each declared x-fhir-query variable's search.
    const env: Record<string, unknown> = {};
    const byType = (type: string): Bundle => ({ resourceType: 'Bundle', type: 'searchset', entry: resources.filter((r) => r.resourceType === type).map((r: Resource) => ({ resource: r })) });
    for (const name of declared(first)) {
      const variable = first.extension!.find((e) => e.url === EXT_VARIABLE && e.valueExpression?.name === name);
      env[name] = name === 'patient' ? patient : variable ? byType(variable.valueExpression!.expression!.split('?')[0]) : undefined;
    }
    const qr: QuestionnaireResponse = { resourceType: 'QuestionnaireResponse', status: 'in-progress' };
    const value = fhirpath.evaluate(qr, expression, { ...env, resource: qr }, r4) as unknown[];
    expect(String(value[0])).toBe(patient.birthDate);
  });
});
