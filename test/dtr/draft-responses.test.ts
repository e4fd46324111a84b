import type { Bundle, Extension, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { QuestionnaireResponseRecord } from '../../src/storage/storage.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

const SIGN = '/cds-services/priorpath-order-sign';
const STORY = 'centene-missing-mrd';
const X12 = 'https://codesystem.x12.org/005010/306';
const MANUAL = [
  { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin', extension: [{ url: 'source', valueCode: 'manual' }] },
];
const sub = (ext: Extension | undefined, url: string) => ext?.extension?.find((e) => e.url === url);
const coverageInfo = (r: { extension?: Extension[] }) => (r.extension ?? []).filter((e) => e.url === COVERAGE_INFO_URL);

/**
 * Signs the story's order (its MRD result is missing, so documentation is needed), fetches the package, and answers
 * the one open question (MRD 0.52 %, which meets the policy): the response a clinician would complete.
 */
async function answeredResponse(storage?: MemoryStorage) {
  const built = buildApp({ today: '2026-11-23', ...(storage ? { storage } : {}) });
  const resources = storyResources(STORY);
  const order = storyOrder(STORY, resources);
  const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
  const key = { payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' };
  const signed = await request(built.app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
  const pkg = await request(built.app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .send({
      resourceType: 'Parameters',
      parameter: [
        { name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage') },
        { name: 'order', resource: signed.body.systemActions[0].resource },
      ],
    })
    .expect(200);
  const bundle = pkg.body.parameter.find((p: { name: string }) => p.name === 'PackageBundle').resource as Bundle;
  const prefilled = bundle.entry!.map((e) => e.resource).find((r) => r?.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
  const answered: QuestionnaireResponse = {
    ...prefilled,
    item: [...(prefilled.item ?? []), { linkId: 'mrd-percent', answer: [{ valueDecimal: 0.52, extension: MANUAL }] }],
  };
  return { ...built, key, answered };
}

describe('POST /fhir/QuestionnaireResponse: only a completed (or amended) response decides the order', () => {
  it.each(['in-progress', 'stopped'] as const)(
    'a %s response is stored and read back, says it was not evaluated, and records no decision and no authorization number',
    async (status) => {
      const { app, storage, key, answered } = await answeredResponse();
      const before = await storage.getOrderRecord(key);
      expect(before?.state).toBe('auth-needed');

      const res = await request(app).post('/fhir/QuestionnaireResponse').send({ ...answered, status }).expect(201);
      const draft = res.body as QuestionnaireResponse;
      expect(draft.status).toBe(status);
      // No determination: the payer's answer adds no coverage-information, so nothing reads as an approval.
      expect(coverageInfo(draft).some((e) => sub(e, 'satisfied-pa-id') || sub(e, 'pa-needed')?.valueCode === 'satisfied')).toBe(false);
      expect(coverageInfo(draft)).toEqual(coverageInfo(answered));
      // It says so, in words the clinician (or the app showing the payer's answer) can read.
      expect(draft.text?.div).toMatch(/not evaluated/i);
      expect(draft.text?.div).toMatch(/completed/);
      // Stored under its new id, so the clinician can pick it up again.
      expect(res.headers.location).toMatch(new RegExp(`/fhir/QuestionnaireResponse/${draft.id}/_history/1$`));
      const read = await request(app).get(`/fhir/QuestionnaireResponse/${draft.id}`).expect(200);
      expect(read.body).toEqual(draft);
      expect(read.body.item).toEqual(answered.item);
      // The order's record is untouched: no decision, no authorization number issued.
      const after = await storage.getOrderRecord(key);
      expect(after?.state).toBe('auth-needed');
      expect(after?.authorization).toBeUndefined();
      expect(after?.history).toEqual(before?.history);

      // The same answers, completed: the order is decided normally, and the narrative of the draft does not follow it.
      const done = await request(app).post('/fhir/QuestionnaireResponse').send({ ...draft, id: undefined, status: 'completed' }).expect(201);
      const ext = coverageInfo(done.body).at(-1);
      expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
      expect(sub(ext, 'satisfied-pa-id')?.valueString).toBeTruthy();
      expect(done.body.text).toBeUndefined();
      expect((await storage.getOrderRecord(key))?.state).toBe('approved');
    },
  );

  it('an amended response decides like a completed one', async () => {
    const { app, storage, key, answered } = await answeredResponse();
    const res = await request(app).post('/fhir/QuestionnaireResponse').send({ ...answered, status: 'amended' }).expect(201);
    expect(sub(coverageInfo(res.body).at(-1), 'pa-needed')?.valueCode).toBe('satisfied');
    expect((await storage.getOrderRecord(key))?.state).toBe('approved');
  });

  it('a draft with a malformed answer is still a 400 naming it', async () => {
    const { app, answered } = await answeredResponse();
    const bad = { ...answered, status: 'in-progress', item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 'high' }] }] };
    const res = await request(app).post('/fhir/QuestionnaireResponse').send(bad).expect(400);
    expect(res.body.issue[0].expression[0]).toMatch(/answer\[0\]\.valueDecimal/);
  });
});

describe('$next-question: a response that was stopped or voided is not carried on to a decision', () => {
  it.each(['stopped', 'entered-in-error'] as const)('a %s response is a 422 and the order keeps its state', async (status) => {
    const { app, storage, key, answered } = await answeredResponse();
    const adaptive = (s: QuestionnaireResponse['status']): QuestionnaireResponse => ({
      ...answered,
      status: s,
      questionnaire: '#adaptive',
      contained: [
        {
          resourceType: 'Questionnaire',
          id: 'adaptive',
          status: 'active',
          derivedFrom: [answered.questionnaire!],
          extension: [{ url: 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive', valueBoolean: true }],
        },
      ],
    });
    const res = await request(app).post('/fhir/Questionnaire/$next-question').send(adaptive(status)).expect(422);
    expect(res.body.issue[0].expression).toEqual(['QuestionnaireResponse.status']);
    expect((await storage.getOrderRecord(key))?.state).toBe('auth-needed');
    // The same answers in progress: nothing is left to ask, so the form completes with the determination.
    const done = await request(app).post('/fhir/Questionnaire/$next-question').send(adaptive('in-progress')).expect(200);
    expect(done.body.status).toBe('completed');
    expect(sub(coverageInfo(done.body).at(-1), 'pa-needed')?.valueCode).toBe('satisfied');
  });
});

describe('PAS: the answers of a draft attached to a request are not evidence', () => {
  it.each(['in-progress', 'stopped'] as const)('a %s response leaves the request pended; the same answers completed approve it', async (status) => {
    const story = 'centene-missing-mrd';
    const submitWith = async (app: Parameters<typeof request>[0], s: QuestionnaireResponse['status']) => {
      const sent = storyBundle(story, { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
      (sent.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse).status = s;
      return claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(sent).expect(200)).body);
    };
    const draft = await submitWith(buildApp({ today: '2026-11-23' }).app, status);
    expect([reviewActions(draft), draft.preAuthRef]).toEqual([[`${X12}#A4`], undefined]);
    const done = await submitWith(buildApp({ today: '2026-11-23' }).app, 'completed');
    expect(reviewActions(done)).toEqual([`${X12}#A1`]);
    expect(done.preAuthRef).toBeTruthy();
  });
});

describe('PUT /fhir/QuestionnaireResponse/{id}: a stored draft is taken up again', () => {
  it('updates the draft without deciding, then decides when the update is completed; a decided response stays as it was', async () => {
    const { app, storage, key, answered } = await answeredResponse();
    const unanswered: QuestionnaireResponse = { ...answered, status: 'in-progress', item: answered.item!.filter((i) => i.linkId !== 'mrd-percent') };
    const created = (await request(app).post('/fhir/QuestionnaireResponse').send(unanswered).expect(201)).body as QuestionnaireResponse;

    // Version 2: the MRD answer is added, still a draft: stored, nothing decided.
    const v2 = await request(app).put(`/fhir/QuestionnaireResponse/${created.id}`).send({ ...created, item: answered.item }).expect(200);
    expect([v2.body.id, v2.body.meta.versionId, v2.headers.etag]).toEqual([created.id, '2', 'W/"2"']);
    expect(v2.body.text.div).toMatch(/not evaluated/);
    expect(coverageInfo(v2.body)).toEqual(coverageInfo(answered));
    expect((await storage.getOrderRecord(key))?.state).toBe('auth-needed');
    expect((await request(app).get(`/fhir/QuestionnaireResponse/${created.id}`).expect(200)).body).toEqual(v2.body);

    // Version 3: completed, so the order is decided; the draft's narrative is gone.
    const v3 = await request(app).put(`/fhir/QuestionnaireResponse/${created.id}`).send({ ...v2.body, status: 'completed' }).expect(200);
    expect([v3.body.meta.versionId, v3.headers.etag, v3.body.text]).toEqual(['3', 'W/"3"', undefined]);
    expect(sub(coverageInfo(v3.body).at(-1), 'pa-needed')?.valueCode).toBe('satisfied');
    expect((await storage.getOrderRecord(key))?.state).toBe('approved');
    const read = await request(app).get(`/fhir/QuestionnaireResponse/${created.id}/_history/3`).expect(200);
    expect(read.body).toEqual(v3.body);
    await request(app).get(`/fhir/QuestionnaireResponse/${created.id}/_history/1`).expect(404);

    // The response that decided is kept as it was.
    const again = await request(app).put(`/fhir/QuestionnaireResponse/${created.id}`).send({ ...v3.body, status: 'amended' }).expect(422);
    expect(again.body.issue[0].code).toBe('business-rule');
    expect((await request(app).get(`/fhir/QuestionnaireResponse/${created.id}`).expect(200)).body).toEqual(v3.body);
  });

  it('answers 400 when the body names another id and 404 for an unknown response; storage takes one update per version', async () => {
    const { app, storage, answered } = await answeredResponse();
    const created = (await request(app).post('/fhir/QuestionnaireResponse').send({ ...answered, status: 'in-progress' }).expect(201)).body as QuestionnaireResponse;
    const mismatch = await request(app).put(`/fhir/QuestionnaireResponse/${created.id}`).send({ ...created, id: 'another-id' }).expect(400);
    expect(mismatch.body.issue[0].expression).toEqual(['QuestionnaireResponse.id']);
    await request(app).put('/fhir/QuestionnaireResponse/no-such-response').send({ ...created, id: 'no-such-response' }).expect(404);
    const stored = (await storage.getQuestionnaireResponse(created.id!))!;
    expect(await storage.replaceQuestionnaireResponse(stored, '7')).toBe(false);
    expect(await storage.replaceQuestionnaireResponse({ ...stored, resource: { ...stored.resource, meta: { versionId: '2' } } }, '1')).toBe(true);
    expect(await storage.replaceQuestionnaireResponse({ ...stored, resource: { ...stored.resource, meta: { versionId: '2' } } }, '1')).toBe(false);
  });

  it('of two updates completing one draft at once, one decides and the other is a 409 that records nothing', async () => {
    const storage = new ReadsTogether();
    const { app, key, answered } = await answeredResponse(storage);
    const draft = (await request(app).post('/fhir/QuestionnaireResponse').send({ ...answered, status: 'in-progress' }).expect(201)).body as QuestionnaireResponse;
    const assertionsBefore = new Set(storage.assertions.keys());
    const authorizationsBefore = new Set(storage.authorizations.keys());
    const historyBefore = (await storage.getOrderRecord(key))!.history.length;

    // Both read version 1 before either writes: the clinician's app sent "complete" twice (a double click, a retry).
    storage.together = 2;
    const answers = await Promise.all([1, 2].map(() => request(app).put(`/fhir/QuestionnaireResponse/${draft.id}`).send({ ...draft, status: 'completed' })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
    const won = answers.find((a) => a.status === 200)!.body as QuestionnaireResponse;
    const ext = coverageInfo(won).at(-1);
    const assertionId = sub(ext, 'coverage-assertion-id')?.valueString;
    const number = sub(ext, 'satisfied-pa-id')?.valueString;
    expect([sub(ext, 'pa-needed')?.valueCode, typeof assertionId, typeof number]).toEqual(['satisfied', 'string', 'string']);

    // One determination, the winner's: one assertion, one authorization number, one event on the order's record.
    expect([...storage.assertions.keys()].filter((id) => !assertionsBefore.has(id))).toEqual([assertionId]);
    expect([...storage.authorizations.keys()].filter((n) => !authorizationsBefore.has(n))).toEqual([number]);
    const record = await storage.getOrderRecord(key);
    expect(record?.authorization?.number).toBe(number);
    expect(record!.history.slice(historyBefore).map((h) => [h.source, h.state, h.assertionId])).toEqual([['dtr', 'approved', assertionId]]);
    expect((await request(app).get(`/fhir/QuestionnaireResponse/${draft.id}`).expect(200)).body).toEqual(won);
  });
});

/** Memory storage whose next `together` reads of a QuestionnaireResponse wait for each other (they read one version). */
class ReadsTogether extends MemoryStorage {
  together = 0;
  private waiting: (() => void)[] = [];

  override async getQuestionnaireResponse(id: string): Promise<QuestionnaireResponseRecord | undefined> {
    const read = await super.getQuestionnaireResponse(id);
    if (this.together > 0) {
      this.together--;
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        if (this.together === 0) for (const w of this.waiting.splice(0)) w();
      });
    }
    return read;
  }
}
