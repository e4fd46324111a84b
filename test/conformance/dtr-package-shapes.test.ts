import type { Bundle, Extension, MedicationRequest, Parameters, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * DTR package shapes per version, as each version's profiles say (DTR 2.0.1 and 2.2: dtr-qpackage-output-parameters,
 * DTR-QPackageBundle, dtr-questionnaireresponse, information-origin). The Inferno DTR payer test
 * `dtr_v201_payer_static_form_response_test` checks the 2.0.1 shapes with the validator; these are the rules it
 * applies that matter to a client, checked without it.
 */
const DTR = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition';
const INPUT = `${DTR}/dtr-qpackage-input-parameters`;
const STORY = 'centene-missing-mrd';

const resources = storyResources(STORY);
const order = storyOrder(STORY, resources);
const coverage = resources.find((r) => r.resourceType === 'Coverage')!;

function answers(items: QuestionnaireResponseItem[] | undefined): NonNullable<QuestionnaireResponseItem['answer']> {
  return (items ?? []).flatMap((i) => [...(i.answer ?? []), ...answers(i.item), ...(i.answer ?? []).flatMap((a) => answers(a.item))]);
}
const ext = (r: { extension?: Extension[] }, name: string) => (r.extension ?? []).filter((e) => e.url === `${DTR}/${name}`);
const parts = (p: Parameters, name: string) => (p.parameter ?? []).filter((x) => x.name === name).map((x) => x.resource as Bundle);
const qrsOf = (b: Bundle) => b.entry!.map((e) => e.resource!).filter((r): r is QuestionnaireResponse => r.resourceType === 'QuestionnaireResponse');

/** Signs the story's order (CRD), then asks for its package the way DTR does after CRD: order + coverage + context. */
async function afterCrd(version?: '2.0.1' | '2.2.0', opts: { canonicalOnly?: boolean } = {}) {
  const { app } = buildApp();
  const signed = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
  const updated = signed.body.systemActions[0].resource as MedicationRequest;
  const info = updated.extension!.find((e) => e.url.endsWith('/ext-coverage-information'))!;
  const assertionId = info.extension!.find((e) => e.url === 'coverage-assertion-id')!.valueString!;
  const questionnaire = info.extension!.find((e) => e.url === 'questionnaire')!.valueCanonical!;
  const parameter = opts.canonicalOnly
    ? [{ name: 'coverage', resource: coverage }, { name: 'questionnaire', valueCanonical: questionnaire }]
    : [{ name: 'coverage', resource: coverage }, { name: 'order', resource: updated }, { name: 'context', valueString: assertionId }];
  const body: Parameters = { resourceType: 'Parameters', ...(version ? { meta: { profile: [`${INPUT}|${version}`] } } : {}), parameter: parameter as Parameters['parameter'] };
  const res = await request(app).post('/fhir/Questionnaire/$questionnaire-package').send(body).expect(200);
  return res.body as Parameters;
}

describe('DTR 2.2 package (input profile |2.2.0)', () => {
  it('is a Parameters of packagebundle parts, each Questionnaire first and exactly one QuestionnaireResponse (dtrb-1, oper-18)', async () => {
    const out = await afterCrd('2.2.0');
    expect(out.resourceType).toBe('Parameters');
    expect(out.parameter!.map((p) => p.name)).toEqual(['packagebundle']);
    for (const b of parts(out, 'packagebundle')) {
      expect(b.type).toBe('collection');
      expect(b.entry![0].resource!.resourceType).toBe('Questionnaire');
      expect(qrsOf(b)).toHaveLength(1);
    }
  });

  it('puts the Coverage in qr-coverage and only orders in qr-context; intendedUse from coverage-information-codes', async () => {
    const [qr] = qrsOf(parts(await afterCrd('2.2.0'), 'packagebundle')[0]);
    expect(ext(qr, 'qr-coverage').map((e) => e.valueReference!.reference)).toEqual([`Coverage/${coverage.id}`]);
    expect(ext(qr, 'qr-context').map((e) => e.valueReference!.reference)).toEqual([`MedicationRequest/${order.id}`]);
    const use = ext(qr, 'intendedUse')[0].valueCodeableConcept!.coding![0];
    expect(use).toMatchObject({ system: 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes', code: 'withpa' });
  });

  it('marks every pre-filled answer auto-server with no author (information-origin codes of 2.2; dtrx-1)', async () => {
    const [qr] = qrsOf(parts(await afterCrd('2.2.0'), 'packagebundle')[0]);
    const all = answers(qr.item);
    expect(all.length, 'the chart answers some questions of this story').toBeGreaterThan(0);
    for (const a of all) {
      const origin = ext(a, 'information-origin');
      expect(origin).toHaveLength(1);
      expect(origin[0].extension!.find((e) => e.url === 'source')!.valueCode).toBe('auto-server');
      expect(origin[0].extension!.some((e) => e.url === 'author')).toBe(false);
    }
  });

  it('holds a QuestionnaireResponse without answers when only a canonical is given (no context to pre-fill from)', async () => {
    const [b] = parts(await afterCrd('2.2.0', { canonicalOnly: true }), 'packagebundle');
    const qrs = qrsOf(b);
    expect(qrs).toHaveLength(1);
    expect(answers(qrs[0].item)).toHaveLength(0);
    expect(ext(qrs[0], 'qr-coverage')).toHaveLength(1);
  });
});

describe('DTR 2.0.1 package (input profile |2.0.1)', () => {
  it('is PackageBundle parts whose response has Coverage and order in qr-context (2..*), origin auto, the CRD temp intendedUse', async () => {
    const out = await afterCrd('2.0.1');
    expect(out.parameter!.map((p) => p.name)).toEqual(['PackageBundle']);
    const [qr] = qrsOf(parts(out, 'PackageBundle')[0]);
    expect(ext(qr, 'qr-coverage')).toHaveLength(0);
    expect(ext(qr, 'qr-context').map((e) => e.valueReference!.reference).sort()).toEqual([`Coverage/${coverage.id}`, `MedicationRequest/${order.id}`].sort());
    expect(ext(qr, 'intendedUse')[0].valueCodeableConcept!.coding![0]).toMatchObject({ system: 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp', code: 'withpa' });
    expect(qr.subject?.reference).toBe(`Patient/${resources.find((r) => r.resourceType === 'Patient')!.id}`);
    const all = answers(qr.item);
    expect(all.length).toBeGreaterThan(0);
    for (const a of all) expect(ext(a, 'information-origin')[0].extension!.find((e) => e.url === 'source')!.valueCode).toBe('auto');
  });

  it('lists the questions unanswered when there is no context (item is 1..* in 2.0.1)', async () => {
    const [qr] = qrsOf(parts(await afterCrd('2.0.1', { canonicalOnly: true }), 'PackageBundle')[0]);
    expect(qr.item!.length).toBeGreaterThan(0);
    expect(answers(qr.item)).toHaveLength(0);
  });
});

describe('no version signal', () => {
  it('answers both shapes: 2.0.1 PackageBundle parts first (the DTR reference app reads parameter[0]), then 2.2 packagebundle parts', async () => {
    const out = await afterCrd();
    expect(out.parameter!.map((p) => p.name)).toEqual(['PackageBundle', 'packagebundle']);
    const [qr201] = qrsOf(parts(out, 'PackageBundle')[0]);
    const [qr22] = qrsOf(parts(out, 'packagebundle')[0]);
    const sources = (qr: QuestionnaireResponse) => new Set(answers(qr.item).map((a) => ext(a, 'information-origin')[0].extension!.find((e) => e.url === 'source')!.valueCode));
    expect([...sources(qr201)]).toEqual(['auto']);
    expect([...sources(qr22)]).toEqual(['auto-server']);
    expect(ext(qr22, 'qr-coverage')).toHaveLength(1);
    expect(ext(qr201, 'qr-coverage')).toHaveLength(0);
    expect(ext(qr22, 'qr-context').map((e) => e.valueReference!.reference)).toEqual([`MedicationRequest/${order.id}`]);
    const use = (qr: QuestionnaireResponse) => ext(qr, 'intendedUse')[0].valueCodeableConcept!.coding![0].system;
    expect(use(qr22)).toBe('http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes');
    expect(use(qr201)).toBe('http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp');
    const questionnaires = [parts(out, 'PackageBundle')[0], parts(out, 'packagebundle')[0]].map((b) => (b.entry![0].resource as Resource).id);
    expect(questionnaires[0]).toBe(questionnaires[1]);
  });
});

describe('several coverages (coverage is 1..* in DTR 2.0.1)', () => {
  it("names in each form's response the Coverage of that form's payer, not the first Coverage sent", async () => {
    const { app } = buildApp();
    // The patient's other plan, listed first: a payer PriorPath does not serve.
    const otherPlan = {
      resourceType: 'Coverage',
      id: 'other-plan',
      status: 'active',
      beneficiary: { reference: `Patient/${STORY}` },
      payor: [{ identifier: { system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }, display: 'Other Health Plan' }],
    };
    const body: Parameters = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'coverage', resource: otherPlan as Resource },
        { name: 'coverage', resource: coverage },
        { name: 'order', resource: order },
      ],
    };
    const out = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').send(body).expect(200)).body as Parameters;
    const qr201 = qrsOf(parts(out, 'PackageBundle')[0])[0];
    const qr22 = qrsOf(parts(out, 'packagebundle')[0])[0];
    expect(ext(qr201, 'qr-context').map((e) => e.valueReference!.reference)).toEqual([`Coverage/${coverage.id}`, `MedicationRequest/${order.id}`]);
    expect(ext(qr22, 'qr-coverage').map((e) => e.valueReference!.reference)).toEqual([`Coverage/${coverage.id}`]);
  });
});

describe('several orders (order is 0..*)', () => {
  it("names in the form's response the order the form is for, not an order sent before it", async () => {
    const { app } = buildApp();
    // The labelled dexamethasone premedication, drafted with the Blincyto order and sent first.
    const premedication: MedicationRequest = {
      resourceType: 'MedicationRequest',
      id: 'dexamethasone-premedication',
      status: 'draft',
      intent: 'order',
      subject: { reference: `Patient/${STORY}` },
      // By name: dexamethasone has no verified RxNorm code (cds-services/valuesets/corticosteroids.json).
      medicationCodeableConcept: { text: 'dexamethasone 20 mg IV, 1 hour before the infusion' },
    };
    const body: Parameters = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'coverage', resource: coverage },
        { name: 'order', resource: premedication },
        { name: 'order', resource: order },
      ],
    };
    const out = (await request(app).post('/fhir/Questionnaire/$questionnaire-package').send(body).expect(200)).body as Parameters;
    for (const name of ['PackageBundle', 'packagebundle']) {
      const [qr] = qrsOf(parts(out, name)[0]);
      expect(ext(qr, 'qr-context').map((e) => e.valueReference!.reference), name).toContain(`MedicationRequest/${order.id}`);
      expect(ext(qr, 'qr-context').map((e) => e.valueReference!.reference), name).not.toContain('MedicationRequest/dexamethasone-premedication');
    }
  });
});
