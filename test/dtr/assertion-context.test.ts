/**
 * One decision per order (design.md §7 "One date per order", §8 "One authorization per order"): what DTR has of an
 * order only through CRD's assertion (its `coverage-assertion-id`) is judged as CRD judged it. A `$questionnaire-package`
 * call naming only the `context`, a response that leaves out the order-date item or its order, and an adaptive form
 * on `$next-question` all take the order date, the facts and the order CRD recorded. The patient here turns 18 after
 * today and before the order starts (Centene CP.PHAR.312 I.A.4.c.iii "adult"): an adult for this order.
 */
import type { Bundle, Extension, MedicationRequest, Parameters, Questionnaire, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { ORDER_DATE_LINK_ID, ORDER_START_LINK_ID } from '../../src/policies/questionnaire-names.js';
import { createStorage } from '../../src/storage/create-storage.js';
import type { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { SqlSession } from '../../src/storage/sql-driver.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { CANONICAL_BASE, daysAfter, dtrContent, EVIDENCE, shownInForm, TODAY, turningEighteen, withAnswers } from './helpers.js';

const FHIR = 'application/fhir+json';
const STORY = 'centene-missing-mrd';
const POLICY = 'centene-blinatumomab';
const DTR_22 = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.2.0';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const content = dtrContent();

const answerOf = (items: QuestionnaireResponseItem[] | undefined, linkId: string): QuestionnaireResponseItem['answer'] =>
  (items ?? []).flatMap((i) => [...(i.linkId === linkId ? [i] : []), ...(i.item ?? [])]).find((i) => i.linkId === linkId)?.answer;

/** The response without the items at these linkIds (at any depth). */
function without(qr: QuestionnaireResponse, ...linkIds: string[]): QuestionnaireResponse {
  const prune = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] | undefined =>
    items?.filter((i) => !linkIds.includes(i.linkId)).map((i) => (i.item ? { ...i, item: prune(i.item) } : i));
  return { ...qr, item: prune(qr.item) };
}

const code = (c: string): QuestionnaireResponseItem['answer'] => [{ valueCoding: { system: EVIDENCE, code: c } }];
const assertionIdOf = (r: { extension?: Extension[] }) =>
  r.extension!.find((e) => e.url === COVERAGE_INFO)!.extension!.find((e) => e.url === 'coverage-assertion-id')!.valueString!;
const coverageInfoOf = (r: { extension?: Extension[] }) => r.extension!.find((e) => e.url === COVERAGE_INFO)!.extension!;
const sub = (ext: Extension[], url: string) => ext.find((e) => e.url === url);

type App = ReturnType<typeof buildApp>['app'];

/** Signs the order: the order as CRD answered it (with its coverage-information) and the assertion's id. */
async function sign(app: App, resources: Resource[], order: MedicationRequest): Promise<{ signed: MedicationRequest; assertionId: string }> {
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
  const signed = res.body.systemActions[0].resource as MedicationRequest;
  return { signed, assertionId: assertionIdOf(signed) };
}

/** `$questionnaire-package` with these parameters beside the patient's Coverage; the package Bundles of the shape asked. */
async function packageBundles(app: App, resources: Resource[], params: Parameters['parameter'], shape?: '2.2'): Promise<Bundle[]> {
  const res = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .set('Content-Type', FHIR)
    .send(JSON.stringify({
      resourceType: 'Parameters',
      ...(shape ? { meta: { profile: [DTR_22] } } : {}),
      parameter: [{ name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage') }, ...(params ?? [])],
    }))
    .expect(200);
  return (res.body as Parameters).parameter!.filter((p) => p.name === 'PackageBundle' || p.name === 'packagebundle').map((p) => p.resource as Bundle);
}

const responseOf = (b: Bundle) => b.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
const formOf = (b: Bundle) => b.entry!.find((e) => e.resource?.resourceType === 'Questionnaire')!.resource as Questionnaire;

describe('what DTR has of an order only through its CRD assertion', () => {
  it('CRD records the date it judged the order on with the assertion', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const { assertionId } = await sign(app, resources, order);
    expect((await storage.getAssertion(assertionId))?.orderDate).toBe(start);
  });

  it('$questionnaire-package given only the context pre-fills the order start CRD judged on, so the form asks the adult question CRD would', async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const { assertionId } = await sign(app, resources, order);
    const bundles = await packageBundles(app, resources, [{ name: 'context', valueString: assertionId }]);
    expect(bundles.length).toBeGreaterThan(0);
    for (const bundle of bundles) {
      const q = formOf(bundle);
      const qr = responseOf(bundle);
      expect(answerOf(qr.item, ORDER_DATE_LINK_ID)?.[0].valueDate, `${q.id}: the order start CRD judged on, not today`).toBe(start);
      // I.A.4.c.iii: maintenance with POMP is for adults; on the order start this patient is one.
      const maintenance = withAnswers(qr, { 'ph-status': code('negative'), 'treatment-phase': code('maintenance') });
      expect(shownInForm(content, q, 'with-pomp', maintenance), `${q.id}: the adult question is shown`).toBe(true);
    }
  });

  it("the adaptive route's draft, asked for with only the context, carries the order start CRD judged on", async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const { assertionId } = await sign(app, resources, order);
    const bundles = await packageBundles(app, resources, [
      { name: 'context', valueString: assertionId },
      { name: 'questionnaire', valueCanonical: `${CANONICAL_BASE}/Questionnaire/${POLICY}-adaptive` },
    ]);
    expect(bundles.length).toBeGreaterThan(0);
    for (const bundle of bundles) expect(answerOf(responseOf(bundle).item, ORDER_DATE_LINK_ID)?.[0].valueDate).toBe(start);
  });

  it('a completed response naming the assertion without the order-date item is judged on, and approved from, the order start', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const { signed } = await sign(app, resources, order);
    const [bundle] = await packageBundles(app, resources, [{ name: 'order', resource: signed }], '2.2');
    const qr = responseOf(bundle);
    // A DTR client that sends back only what the clinician saw (the hidden order-date item left out); the MRD level the
    // record lacked and the current weight answered (CP.PHAR.312 I.A.4.a, V).
    const completed = {
      ...without(withAnswers(qr, { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] }), ORDER_DATE_LINK_ID),
      status: 'completed' as const,
    };
    expect(answerOf(completed.item, ORDER_DATE_LINK_ID)).toBeUndefined();
    const created = (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(completed)).expect(201)).body as QuestionnaireResponse;
    const ext = coverageInfoOf(created);
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
    const assertion = await storage.getAssertion(sub(ext, 'coverage-assertion-id')!.valueString!);
    expect(assertion?.authorization?.start, 'the approval starts on the order start, not today').toBe(start);
    expect(assertion?.orderDate).toBe(start);
  });

  it("a completed response naming the assertion but not its order decides that order's one record, which signing then answers", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const { resources, order } = turningEighteen(STORY);
    const { signed } = await sign(app, resources, order);
    const [bundle] = await packageBundles(app, resources, [{ name: 'order', resource: signed }], '2.2');
    const qr = responseOf(bundle);
    // The response names its patient and the CRD assertion, not the order (no qr-context).
    const completed: QuestionnaireResponse = {
      ...withAnswers(qr, { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] }),
      extension: (qr.extension ?? []).filter((e) => !e.url.endsWith('/qr-context')),
      status: 'completed',
    };
    const created = (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(completed)).expect(201)).body as QuestionnaireResponse;
    const number = sub(coverageInfoOf(created), 'satisfied-pa-id')?.valueString;
    expect(number).toMatch(/^PA-CENTENE-/);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const record = await storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: content.policies.find((p) => p.file.id === POLICY)!.file.drug });
    expect(record?.state, "the DTR approval is the order's").toBe('approved');
    expect(record?.authorization?.number).toBe(number);
    // Signing the same order again answers the one approval.
    const again = await sign(app, resources, order);
    expect(sub(coverageInfoOf(again.signed), 'satisfied-pa-id')?.valueString).toBe(number);
    expect((storage as MemoryStorage).assertions.size).toBeGreaterThan(1);
  });

  it('$next-question starts from the facts CRD knew: it asks only what the assertion lacks, and decides as the POST does', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const { signed, assertionId } = await sign(app, resources, order);
    const assertion = (await storage.getAssertion(assertionId))!;
    expect(assertion.missingFacts.length).toBeGreaterThan(0);
    const policy = content.policies.find((p) => p.file.id === POLICY)!;
    const missingLinks = new Set(assertion.missingFacts.map((f) => policy.factsByName.get(f)?.def.linkId));

    const [bundle] = await packageBundles(app, resources, [
      { name: 'order', resource: signed },
      { name: 'questionnaire', valueCanonical: `${CANONICAL_BASE}/Questionnaire/${POLICY}-adaptive` },
    ], '2.2');
    const draft = responseOf(bundle);
    expect(answerOf(draft.item, ORDER_DATE_LINK_ID)?.[0].valueDate).toBe(start);
    const next = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(draft)).expect(200)).body as QuestionnaireResponse;
    expect(next.status).toBe('in-progress');
    const asked = ((next.contained![0] as Questionnaire).item ?? []).map((i) => i.linkId).filter((l) => l !== ORDER_DATE_LINK_ID && l !== ORDER_START_LINK_ID);
    expect(asked.length).toBeGreaterThan(0);
    // Nothing CRD read from the chart (birth date, diagnosis, Ph status, …) is asked again: only what it lacked.
    for (const l of asked) expect(missingLinks.has(l), `${l} was known at signing`).toBe(true);
    expect(asked).not.toContain('birth-date');

    // The answers CRD lacked: completed, and approved from the order start, as the POST of the standard form is.
    let qr = withAnswers(next, { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] });
    for (let round = 0; round < 5 && qr.status !== 'completed'; round++) {
      qr = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
      if (qr.status !== 'completed') {
        const more = ((qr.contained![0] as Questionnaire).item ?? []).map((i) => i.linkId).filter((l) => answerOf(qr.item, l) === undefined);
        throw new Error(`asked again after the missing answers: ${more.join(', ')}`);
      }
    }
    const ext = coverageInfoOf(qr);
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
    const decided = await storage.getAssertion(sub(ext, 'coverage-assertion-id')!.valueString!);
    expect(decided?.authorization?.start).toBe(start);
  });

  it('$next-question completing the form stores its approval with its assertion: when the assertion cannot be written, the order is not approved either', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'priorpath-dtr-atomic-'));
    const storage = await createStorage({ dataDir: dir });
    try {
      // The embedded database refuses every assertion while `refusing` (a full disk, a constraint): each statement
      // and each statement of a transaction or batch that writes one fails.
      let refusing = false;
      const refuse = (sql: string) => {
        if (refusing && sql.includes('INSERT INTO crd_assertions')) throw new Error('could not extend file: No space left on device');
      };
      const driver = storage.driver;
      const { batch, query, transaction } = { batch: driver.batch.bind(driver), query: driver.query.bind(driver), transaction: driver.transaction.bind(driver) };
      driver.batch = async (steps) => (steps.forEach((st) => refuse(st.sql)), batch(steps));
      driver.query = async <T>(sql: string, params?: unknown[]) => (refuse(sql), query<T>(sql, params));
      driver.transaction = <T>(fn: (tx: SqlSession) => Promise<T>) =>
        transaction((tx) => fn({ query: async <R>(sql: string, params?: unknown[]) => (refuse(sql), tx.query<R>(sql, params)), exec: (sql) => tx.exec(sql) }));
      const { app } = buildApp({ today: TODAY, storageOverride: storage });
      const { resources, order } = turningEighteen(STORY);
      const { signed } = await sign(app, resources, order);
      const [bundle] = await packageBundles(app, resources, [
        { name: 'order', resource: signed },
        { name: 'questionnaire', valueCanonical: `${CANONICAL_BASE}/Questionnaire/${POLICY}-adaptive` },
      ], '2.2');
      const next = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(responseOf(bundle))).expect(200)).body as QuestionnaireResponse;
      // The answers CRD lacked (CP.PHAR.312 I.A.4.a, V): this response completes the form and approves.
      const answered = withAnswers(next, { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] });
      await storage.listAudit(1);
      const key = {
        payer: 'centene',
        patientId: resources.find((r) => r.resourceType === 'Patient')!.id!,
        orderRef: `MedicationRequest/${order.id}`,
        drug: content.policies.find((p) => p.file.id === POLICY)!.file.drug,
      };
      const before = await storage.getOrderRecord(key);
      expect(before?.state).not.toBe('approved');

      refusing = true;
      const failed = await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(answered));
      refusing = false;
      expect(failed.status).toBeGreaterThanOrEqual(500);
      const after = await storage.getOrderRecord(key);
      expect(after?.state, 'no approval without the assertion naming it').toBe(before?.state);
      expect(after?.authorization).toBeUndefined();

      // Sent again, both are stored: the order's approval is the one the stored assertion names.
      const done = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(answered)).expect(200)).body as QuestionnaireResponse;
      expect(done.status).toBe('completed');
      const decided = await storage.getAssertion(assertionIdOf(done));
      expect(decided?.authorization?.number).toMatch(/^PA-CENTENE-/);
      expect((await storage.getOrderRecord(key))?.authorization?.number).toBe(decided?.authorization?.number);
    } finally {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("an assertion recorded for another order of the patient neither pre-fills nor dates this order's form", async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order, start, birthDate } = turningEighteen(STORY);
    const { signed, assertionId } = await sign(app, resources, order);
    // The same patient's next cycle, starting four weeks later, sent with the first cycle's assertion as the context.
    const next = structuredClone(order);
    next.id = `${order.id}-cycle-2`;
    const nextStart = daysAfter(start, 28);
    next.dosageInstruction![0].timing!.repeat!.boundsPeriod = { start: nextStart, end: daysAfter(nextStart, 27) };
    next.dispenseRequest!.validityPeriod = { start: nextStart, end: daysAfter(nextStart, 167) };
    const [forNext] = await packageBundles(app, resources, [{ name: 'order', resource: next }, { name: 'context', valueString: assertionId }]);
    expect(answerOf(responseOf(forNext).item, ORDER_DATE_LINK_ID)?.[0].valueDate).toBe(nextStart);
    expect(answerOf(responseOf(forNext).item, 'birth-date'), "the first cycle's facts are not this order's pre-fill").toBeUndefined();
    // The first cycle's own form is pre-filled from its assertion.
    const [forFirst] = await packageBundles(app, resources, [{ name: 'order', resource: signed }, { name: 'context', valueString: assertionId }]);
    expect(answerOf(responseOf(forFirst).item, 'birth-date')?.[0].valueDate).toBe(birthDate);
  });

  it("a response naming another order than its assertion's is not read over that assertion's facts", async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order } = turningEighteen(STORY);
    const { signed } = await sign(app, resources, order);
    const [bundle] = await packageBundles(app, resources, [{ name: 'order', resource: signed }], '2.2');
    const qr = responseOf(bundle);
    // Only the answers CRD lacked: the rest stands on the assertion's facts.
    const kept = new Set([ORDER_DATE_LINK_ID, 'mrd-percent', 'weight']);
    const keepOnly = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
      (items ?? []).flatMap((i) => (kept.has(i.linkId) ? [i] : keepOnly(i.item)));
    const answered = withAnswers(qr, { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] });
    const minimal: QuestionnaireResponse = { ...answered, item: keepOnly(answered.item), status: 'completed' };
    const post = async (r: QuestionnaireResponse) =>
      sub(coverageInfoOf((await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(r)).expect(201)).body as QuestionnaireResponse), 'pa-needed')?.valueCode;
    expect(await post(minimal), "the assertion's own order: its facts stand in").toBe('satisfied');
    const otherOrder: QuestionnaireResponse = {
      ...minimal,
      extension: (minimal.extension ?? []).map((e) => (e.url.endsWith('/qr-context') ? { ...e, valueReference: { reference: `MedicationRequest/${order.id}-cycle-2` } } : e)),
    };
    expect(await post(otherOrder), "another order: the first cycle's facts do not answer for it").not.toBe('satisfied');
  });

  it("a cycle-2 response carrying cycle 1's assertion id is read over cycle 2's own signing: its facts, its date, its order (review s41 F9)", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const { assertionId: firstCycle } = await sign(app, resources, order);
    // The next cycle, four weeks later, signed on its own: its record names its own signing.
    const next = structuredClone(order);
    next.id = `${order.id}-cycle-2`;
    const nextStart = daysAfter(start, 28);
    next.dosageInstruction![0].timing!.repeat!.boundsPeriod = { start: nextStart, end: daysAfter(nextStart, 27) };
    next.dispenseRequest!.validityPeriod = { start: nextStart, end: daysAfter(nextStart, 167) };
    const { signed: signedNext, assertionId: secondCycle } = await sign(app, resources, next);
    const [bundle] = await packageBundles(app, resources, [{ name: 'order', resource: signedNext }], '2.2');
    const answered = withAnswers(responseOf(bundle), { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] });
    // Only the answers CRD lacked, no order-date item, and the coverage-information the EHR copied from cycle 1.
    const kept = new Set(['mrd-percent', 'weight']);
    const keepOnly = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
      (items ?? []).flatMap((i) => (kept.has(i.linkId) ? [i] : keepOnly(i.item)));
    const info: Extension = { url: COVERAGE_INFO, extension: [{ url: 'coverage-assertion-id', valueString: firstCycle }] };
    const extension = [...(answered.extension ?? []).filter((e) => e.url !== COVERAGE_INFO), info];
    expect(extension.some((e) => e.url.endsWith('/qr-context') && e.valueReference?.reference === `MedicationRequest/${next.id}`)).toBe(true);
    const sent: QuestionnaireResponse = { ...answered, extension, item: keepOnly(answered.item), status: 'completed' };
    const created = (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(sent)).expect(201)).body as QuestionnaireResponse;
    const ext = coverageInfoOf(created);
    expect(sub(ext, 'pa-needed')?.valueCode, "cycle 2's signing knows the rest of its chart").toBe('satisfied');
    const determination = await storage.getAssertion(sub(ext, 'coverage-assertion-id')!.valueString!);
    expect(determination?.orderRef).toBe(`MedicationRequest/${next.id}`);
    expect(determination?.orderDate, "cycle 2's date, which its signing judged it on").toBe(nextStart);
    expect(determination?.authorization?.start).toBe(nextStart);
    expect(secondCycle).not.toBe(firstCycle);
  });
});

/**
 * The one rule of design.md §8 for which assertion speaks for an order (coverage/assertion-speaks-for.ts), as the
 * package and the response edges apply it: an order copied from the last cycle keeps that cycle's coverage-information,
 * and what the copy carries is still the earlier order's assertion; an order is compared by its resolved id.
 */
describe('the assertion that speaks for an order, on the package and the response', () => {
  it("an order copied from the earlier cycle, carrying that cycle's coverage-information, is neither pre-filled nor dated from it", async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const { signed } = await sign(app, resources, order);
    const copy = structuredClone(signed);
    copy.id = `${order.id}-cycle-2`;
    const nextStart = daysAfter(start, 28);
    copy.dosageInstruction![0].timing!.repeat!.boundsPeriod = { start: nextStart, end: daysAfter(nextStart, 27) };
    copy.dispenseRequest!.validityPeriod = { start: nextStart, end: daysAfter(nextStart, 167) };
    for (const shape of [undefined, '2.2'] as const) {
      const [bundle] = await packageBundles(app, resources, [{ name: 'order', resource: copy }], shape);
      const qr = responseOf(bundle);
      expect(answerOf(qr.item, ORDER_DATE_LINK_ID)?.[0].valueDate).toBe(nextStart);
      expect(answerOf(qr.item, 'birth-date'), `${shape ?? '2.0.1'}: the first cycle's facts are not this order's pre-fill`).toBeUndefined();
    }
  });

  it("a response naming its order by an absolute, versioned reference is the assertion's order: CRD's facts stand in for it on POST and $next-question", async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order } = turningEighteen(STORY);
    const { signed } = await sign(app, resources, order);
    const [bundle] = await packageBundles(app, resources, [{ name: 'order', resource: signed }], '2.2');
    const qr = responseOf(bundle);
    const spelled = (r: QuestionnaireResponse, reference: string): QuestionnaireResponse => ({
      ...r,
      extension: (r.extension ?? []).map((e) => (e.url.endsWith('/qr-context') ? { ...e, valueReference: { reference } } : e)),
    });
    const kept = new Set([ORDER_DATE_LINK_ID, 'mrd-percent', 'weight']);
    const keepOnly = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
      (items ?? []).flatMap((i) => (kept.has(i.linkId) ? [i] : keepOnly(i.item)));
    const answered = withAnswers(qr, { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] });
    const minimal: QuestionnaireResponse = { ...answered, item: keepOnly(answered.item), status: 'completed' };
    const absolute = spelled(minimal, `https://ehr.example.org/fhir/MedicationRequest/${order.id}/_history/3`);
    const posted = (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(absolute)).expect(201)).body as QuestionnaireResponse;
    expect(sub(coverageInfoOf(posted), 'pa-needed')?.valueCode, "the assertion's own order, however spelled").toBe('satisfied');

    // $next-question given only the answers CRD lacked: naming the order so, nothing more is asked; naming another
    // order, what CRD read of the first cycle's chart (the birth date) is asked for it.
    const next = async (reference: string) =>
      (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(spelled({ ...minimal, status: 'in-progress' }, reference))).expect(200)).body as QuestionnaireResponse;
    const own = await next(`https://ehr.example.org/fhir/MedicationRequest/${order.id}/_history/3`);
    expect(own.status).toBe('completed');
    expect(sub(coverageInfoOf(own), 'pa-needed')?.valueCode).toBe('satisfied');
    const other = await next(`MedicationRequest/${order.id}-cycle-2`);
    expect(other.status).toBe('in-progress');
    expect(((other.contained?.[0] as Questionnaire | undefined)?.item ?? []).map((i) => i.linkId)).toContain('birth-date');
  });
});
