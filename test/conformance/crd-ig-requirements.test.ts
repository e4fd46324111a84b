import type { Extension, MedicationRequest, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { EDGE_MRD, edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { CARD_TYPE_CODES, CARD_TYPE_SYSTEM, expectValidHookResponse } from '../helpers/response-checks.js';

/**
 * CRD 2.2.1 server requirements (input/resources/Requirements-fromNarrative.json, keyed as [billopt-3], [dev-5], ...)
 * that the Inferno kit does not check, each shown on the wire. The kit's own checks are in crd-server.test.ts.
 */

const SIGN = '/cds-services/priorpath-order-sign';
const sub = (ext: Extension, url: string) => (ext.extension ?? []).filter((e) => e.url === url);
const codeOf = (ext: Extension, url: string) => sub(ext, url).map((e) => e.valueCode);

type Body = Record<string, unknown> & { context: Record<string, unknown> & { draftOrders: { entry: { resource: Resource }[] } }; prefetch: Record<string, unknown> };

/** The Centene member of test/fixtures/edge-patient.ts (B-ALL in first remission, 71 kg), with changes to the order. */
function centene(opts: { add?: Resource[]; order?: (o: MedicationRequest) => MedicationRequest; extra?: Record<string, unknown> } = {}): { body: Body; order: MedicationRequest } {
  const { resources, order: base } = edgePatient();
  const order = opts.order ? opts.order(structuredClone(base)) : base;
  return { body: orderSignRequest([...resources, ...(opts.add ?? [])], order, opts.extra) as Body, order };
}

const coverageInfoOf = (body: { systemActions?: { resource: { id?: string; extension?: Extension[] } }[] }, id: string) =>
  body.systemActions?.find((a) => a.resource.id === id)?.resource.extension?.find((e) => e.url === COVERAGE_INFO_URL);

describe('[billopt-3] the billing codes a client gives in ext-billing-options are considered', () => {
  it("governs a Blincyto order coded only with the EHR's local drug code, its HCPCS J9039 in ext-billing-options", async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const { body, order } = centene({
      add: [EDGE_MRD],
      order: (o) => ({
        ...o,
        medicationCodeableConcept: {
          text: 'BLINATUMOMAB 35 MCG IV SOLR',
          coding: [{ system: 'urn:oid:1.2.840.114350.1.13.861.1.7.2.698288', code: '219341', display: 'BLINATUMOMAB 35 MCG IV SOLR' }],
          extension: [
            {
              url: 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options',
              valueCodeableConcept: { coding: [{ system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', code: 'J9039', display: 'Injection, blinatumomab, 1 microgram' }] },
            },
          ],
        },
      }),
    });
    const res = await request(app).post(SIGN).send(body).expect(200);
    expectValidHookResponse(res.body, 'order-sign');
    const ext = coverageInfoOf(res.body, order.id!);
    expect(ext, 'coverage information for the order').toBeDefined();
    // MRD 0.4 % in first remission meets CP.PHAR.312 at signing, as the same order coded in RxNorm does.
    expect(codeOf(ext!, 'pa-needed')).toEqual(['satisfied']);
  });
});

describe('[resp-5] [dev-5] [dev-7] card topics are CRD response types, and each response-type option turns its cards off', () => {
  /** Blincyto at 60 mcg/day for a 71 kg patient: over the 28 mcg/day limit, so every card PriorPath sends is sent. */
  const overDose = (configuration: Record<string, unknown>) =>
    centene({
      order: (o) => {
        o.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = 60;
        return o;
      },
      extra: { extension: { 'davinci-crd.configuration': configuration } },
    }).body;

  it('every card, the DTR launch card included, has a topic from the card-type code system', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    for (const option of ['dtr-clin', 'dtr-launch-query']) {
      const res = await request(app).post(SIGN).send(overDose({ [option]: true })).expect(200);
      expectValidHookResponse(res.body, 'order-sign');
      const topics = (res.body.cards as { source: { topic: { system: string; code: string } }; links?: { type: string }[] }[]).map((c) => c.source.topic);
      expect(topics.map((t) => t.system)).toEqual(topics.map(() => CARD_TYPE_SYSTEM));
      expect(res.body.cards.some((c: { links?: { type: string }[] }) => c.links?.some((l) => l.type === 'smart')), `${option}: a DTR launch card`).toBe(true);
    }
  });

  it('false for a response-type option that discovery declares leaves no card of that topic, whatever else is asked', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const { services } = (await request(app).get('/cds-services').expect(200)).body as { services: { id: string; extension: Record<string, { code: string; type: string }[]> }[] };
    const options = services.find((s) => s.id === 'priorpath-order-sign')!.extension['davinci-crd.configuration-options'];
    const cardTypes = options.filter((o) => o.type === 'boolean' && CARD_TYPE_CODES.includes(o.code)).map((o) => o.code);
    expect(cardTypes).toEqual(expect.arrayContaining(['coverage-info', 'guideline', 'therapy-alternatives-req']));
    for (const code of cardTypes) {
      const res = await request(app).post(SIGN).send(overDose({ 'dtr-clin': true, [code]: false })).expect(200);
      expectValidHookResponse(res.body, 'order-sign');
      const topics = (res.body.cards as { source: { topic: { code: string } } }[]).map((c) => c.source.topic.code);
      expect(topics, `${code}: false`).not.toContain(code);
      expect(topics.length, `${code}: false still answers the other card types`).toBeGreaterThan(0);
    }
  });
});

describe('[found-35] [dev-14] a "what if" order-sign (unsolicited-determ false) gets no authorization number', () => {
  it('discovery declares unsolicited-determ (boolean, default true) on every service, as the what-if client must send it false', async () => {
    const { app } = buildApp();
    const { services } = (await request(app).get('/cds-services').expect(200)).body as { services: { extension: Record<string, { code: string }[]> }[] };
    for (const s of services) expect(s.extension['davinci-crd.configuration-options']).toContainEqual(expect.objectContaining({ code: 'unsolicited-determ', type: 'boolean', default: true }));
  });

  it('a chart that meets CP.PHAR.312: auth-needed with the pre-filled questionnaire and no number, nothing approved on record; signing for real then approves', async () => {
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const whatIf = centene({ add: [EDGE_MRD], extra: { extension: { 'davinci-crd.configuration': { 'unsolicited-determ': false } } } });
    const res = await request(app).post(SIGN).send(whatIf.body).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(codeOf(ext, 'covered')).toEqual(['covered']);
    expect(codeOf(ext, 'pa-needed')).toEqual(['auth-needed']);
    expect(sub(ext, 'satisfied-pa-id')).toEqual([]);
    expect(codeOf(ext, 'doc-needed')).toEqual(['clinical']);
    expect(sub(ext, 'questionnaire').map((q) => q.valueCanonical)).toEqual(['https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11']);
    expect(sub(ext, 'reason')[0].valueCodeableConcept!.text).toMatch(/^Meets CP\.PHAR\.312/);
    const records = await storage.findOrderRecords({ payer: 'centene', patientId: 'edge-pt', orderRefs: [`MedicationRequest/${whatIf.order.id}`] });
    expect(records.filter((r) => r.state === 'approved')).toEqual([]);

    const signed = await request(app).post(SIGN).send(centene({ add: [EDGE_MRD] }).body).expect(200);
    const [real] = expectValidHookResponse(signed.body, 'order-sign');
    expect(codeOf(real, 'pa-needed')).toEqual(['satisfied']);
    expect(sub(real, 'satisfied-pa-id')[0].valueString).toMatch(/^PA-CENTENE-/);
  });
});

describe('[dev-24] [dev-25] a card about some of the orders signed together names them in its detail', () => {
  type CardOut = { summary: string; detail?: string; extension?: Record<string, string[]> };
  /** Two Blincyto orders signed together: the first at `doses[0]` mcg/day (id edge-order), the second at `doses[1]` (edge-order-2). */
  async function signTwo(doses: [number, number]) {
    const { app } = buildApp({ today: '2026-11-23' });
    const { body, order } = centene({
      add: [EDGE_MRD],
      order: (o) => {
        o.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = doses[0];
        return o;
      },
    });
    const second = structuredClone(order);
    second.id = 'edge-order-2';
    second.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = doses[1];
    body.context.draftOrders.entry.push({ resource: second });
    const res = await request(app).post(SIGN).send(body).expect(200);
    expectValidHookResponse(res.body, 'order-sign');
    return res.body.cards as CardOut[];
  }
  const about = (cards: CardOut[], ref: string) => cards.filter((c) => c.extension?.['davinci-crd.associated-resource']?.join() === ref);

  it('28 and 60 mcg/day: the cards about the 60 mcg/day order say so by drug and dose; the policy card for both names neither', async () => {
    const cards = await signTwo([28, 60]);
    const over = about(cards, 'MedicationRequest/edge-order-2');
    expect(over.length, 'instructions and proposal cards for the order over the limit').toBeGreaterThanOrEqual(2);
    for (const c of over) expect(c.detail, c.summary).toMatch(/Applies to the order: Blincyto 35 mcg, 60 mcg\/d\.$/);
    const shared = cards.filter((c) => c.extension?.['davinci-crd.associated-resource']?.length === 2);
    expect(shared).toHaveLength(1);
    expect(shared[0].detail).not.toMatch(/Applies to/);
  });

  it('two orders that read the same: each card names its order by reference as well', async () => {
    const cards = await signTwo([60, 60]);
    for (const ref of ['MedicationRequest/edge-order', 'MedicationRequest/edge-order-2']) {
      const mine = about(cards, ref);
      expect(mine.length, ref).toBeGreaterThanOrEqual(2);
      for (const c of mine) expect(c.detail, c.summary).toContain(`Applies to the order: Blincyto 35 mcg, 60 mcg/d (${ref}).`);
    }
  });

  it('one order signed alone: no line to add', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const res = await request(app).post(SIGN).send(centene({ order: (o) => ({ ...o, dosageInstruction: [{ ...o.dosageInstruction![0], doseAndRate: [{ doseQuantity: { value: 60, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } }] }] }) }).body).expect(200);
    for (const c of res.body.cards as CardOut[]) expect(c.detail ?? '').not.toMatch(/Applies to/);
  });
});

describe('[hook-13] a request that breaks a CDS Hooks rule is a 400 with an OperationOutcome', () => {
  it('fhirAuthorization without the fhirServer it is for (CDS Hooks cds-r-1)', async () => {
    const { app } = buildApp();
    const { body } = centene();
    delete body.fhirServer;
    const res = await request(app).post(SIGN).send(body);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression).toEqual(['fhirServer']);
  });

  it('a fhirServer the service must never send a token to (cloud metadata, link-local, not http) is a 400 naming it, and nothing is read from it', async () => {
    const asked: string[] = [];
    const fetchImpl = (url: string) => {
      asked.push(url);
      return Promise.reject(new Error('no EHR in this test'));
    };
    const { app, storage } = buildApp({ fetchImpl });
    for (const fhirServer of ['http://169.254.169.254/latest', 'http://[fe80::1]/fhir', 'http://0.0.0.0:8080/fhir', 'ftp://ehr.example.org/fhir', 'http://[::ffff:169.254.169.254]/fhir']) {
      const { body } = centene();
      body.fhirServer = fhirServer;
      const res = await request(app).post(SIGN).send(body);
      expect(res.status, fhirServer).toBe(400);
      expect(res.body.resourceType, fhirServer).toBe('OperationOutcome');
      expect(res.body.issue[0].expression, fhirServer).toEqual(['fhirServer']);
    }
    expect(asked).toEqual([]);
    expect(storage.assertions.size).toBe(0);
    // A private-network EHR (hospitals run them there) is a fhirServer like any other.
    const { body } = centene();
    body.fhirServer = 'http://10.20.30.40/fhir';
    await request(app).post(SIGN).send(body).expect(200);
  });
});

describe('[dev-1] [dev-2] [dev-3] the CRD version a request asks for is one the service declares, or a 400', () => {
  const asking = (version: unknown, add: Resource[] = []) => centene({ add, extra: { extension: { 'davinci-crd.requestedVersion': version } } }).body;

  it('discovery declares 2.0, 2.1 and 2.2 on every service; an undeclared version is refused naming them, never answered in the 2.0 shape', async () => {
    const { app, storage } = buildApp();
    const discovery = await request(app).get('/cds-services').expect(200);
    for (const s of discovery.body.services as { extension: Record<string, unknown> }[]) expect(s.extension['davinci-crd.version']).toEqual(['2.0', '2.1', '2.2']);
    for (const requested of ['2.3', '3.0', '1.0.0', '2.3.0', 'STU2', '']) {
      const res = await request(app).post(SIGN).send(asking(requested, [EDGE_MRD]));
      expect(res.status, requested).toBe(400);
      expect(res.body.resourceType, requested).toBe('OperationOutcome');
      expect(res.body.issue[0].code, requested).toBe('not-supported');
      expect(res.body.issue[0].expression, requested).toEqual(['extension.davinci-crd.requestedVersion']);
      expect(res.body.issue[0].diagnostics, requested).toContain('2.0 or 2.1 or 2.2');
    }
    // A version that is not a string is malformed, as any other field of the wrong type.
    const number = await request(app).post(SIGN).send(asking(2.2));
    expect(number.status).toBe(400);
    expect(number.body.issue[0].code).toBe('invalid');
    // Nothing was decided for a refused request.
    expect(storage.assertions.size).toBe(0);
  });

  it('a declared version, two-part or with its patch part (2.0, 2.0.1, 2.2.1), is answered in its own shape; 2.1 (2.1.0) in the default shared shape (F4)', async () => {
    const { app } = buildApp();
    for (const [requested, version] of [['2.0', '2.0'], ['2.0.1', '2.0'], ['2.1', '2.0'], ['2.1.0', '2.0'], ['2.2', '2.2'], ['2.2.1', '2.2']] as const) {
      const res = await request(app).post(SIGN).send(asking(requested, [EDGE_MRD])).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign', version);
      // expiry-date is 2.2 only (design.md §4 "Versions").
      expect(sub(ext, 'expiry-date').length, requested).toBe(version === '2.2' ? 1 : 0);
    }
  });
});
