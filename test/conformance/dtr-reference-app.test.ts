import type { Bundle, Coverage, Library, MedicationRequest, Parameters, Patient, Questionnaire, QuestionnaireItem, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import cql from 'cql-execution';
import cqlfhir from 'cql-exec-fhir';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { BASE, buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { repoRoot, storyOrder, storyResources } from '../helpers/stories.js';

/**
 * An emulation of the Da Vinci DTR reference app (HL7-DaVinci/dtr) against PriorPath, step by step as the app does
 * it, to show the acceptance point "the DTR reference app renders a pre-filled form from our package":
 * 1. CRD hands over the launch as a smart link whose appContext is `questionnaire=…&order=…&coverage=…`;
 * 2. the app reads the order and Coverage from the EHR and POSTs `{canonical minus its last segment}/$questionnaire-package`
 *    with just `order` and `coverage`, and reads `parameter[0]`'s Bundle;
 * 3. the main Libraries are those whose url equals a `cqf-library` canonical, the others are dependencies; it fetches
 *    the patient data each Library's `dataRequirement` names and runs the ELM (cql-execution + cql-exec-fhir), passing
 *    a MedicationRequest order as the parameter `medication_request`;
 * 4. each `text/cql` initialExpression `"Library".define` fills its item.
 * The deployment sets CANONICAL_BASE to its own /fhir, because the app derives the payer endpoint from the canonical.
 */
const STORY = 'ohsu-infant-kmt2a';
const content = loadContent({ root: repoRoot, canonicalBase: `${BASE}/fhir` });

function parseAppContext(appContext: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of decodeURIComponent(appContext).split('&')) {
    const i = pair.indexOf('=');
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

function walk(items: QuestionnaireItem[] | undefined): QuestionnaireItem[] {
  return (items ?? []).flatMap((i) => [i, ...walk(i.item)]);
}
function answersOf(items: QuestionnaireResponseItem[] | undefined, out = new Map<string, unknown>()): Map<string, unknown> {
  for (const i of items ?? []) {
    const a = i.answer?.[0];
    if (a) out.set(i.linkId, a.valueBoolean ?? a.valueDecimal ?? a.valueInteger ?? a.valueDate ?? a.valueString ?? a.valueCoding?.code);
    answersOf(i.item, out);
  }
  return out;
}

describe('DTR reference app emulation: launch from CRD, fetch the package, run its CQL, pre-fill the form', () => {
  it('renders the form with the answers the chart gives, the same the payer pre-filled', async () => {
    const { app } = buildApp({ content });
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const ehr = new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, r]));

    // 1. CRD: the smart link in the reference implementations' form.
    const signed = await request(app)
      .post('/cds-services/priorpath-order-sign')
      .send(orderSignRequest(resources, order, { extension: { 'davinci-crd.configuration': { 'dtr-launch-query': true } } }))
      .expect(200);
    const link = signed.body.cards.flatMap((c: { links?: { type: string; appContext?: string }[] }) => c.links ?? []).find((l: { type: string }) => l.type === 'smart');
    const launch = parseAppContext(link.appContext);
    // The EHR keeps the order as CRD updated it (with coverage-information).
    ehr.set(launch.order, signed.body.systemActions[0].resource as MedicationRequest);

    // 2. The package, from the endpoint the canonical implies, with order and coverage only.
    const canonical = launch.questionnaire.split('|')[0];
    const endpoint = `${canonical.slice(0, canonical.lastIndexOf('/'))}/$questionnaire-package`;
    expect(endpoint.startsWith(BASE)).toBe(true);
    const orderResource = ehr.get(launch.order) as MedicationRequest;
    const coverage = ehr.get(launch.coverage) as Coverage;
    expect(coverage, 'the coverage the appContext names is in the EHR').toBeDefined();
    const res = await request(app)
      .post(endpoint.slice(BASE.length))
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'order', resource: orderResource }, { name: 'coverage', resource: coverage }] }))
      .expect(200);
    const bundle = (res.body as Parameters).parameter![0].resource as Bundle;
    const entries = bundle.entry!.map((e) => e.resource!) as Resource[];
    const questionnaire = entries.find((r) => r.resourceType === 'Questionnaire') as Questionnaire;
    expect(questionnaire.url).toBe(canonical);

    // 3. Libraries: main ones by exact cqf-library url, dependencies by ELM include; data by dataRequirement.
    const mainUrls = (questionnaire.extension ?? []).filter((e) => e.url === 'http://hl7.org/fhir/StructureDefinition/cqf-library').map((e) => e.valueCanonical);
    const libraries = entries.filter((r): r is Library => r.resourceType === 'Library');
    const elm = (l: Library) => JSON.parse(Buffer.from(l.content!.find((c) => c.contentType === 'application/elm+json')!.data!, 'base64').toString('utf8'));
    const main = libraries.filter((l) => mainUrls.includes(l.url));
    expect(main).toHaveLength(1);
    const dependencies = Object.fromEntries(libraries.filter((l) => !main.includes(l)).map((l) => [elm(l).library.identifier.id, elm(l)]));
    const types = new Set((main[0].dataRequirement ?? []).map((d) => d.type));
    const patient = resources.find((r) => r.resourceType === 'Patient') as Patient;
    const fetched = resources.filter((r) => types.has(r.resourceType) || r.resourceType === 'Patient');
    const valueSets = Object.fromEntries(
      entries
        .filter((r) => r.resourceType === 'ValueSet')
        .map((v) => [(v as { url: string }).url, { [(v as { version?: string }).version ?? '1']: ((v as { expansion?: { contains?: { code: string; system: string }[] } }).expansion?.contains ?? []).map((c) => ({ code: c.code, system: c.system })) }]),
    );
    // Value sets the ELM names but the package does not carry are fetched with $expand, as the app does.
    for (const def of elm(main[0]).library.valueSets?.def ?? []) {
      if (valueSets[def.id]) continue;
      const expanded = await request(app).get('/fhir/ValueSet/$expand').query({ url: def.id }).expect(200);
      valueSets[def.id] = { [expanded.body.version ?? '1']: (expanded.body.expansion?.contains ?? []).map((c: { code: string; system: string }) => ({ code: c.code, system: c.system })) };
    }
    const executor = new cql.Executor(new cql.Library(elm(main[0]), new cql.Repository(dependencies)), new cql.CodeService(valueSets), {
      medication_request: cqlfhir.FHIRWrapper.FHIRv401().wrap(orderResource),
    });
    const source = cqlfhir.PatientSource.FHIRv401();
    source.loadBundles([{ resourceType: 'Bundle', type: 'collection', entry: fetched.map((resource) => ({ resource })) }]);
    const results = (await executor.exec(source)).patientResults[patient.id!];

    // 4. Pre-fill every item whose initialExpression is "Library".define.
    const filled = new Map<string, unknown>();
    for (const item of walk(questionnaire.item)) {
      const expr = item.extension?.find((e) => e.url.endsWith('sdc-questionnaire-initialExpression'))?.valueExpression;
      if (expr?.language !== 'text/cql') continue;
      const [, lib, define] = /^"([^"]+)"\.(.+)$/.exec(expr.expression!)!;
      expect(lib).toBe(main[0].name);
      const v = results[define];
      if (v !== null && v !== undefined) filled.set(item.linkId, typeof v === 'object' ? String(v) : v);
    }
    const phase = order.extension?.find((e) => e.url.endsWith('/treatment-phase'))?.valueCode;
    expect(filled.get('treatment-phase'), 'read from the order the app passed as medication_request').toBe(phase);
    expect(filled.get('cycles-requested')).toBe(1 + (order.dispenseRequest?.numberOfRepeatsAllowed ?? 0));
    expect([...filled.values()], 'the Interfant-regimen orders in the chart').toContain(true);
    expect(filled.size).toBeGreaterThanOrEqual(4);

    // The payer's pre-filled response in the same package says the same for every item both fill.
    const qr = entries.find((r) => r.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
    const payer = answersOf(qr.item);
    const both = [...filled.keys()].filter((k) => payer.has(k));
    expect(both.length).toBeGreaterThan(0);
    for (const k of both) expect(filled.get(k), k).toEqual(payer.get(k));
  });
});
