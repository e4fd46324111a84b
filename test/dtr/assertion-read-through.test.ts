/**
 * DTR right after signing, on another replica (QA s40 F9; docs/design.md §2 "Written behind the hook's answer"). The
 * hook's CRD assertion is written behind its answer and reaches the shared database moments later; a
 * `$questionnaire-package` (or a QuestionnaireResponse) arriving at another replica in between names an assertion id
 * storage does not hold yet. It is read through for a moment (src/coverage/read-assertions.ts), and when it still is
 * not there the package says so instead of handing out a near-empty draft as if the order carried no assertion.
 *
 * Two replicas are two apps over one storage whose queued assertions commit late, after a few reads have missed them
 * (more than a request made before the read-through: a QuestionnaireResponse read its ids twice), so no test here
 * depends on a clock.
 */
import type { Bundle, Coverage, Extension, MedicationRequest, Parameters, QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { AssertionRecord } from '../../src/storage/storage.js';
import { buildApp } from '../helpers/app.js';
import { packageDraft } from '../helpers/dtr-package.js';
import { bareAdaptiveResponse } from './helpers.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

const FHIR = 'application/fhir+json';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
// Centene, MRD result missing: auth-needed at signing, its assertion queued behind the answer.
const MISSING_MRD = 'centene-missing-mrd';
// Centene, the chart satisfies the policy at signing.
const SATISFIED = 'centene-mrd-positive';

type App = ReturnType<typeof buildApp>['app'];

/**
 * One database behind two replicas: an assertion queued behind a hook's answer commits only after `missesBeforeCommit`
 * reads of it have found nothing (Infinity: never, a write lost with its replica), as the write-behind group commit
 * lands while the other replica is reading.
 */
class LateCommitStorage extends MemoryStorage {
  private readonly late = new Map<string, { record: AssertionRecord; misses: number }>();
  constructor(private readonly missesBeforeCommit: number) {
    super();
  }
  override async queueAssertion(a: AssertionRecord): Promise<void> {
    this.late.set(a.assertionId, { record: structuredClone(a), misses: 0 });
  }
  override async getAssertion(id: string): Promise<AssertionRecord | undefined> {
    const queued = this.late.get(id);
    if (queued) {
      if (queued.misses++ < this.missesBeforeCommit) return undefined;
      this.late.delete(id);
      await this.saveAssertion(queued.record);
    }
    return super.getAssertion(id);
  }
}

const answered = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
  (items ?? []).flatMap((i) => [...(i.answer?.length ? [i] : []), ...answered(i.item)]);
const sub = (ext: Extension | undefined, url: string) => ext?.extension?.find((e) => e.url === url);

/** Reads that miss a queued assertion before it commits. */
const LATE = 3;

function replicas(missesBeforeCommit: number): { signing: App; other: App } {
  const storage = new LateCommitStorage(missesBeforeCommit);
  return { signing: buildApp({ storage }).app, other: buildApp({ storage }).app };
}

async function sign(app: App, story: string): Promise<{ order: MedicationRequest; info: Extension; coverage: Coverage; birthDate: string }> {
  const resources = storyResources(story);
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, storyOrder(story, resources))).expect(200);
  const order = res.body.systemActions[0].resource as MedicationRequest;
  const patient = resources.find((r) => r.resourceType === 'Patient') as { birthDate: string };
  return { order, info: order.extension!.find((e) => e.url === COVERAGE_INFO)!, coverage: resources.find((r) => r.resourceType === 'Coverage') as Coverage, birthDate: patient.birthDate };
}

async function packageOf(app: App, parameter: Parameters['parameter']): Promise<{ qr: QuestionnaireResponse; warnings: string[] }> {
  const res = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .set('Content-Type', FHIR)
    .send(JSON.stringify({ resourceType: 'Parameters', parameter }))
    .expect(200);
  const out = res.body as Parameters;
  const bundle = out.parameter!.find((p) => p.name === 'PackageBundle')!.resource as Bundle;
  const qr = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
  const outcome = out.parameter!.find((p) => p.name === 'outcome')?.resource as { issue: { severity: string; diagnostics: string }[] } | undefined;
  return { qr, warnings: (outcome?.issue ?? []).filter((i) => i.severity === 'warning').map((i) => i.diagnostics) };
}

describe('$questionnaire-package on another replica right after signing (QA s40 F9)', () => {
  it('reads the assertion through: the draft is pre-filled from what signing saw, as on the signing replica', async () => {
    const { signing, other } = replicas(LATE);
    const b = await sign(signing, MISSING_MRD);
    const id = sub(b.info, 'coverage-assertion-id')!.valueString!;

    const { qr, warnings } = await packageOf(other, [
      { name: 'coverage', resource: b.coverage },
      { name: 'order', resource: b.order },
    ]);
    // The chart's facts seen at signing (the birth date among them), not the order's start alone.
    expect(answered(qr.item).find((i) => i.linkId === 'birth-date')?.answer?.[0].valueDate).toBe(b.birthDate);
    expect(answered(qr.item).length).toBeGreaterThan(1);
    expect(warnings.join('\n')).not.toContain(id);
  });

  it('a context alone is read through too: the form it names, pre-filled, rather than a 404', async () => {
    const { signing, other } = replicas(LATE);
    const b = await sign(signing, MISSING_MRD);
    const { qr } = await packageOf(other, [
      { name: 'coverage', resource: b.coverage },
      { name: 'context', valueString: sub(b.info, 'coverage-assertion-id')!.valueString },
    ]);
    expect(answered(qr.item).find((i) => i.linkId === 'birth-date')?.answer?.[0].valueDate).toBe(b.birthDate);
  });

  it('says so in a warning when the assertion is still not known: the draft is not pre-filled from the data seen at signing', async () => {
    const { signing, other } = replicas(Infinity);
    const b = await sign(signing, MISSING_MRD);
    const id = sub(b.info, 'coverage-assertion-id')!.valueString!;

    const { qr, warnings } = await packageOf(other, [
      { name: 'coverage', resource: b.coverage },
      { name: 'order', resource: b.order },
    ]);
    // The package as before (the order's form, drafted from the order alone: its start and the start it states), and
    // the outcome names the id.
    expect(answered(qr.item).map((i) => i.linkId)).toEqual(['order-date', 'order-start']);
    const said = warnings.find((w) => w.includes(id));
    expect(said).toMatch(/is not known to this payer: the draft QuestionnaireResponse is not pre-filled from the data seen at order signing/);
  });

  it("does not wait for, nor warn about, another payer's coverage-assertion-id on the order", async () => {
    const { signing, other } = replicas(LATE);
    const b = await sign(signing, MISSING_MRD);
    // The same order also answered by another payer's CRD service (the member's secondary plan, a payer PriorPath
    // does not serve): its coverage-information names that payer's Coverage and an id PriorPath never issued.
    const secondary: Coverage = { ...b.coverage, id: 'secondary-coverage', payor: [{ display: 'Another health plan' }], identifier: [] };
    const foreignId = '6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const foreign: Extension = {
      url: COVERAGE_INFO,
      extension: [
        { url: 'coverage', valueReference: { reference: 'Coverage/secondary-coverage' } },
        { url: 'covered', valueCode: 'covered' },
        { url: 'pa-needed', valueCode: 'no-auth' },
        { url: 'date', valueDate: sub(b.info, 'date')!.valueDate },
        { url: 'coverage-assertion-id', valueString: foreignId },
      ],
    };
    const { qr, warnings } = await packageOf(other, [
      { name: 'coverage', resource: b.coverage },
      { name: 'coverage', resource: secondary },
      { name: 'order', resource: { ...b.order, extension: [...(b.order.extension ?? []), foreign] } },
    ]);
    expect(warnings.join('\n')).not.toContain(foreignId);
    expect(answered(qr.item).find((i) => i.linkId === 'birth-date')?.answer?.[0].valueDate).toBe(b.birthDate);
  });
});

describe('POST /fhir/QuestionnaireResponse on another replica right after signing', () => {
  it("reads the assertion it names through: one of another patient's is refused, not set aside as unknown", async () => {
    const { signing, other } = replicas(LATE);
    // auth-needed at signing: its assertion is queued behind the answer (an approval's is written with it).
    const b = await sign(signing, MISSING_MRD);
    expect(sub(b.info, 'pa-needed')?.valueCode).toBe('auth-needed');
    const qr: QuestionnaireResponse = {
      resourceType: 'QuestionnaireResponse',
      status: 'completed',
      questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11',
      subject: { reference: `Patient/${SATISFIED}` },
      extension: [
        { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-coverage', valueReference: { reference: `Coverage/${SATISFIED}-coverage` } },
        b.info,
      ],
      item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.4 }] }],
    };
    const res = await request(other).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(400);
    expect(res.body.issue[0].diagnostics).toContain(sub(b.info, 'coverage-assertion-id')!.valueString!);
  });
});

/**
 * Review s41 F10: a response waits only for ids that may be this payer's, and only once. Whether an id was read
 * through is seen from how often storage was asked for it (read-assertions.ts reads a missing id again until it is
 * found or the bound passes), never from a clock.
 */
describe('a QuestionnaireResponse is not held for an id that is not ours', () => {
  class CountingStorage extends MemoryStorage {
    readonly reads = new Map<string, number>();
    override async getAssertion(id: string): Promise<AssertionRecord | undefined> {
      this.reads.set(id, (this.reads.get(id) ?? 0) + 1);
      return super.getAssertion(id);
    }
  }
  /** An id PriorPath never issued, shaped like its ids (a UUID), as another payer's CRD service gives them. */
  const FOREIGN_ID = '6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
  const foreignInfo = (date: string | undefined): Extension => ({
    url: COVERAGE_INFO,
    extension: [
      { url: 'coverage', valueReference: { reference: 'Coverage/secondary-coverage' } },
      { url: 'covered', valueCode: 'covered' },
      { url: 'pa-needed', valueCode: 'no-auth' },
      ...(date ? [{ url: 'date', valueDate: date }] : []),
      { url: 'coverage-assertion-id', valueString: FOREIGN_ID },
    ],
  });

  it("POST: another payer's coverage-assertion-id beside this payer's is read once, not read through; ours still decides", async () => {
    const storage = new CountingStorage();
    const { app } = buildApp({ storage });
    const b = await sign(app, MISSING_MRD);
    const draft = await packageDraft(app, b.coverage, b.order);
    // The draft names the form's Coverage and carries this payer's coverage-information for it.
    expect(draft.extension?.find((e) => e.url.endsWith('/qr-coverage'))?.valueReference?.reference).toBe(`Coverage/${b.coverage.id}`);
    expect(sub(draft.extension?.find((e) => e.url === COVERAGE_INFO), 'coverage')?.valueReference?.reference).toBe(`Coverage/${b.coverage.id}`);
    const walk = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] | undefined =>
      items?.map((i) => (i.linkId === 'mrd-percent' ? { ...i, answer: [{ valueDecimal: 0.4 }] } : i.item ? { ...i, item: walk(i.item) } : i));
    const hasMrd = (items: QuestionnaireResponseItem[] | undefined): boolean => (items ?? []).some((i) => i.linkId === 'mrd-percent' || hasMrd(i.item));
    const items = hasMrd(draft.item) ? walk(draft.item)! : [...(draft.item ?? []), { linkId: 'mrd-percent', answer: [{ valueDecimal: 0.4 }] }];
    const sent: QuestionnaireResponse = { ...draft, status: 'completed', item: items, extension: [...(draft.extension ?? []), foreignInfo(sub(b.info, 'date')?.valueDate)] };
    const created = (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(sent)).expect(201)).body as QuestionnaireResponse;
    expect(sub(created.extension?.find((e) => e.url === COVERAGE_INFO && sub(e, 'coverage-assertion-id')?.valueString !== FOREIGN_ID), 'pa-needed')?.valueCode).toBe('satisfied');
    expect(storage.reads.get(FOREIGN_ID), 'read once, not read again until the read-through bound').toBe(1);
  });

  it('$next-question: the first round reads an unknown id of ours through, a later round reads it once', async () => {
    const storage = new CountingStorage();
    const { app } = buildApp({ storage });
    const unknownId = '0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a';
    const first = bareAdaptiveResponse('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11');
    first.extension = [...(first.extension ?? []), { url: COVERAGE_INFO, extension: [{ url: 'coverage-assertion-id', valueString: unknownId }] }];
    const next = async (qr: QuestionnaireResponse) =>
      (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
    const second = await next(first);
    const afterFirst = storage.reads.get(unknownId) ?? 0;
    expect(afterFirst, 'the first round waited for it (read again until the bound)').toBeGreaterThan(1);
    expect(((second.contained?.[0] as { item?: unknown[] }).item ?? []).length).toBeGreaterThan(0);
    await next(second);
    expect(storage.reads.get(unknownId)! - afterFirst, 'the second round read it once').toBe(1);
  });
});
