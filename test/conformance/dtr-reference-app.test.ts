import type {
  Bundle,
  Coverage,
  Extension,
  Library,
  MedicationRequest,
  Parameters,
  Patient,
  Questionnaire,
  QuestionnaireItem,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  Resource,
  ValueSet,
} from '@medplum/fhirtypes';
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
 * 1. launch (src/index.js): the legacy `appContext` from CRD's smart link, `+` read as a space, URI-decoded as a
 *    whole, split on `&` and `=`, the first value of a key kept;
 * 2. package (src/util/fetchArtifacts.js): the order and the Coverage read from the EHR; a Parameters claiming the
 *    unversioned `dtr-qpackage-input-parameters` profile with `coverage`, `order`, `questionnaire` (the canonical as
 *    launched, with its version) and `context` (appContext.context), POSTed as application/fhir+json to
 *    `{canonical's origin and path minus its last segment}/$questionnaire-package`; from a Parameters answer the first
 *    `PackageBundle` part; the first Questionnaire of that Bundle; every Library's `application/elm+json` content
 *    parsed, main Libraries those whose url equals a `cqf-library` canonical, the rest dependencies; the ValueSets of
 *    the package kept (nothing is fetched with $expand);
 * 3. CQL (src/App.jsx, src/elmExecutor/): a MedicationRequest order passed as the parameter `medication_request`
 *    (FHIRWrapper FHIRv400); dependencies by the main ELM's `includes` (id and version); the value set database from
 *    the package's ValueSets whose id or url equals the ELM's value set id, unversioned; the patient read, plus a
 *    patient search for each type in the main Library's `dataRequirement`; run with PatientSource FHIRv400, results
 *    by ELM library id;
 * 4. pre-fill (src/components/QuestionnaireForm/QuestionnaireForm.jsx): each initialExpression split on `.`, the
 *    first part without its quotes the library, the second the statement.
 * The deployment sets CANONICAL_BASE to its own /fhir, because the app derives the payer endpoint from the canonical,
 * and runs the sandbox's open payer API (PAYER_API_AUTH=open): the app sends the package request through the EHR's
 * SMART client, with the EHR's token, not a payer Backend Services token.
 */
const STORY = 'ohsu-infant-kmt2a';
const content = loadContent({ root: repoRoot, canonicalBase: `${BASE}/fhir` });
const DTR_INPUT = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters';
const INITIAL = 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression';

/** src/index.js legacy appContext parsing. */
/** The DTR reference app's QuestionnaireForm.getDisplayCoding: how a CQL result becomes a choice item's valueCoding. */
function displayCoding(v: unknown, item: QuestionnaireItem, q: Questionnaire): { code?: string; system?: string; display?: string } {
  if (typeof v === 'string') {
    const ref = item.answerValueSet;
    if (ref && q.contained) {
      const vs = q.contained.find((r) => r.id === ref.slice(1)) as ValueSet | undefined;
      const found = vs?.expansion?.contains?.find((o) => o.code === v);
      if (found) return found;
    } else if (item.answerOption) {
      const found = item.answerOption.find((o) => o.valueCoding?.code === v || o.valueCoding?.display === v);
      if (found?.valueCoding) return found.valueCoding;
    }
    return { display: v };
  }
  const c = v as { code?: string; system?: string; display?: string };
  return { code: c.code, system: c.system, display: c.display };
}

function parseAppContext(appContext: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of decodeURIComponent(appContext.replace(/\+/g, '%20')).split('&')) {
    const temp = e.split('=');
    if (!out[temp[0]]) out[temp[0]] = temp[1];
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
interface Elm {
  library: { identifier: { id: string; version?: string }; includes?: { def: { path: string; version?: string }[] }; valueSets?: { def: { id: string }[] } };
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
    const assertionId = (signed.body.systemActions[0].resource as MedicationRequest).extension!
      .find((e) => e.url.endsWith('/ext-coverage-information'))!
      .extension!.find((e: Extension) => e.url === 'coverage-assertion-id')!.valueString;
    expect(launch.context, 'the coverage-assertion-id reaches the app as appContext.context').toBe(assertionId);
    // The EHR keeps the order as CRD updated it (with coverage-information).
    ehr.set(launch.order, signed.body.systemActions[0].resource as MedicationRequest);

    // 2. The package, from the endpoint the canonical implies.
    const orderResource = ehr.get(launch.order) as MedicationRequest;
    const coverage = ehr.get(launch.coverage) as Coverage;
    expect(orderResource, 'the order the appContext names is in the EHR').toBeDefined();
    expect(coverage, 'the coverage the appContext names is in the EHR').toBeDefined();
    const parameters: Parameters = { resourceType: 'Parameters', meta: { profile: [DTR_INPUT] }, parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: orderResource }] };
    const canonicalUrl = new URL(launch.questionnaire);
    parameters.parameter!.push({ name: 'questionnaire', valueCanonical: launch.questionnaire });
    const operationUrl = `${canonicalUrl.origin}${canonicalUrl.pathname.split('/').slice(0, -1).join('/')}/$questionnaire-package`;
    if (launch.context) parameters.parameter!.push({ name: 'context', valueString: launch.context });
    expect(operationUrl.startsWith(`${BASE}/`)).toBe(true);
    const res = await request(app).post(operationUrl.slice(BASE.length)).set('Content-Type', 'application/fhir+json').send(JSON.stringify(parameters)).expect(200);
    const result = res.body as Bundle | Parameters;
    expect(result.resourceType, 'an OperationOutcome is an error to the app').not.toBe('OperationOutcome');
    const entries =
      result.resourceType === 'Bundle' ? (result.entry ?? []) : (((result.parameter ?? []).filter((p) => p.name === 'PackageBundle')[0]?.resource as Bundle | undefined)?.entry ?? []);
    expect(entries.length, 'package bundle entries').toBeGreaterThan(0);
    const questionnaire = entries.find((e) => e.resource?.resourceType === 'Questionnaire')!.resource as Questionnaire;
    expect(questionnaire.url).toBe(launch.questionnaire.split('|')[0]);
    const mainRefs = (questionnaire.extension ?? []).filter((e) => e.url === 'http://hl7.org/fhir/StructureDefinition/cqf-library').map((e) => e.valueCanonical);
    const mainElms: Elm[] = [];
    const dependentElms: Elm[] = [];
    const mainLibraries = new Map<string, Library>();
    const valueSets: ValueSet[] = [];
    for (const { resource } of entries) {
      if (resource?.resourceType === 'Library') {
        // The app reads content.filter(elm+json)[0].data of every Library: one without ELM would stop it.
        const data = resource.content?.filter((c) => c.contentType === 'application/elm+json')[0]?.data;
        expect(data, `Library ${resource.name} has application/elm+json content`).toBeTruthy();
        const elm = JSON.parse(Buffer.from(data!, 'base64').toString('utf8')) as Elm;
        if (mainRefs.includes(resource.url)) {
          mainElms.push(elm);
          mainLibraries.set(elm.library.identifier.id, resource);
        } else dependentElms.push(elm);
      } else if (resource?.resourceType === 'ValueSet') valueSets.push(resource);
    }
    expect(mainElms).toHaveLength(1);

    // 3. Execute each main library.
    const patient = ehr.get(`Patient/${orderResource.subject!.reference!.split('/')[1]}`) as Patient;
    const cqlResults: Record<string, Record<string, unknown>> = {};
    for (const elm of mainElms) {
      const elmDependencies = (elm.library.includes?.def ?? []).map((inc) => {
        const found = dependentElms.find((d) => d.library.identifier.id === inc.path && d.library.identifier.version === inc.version);
        expect(found, `included library ${inc.path} ${inc.version} is in the package`).toBeDefined();
        return found!;
      });
      const valueSetDB: Record<string, Record<string, { code: string; system: string; version?: string }[]>> = {};
      for (const e of [...elmDependencies, elm]) {
        for (const def of e.library.valueSets?.def ?? []) {
          const vs = valueSets.find((v) => v.id === def.id || v.url === def.id);
          expect(vs?.expansion, `value set ${def.id} is in the package, expanded`).toBeDefined();
          valueSetDB[def.id] = { '': vs!.expansion!.contains!.map((c) => ({ code: c.code!, system: c.system!, version: c.version })) };
        }
      }
      const library = mainLibraries.get(elm.library.identifier.id)!;
      const needed = [...new Set((library.dataRequirement ?? []).map((d) => d.type))].filter((t) => t !== 'Organization' && !/ValueSet\b/.test(t));
      // Patient read, then one patient search per other type (no Practitioner/Coverage requirement in our Libraries).
      expect(needed.filter((t) => t === 'Practitioner' || t === 'Coverage')).toEqual([]);
      const fetched: Resource[] = [patient];
      for (const type of needed.filter((t) => t !== 'Patient')) {
        fetched.push(...[...ehr.values()].filter((r) => r.resourceType === type && (r as { subject?: { reference?: string } }).subject?.reference === `Patient/${patient.id}`));
      }
      const lib = new cql.Library(elm, new cql.Repository(elmDependencies));
      const executor = new cql.Executor(lib, new cql.CodeService(valueSetDB), { medication_request: cqlfhir.FHIRWrapper.FHIRv400().wrap(orderResource) });
      const source = cqlfhir.PatientSource.FHIRv400();
      source.loadBundles([{ resourceType: 'Bundle', type: 'collection', entry: fetched.map((resource) => ({ resource })) }]);
      const results = await executor.exec(source);
      const keys = Object.keys(results.patientResults);
      expect(keys.length).toBeGreaterThan(0);
      cqlResults[elm.library.identifier.id] = results.patientResults[keys[0]];
    }

    // 4. Pre-fill every item whose initialExpression names "Library".statement.
    const filled = new Map<string, unknown>();
    for (const item of walk(questionnaire.item)) {
      const value = item.extension?.find((e) => e.url === INITIAL)?.valueExpression;
      if (!value?.expression || (value.language as string) === 'application/elm+json') continue;
      const components = value.expression.split('.');
      expect(components, `${item.linkId}: "Library".statement`).toHaveLength(2);
      const libraryName = components[0].substring(1, components[0].length - 1);
      expect(cqlResults[libraryName], `${item.linkId}: library ${libraryName} was run`).toBeDefined();
      const v = cqlResults[libraryName][components[1]];
      if (v === null || v === undefined) continue;
      if (item.type === 'choice' || item.type === 'open-choice') {
        // The app's getDisplayCoding: a Code keeps its code and system; a string is looked up in a contained ValueSet
        // or the answerOptions, else becomes a Coding with only a display (no answer the form can select).
        const coding = displayCoding(v, item, questionnaire);
        expect(coding.code, `${item.linkId}: pre-filled with a Coding that has a code`).toBeTruthy();
        const bound = valueSets.find((vs) => vs.url === item.answerValueSet?.split('|')[0]);
        expect(
          bound?.expansion?.contains?.some((c) => c.system === coding.system && c.code === coding.code),
          `${item.linkId}: ${coding.system}|${coding.code} is an answer of ${item.answerValueSet}`,
        ).toBe(true);
        filled.set(item.linkId, coding.code);
      } else filled.set(item.linkId, typeof v === 'object' ? String(v) : v);
    }
    const phase = order.extension?.find((e) => e.url.endsWith('/treatment-phase'))?.valueCode;
    expect(filled.get('treatment-phase'), 'read from the order the app passed as medication_request').toBe(phase);
    expect(filled.get('cycles-requested')).toBe(1 + (order.dispenseRequest?.numberOfRepeatsAllowed ?? 0));
    expect([...filled.values()], 'the Interfant-regimen orders in the chart').toContain(true);
    expect(filled.size).toBeGreaterThanOrEqual(4);
    // The payer's pre-filled response in the same package says the same for every item both fill, and was pre-filled
    // from CRD's record because the context reached the payer.
    const qr = entries.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
    const payer = answersOf(qr.item);
    const both = [...filled.keys()].filter((k) => payer.has(k));
    expect(both.length).toBeGreaterThan(0);
    for (const k of both) expect(filled.get(k), k).toEqual(payer.get(k));
  });
});
