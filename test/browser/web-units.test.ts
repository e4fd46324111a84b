import type { Extension, MedicationRequest, Questionnaire, QuestionnaireResponse } from '@medplum/fhirtypes';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createSandboxAuth } from '../../src/sandbox-auth/index.js';
import { createWebRouter } from '../../src/web/index.js';
import { answeredAfter, COVERAGE_INFO_URL, settlesPendedRequest, summarizeCoverage, supersededByDecision } from '../../web/shared/coverage.js';
import { applyForm, describeOrder, formOf, sigWithDose, TREATMENT_PHASE_URL, validCycles } from '../../web/demo/order.js';
import { newestFirst, savedAt } from '../../web/demo/responses.js';
import {
  countOrigins,
  INFORMATION_ORIGIN_URL,
  mergeAdaptiveAnswers,
  pruneEmpty,
  snapshotAnswers,
  stampInformationOrigin,
} from '../../web/dtr/origin.js';
import { DraftSaver } from '../../web/dtr/draft.js';
import { keepUnsaved, takeUnsaved, unsavedKey } from '../../web/dtr/unsaved-copy.js';
import { withPopulationContext } from '../../web/dtr/lforms.js';
import { listEntries, neededQuestions } from '../../web/dtr/needed.js';
import { payerAnswersOn } from '../../web/demo/responses.js';
import { dateBoundProblems, ONE_SIDED_BOUND, rangeMessages, withExcludedMinimums } from '../../web/dtr/bounds.js';
import { attachmentBlob, attachmentText, imageSource, viewableType } from '../../web/review/attachment-view.js';
import { criterionResult } from '../../web/review/criterion-result.js';
import { decidedMatching, queuePage } from '../../web/review/queue-view.js';
import type { DecidedRow, QueueRow } from '../../web/review/queue-view.js';
import { storyOrder } from '../helpers/stories.js';

const sourceOf = (qr: QuestionnaireResponse, linkId: string) =>
  qr.item
    ?.flatMap((i) => [i, ...(i.item ?? [])])
    .find((i) => i.linkId === linkId)
    ?.answer?.[0]?.extension?.find((e) => e.url === INFORMATION_ORIGIN_URL);

describe('DTR information-origin', () => {
  const prefilled: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
    status: 'in-progress',
    item: [
      {
        linkId: 'g',
        item: [
          { linkId: 'b-all-diagnosis', answer: [{ valueBoolean: true }] },
          { linkId: 'daily-dose', answer: [{ valueDecimal: 28 }] },
        ],
      },
      {
        linkId: 'disease-status',
        answer: [
          {
            valueCoding: {
              system: 'https://priorpath.dev/fhir/CodeSystem/evidence',
              code: 'cr1',
              display: 'First complete remission',
            },
          },
        ],
      },
    ],
  };

  it('marks untouched pre-filled answers auto, changed ones override and new ones manual, with an author only for the last two', () => {
    const final: QuestionnaireResponse = {
      ...prefilled,
      status: 'completed',
      item: [
        {
          linkId: 'g',
          item: [
            { linkId: 'b-all-diagnosis', answer: [{ valueBoolean: true }] },
            { linkId: 'daily-dose', answer: [{ valueDecimal: 15 }] },
          ],
        },
        {
          linkId: 'disease-status',
          answer: [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'cr1' } }],
        },
        { linkId: 'mrd-percent', answer: [{ valueDecimal: 0.5 }] },
      ],
    };
    const stamped = stampInformationOrigin(final, snapshotAnswers(prefilled), 'PractitionerRole/r1');
    const code = (linkId: string) =>
      sourceOf(stamped, linkId)?.extension?.find((e: Extension) => e.url === 'source')?.valueCode;
    expect(code('b-all-diagnosis')).toBe('auto');
    expect(code('disease-status')).toBe('auto');
    expect(code('daily-dose')).toBe('override');
    expect(code('mrd-percent')).toBe('manual');
    expect(sourceOf(stamped, 'b-all-diagnosis')?.extension?.some((e: Extension) => e.url === 'author')).toBe(false);
    expect(JSON.stringify(sourceOf(stamped, 'mrd-percent'))).toContain('PractitionerRole/r1');
    expect(countOrigins(stamped)).toEqual({ auto: 2, override: 1, manual: 1 });
  });

  it("keeps earlier adaptive answers and takes this step's form as the truth for its own questions", () => {
    const previous = [
      {
        linkId: 'g',
        item: [
          { linkId: 'a', answer: [{ valueBoolean: true }] },
          { linkId: 'b', answer: [{ valueDecimal: 1 }] },
        ],
      },
    ];
    const merged = mergeAdaptiveAnswers(previous, ['b', 'c'], [{ linkId: 'c', answer: [{ valueDecimal: 0.5 }] }]);
    expect(merged).toEqual([
      { linkId: 'a', answer: [{ valueBoolean: true }] },
      { linkId: 'c', answer: [{ valueDecimal: 0.5 }] },
    ]);
  });

  it('drops unanswered items and empty groups', () => {
    expect(
      pruneEmpty([
        { linkId: 'g', item: [{ linkId: 'x' }, { linkId: 'y', answer: [] }] },
        { linkId: 'z', answer: [{ valueString: 'a' }] },
      ]),
    ).toEqual([{ linkId: 'z', answer: [{ valueString: 'a' }] }]);
  });
});

describe('adaptive form population', () => {
  const LAUNCH = 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-launchContext';
  const VARIABLE = 'http://hl7.org/fhir/StructureDefinition/variable';
  const launch = (code: string): Extension => ({ url: LAUNCH, extension: [{ url: 'name', valueCoding: { system: 'http://hl7.org/fhir/uv/sdc/CodeSystem/launchContext', code } }, { url: 'type', valueCode: 'Patient' }] });
  const variable = (name: string): Extension => ({ url: VARIABLE, valueExpression: { name, language: 'application/x-fhir-query', expression: `Observation?patient={{%patient.id}}` } });
  const staticForm = [launch('patient'), launch('user'), variable('observations'), variable('conditions')];

  it("adds only the launch contexts and variables the payer's contained form does not declare, so none is declared twice", () => {
    const declaring = withPopulationContext({ resourceType: 'Questionnaire', status: 'active', extension: [launch('patient'), variable('observations')] }, staticForm);
    const names = declaring.extension!.map((e) => (e.url === VARIABLE ? e.valueExpression!.name : e.extension![0].valueCoding!.code));
    expect(names.sort()).toEqual(['conditions', 'observations', 'patient', 'user']);
    const bare = withPopulationContext({ resourceType: 'Questionnaire', status: 'active' }, staticForm);
    expect(bare.extension).toEqual(staticForm);
  });
});

describe('coverage-information in plain words', () => {
  const ext = (subs: Extension[]): Extension => ({
    url: COVERAGE_INFO_URL,
    extension: [{ url: 'coverage', valueReference: { reference: 'Coverage/c' } }, ...subs],
  });

  it('says documentation is required, approved with number and date, or not covered with the clause', () => {
    expect(
      summarizeCoverage(
        ext([
          { url: 'covered', valueCode: 'covered' },
          { url: 'pa-needed', valueCode: 'auth-needed' },
          { url: 'doc-needed', valueCode: 'clinical' },
        ]),
        'signing',
      ).headline,
    ).toBe('Prior authorization needed — documentation required');
    const approved = summarizeCoverage(
      ext([
        { url: 'covered', valueCode: 'covered' },
        { url: 'pa-needed', valueCode: 'satisfied' },
        { url: 'satisfied-pa-id', valueString: 'PA-X-1' },
        { url: 'expiry-date', valueDate: '2027-05-20' },
      ]),
      'signing',
    );
    expect(approved.headline).toBe('Approved at signing: PA-X-1 valid until 20 May 2027');
    // A number this signing did not issue (the order's recorded approval answered, or the EHR held it already) is not
    // "approved at signing".
    const A1 = [{ system: 'https://codesystem.x12.org/005010/306', code: 'A1', display: 'Certified in total' }];
    const recorded = (reason: string, known: string[] = [], coding?: typeof A1) =>
      summarizeCoverage(
        ext([
          { url: 'covered', valueCode: 'covered' },
          { url: 'pa-needed', valueCode: 'satisfied' },
          { url: 'reason', valueCodeableConcept: { ...(coding ? { coding } : {}), text: reason } },
          { url: 'satisfied-pa-id', valueString: 'PA-BCBSNC-20261205-Z7GBW3WN' },
          { url: 'expiry-date', valueDate: '2027-06-08' },
        ]),
        'signing',
        known,
      ).headline;
    // The order's recorded approval is read from its reason's X12 306 A1 code, never from words ("Approved: …"): a
    // reason that merely begins so (a policy's own text) is not a recorded approval (was read from the words, s48).
    expect(recorded('Approved on clinical review: NCCN B-Cell Lymphomas category 2A', [], A1)).toBe('Prior authorization approved: PA-BCBSNC-20261205-Z7GBW3WN valid until 8 June 2027');
    expect(recorded('Meets BCBSNC Blinatumomab: relapsed or refractory B-ALL (II.A.1)', [], A1)).toBe('Prior authorization approved: PA-BCBSNC-20261205-Z7GBW3WN valid until 8 June 2027');
    expect(recorded('Approved: Meets BCBSNC Blinatumomab: relapsed or refractory B-ALL (II.A.1)')).toBe('Approved at signing: PA-BCBSNC-20261205-Z7GBW3WN valid until 8 June 2027');
    expect(recorded('Meets BCBSNC Blinatumomab: relapsed or refractory B-ALL (II.A.1)', ['PA-BCBSNC-20261205-Z7GBW3WN'])).toBe('Prior authorization approved: PA-BCBSNC-20261205-Z7GBW3WN valid until 8 June 2027');
    expect(recorded('Meets BCBSNC Blinatumomab: relapsed or refractory B-ALL (II.A.1)', ['PA-BCBSNC-20261101-AAAAAAAA'])).toBe('Approved at signing: PA-BCBSNC-20261205-Z7GBW3WN valid until 8 June 2027');
    const notCovered = summarizeCoverage(
      ext([
        { url: 'covered', valueCode: 'not-covered' },
        { url: 'reason', valueCodeableConcept: { text: 'T-cell ALL is not B-ALL (I.A.1)' } },
      ]),
      'signing',
    );
    expect(notCovered.headline).toBe('Not covered: T-cell ALL is not B-ALL (I.A.1)');
    const still = summarizeCoverage(
      ext([
        { url: 'covered', valueCode: 'covered' },
        { url: 'pa-needed', valueCode: 'auth-needed' },
        {
          url: 'reason',
          valueCodeableConcept: { text: 'Prior authorization needed: documentation of MRD level (I.A.4.a)' },
        },
      ]),
      'documentation',
    );
    expect(still.headline).toBe('Still needed: MRD level (I.A.4.a)');
    // A limit exceeded with a document still missing: the headline names the document (as PAS's pended answer does),
    // not the limit it would lift; the clauses may hold parentheses of their own.
    const overLimit = summarizeCoverage(
      ext([
        { url: 'covered', valueCode: 'covered' },
        { url: 'pa-needed', valueCode: 'auth-needed' },
        { url: 'reason', valueCodeableConcept: { text: 'Outside the policy limit: Dose does not exceed 28 mcg per day (CP.PHAR.312 I.A.5, II.A.3)' } },
        {
          url: 'reason',
          valueCodeableConcept: {
            text: 'Prior authorization needed. Still to document (CP.PHAR.312 I.A.5 (*Prescribed regimen must be FDA-approved)): Is the requested dose supported? (if yes, attach: Practice guideline)',
          },
        },
      ]),
      'documentation',
    );
    expect(overLimit.headline).toBe('Still needed: Is the requested dose supported? (if yes, attach: Practice guideline)');
  });

  it("tells the order's recorded denial (a reason coded X12 306 A3) from a provisional not covered by the code, not the words (review ui s47 #4)", () => {
    const words = 'Prior authorization denied: MRD negative on the outside flow report. The denial is the decision on this order as it stood when denied.';
    const notCovered = (reason: Extension['valueCodeableConcept']) =>
      summarizeCoverage(ext([{ url: 'covered', valueCode: 'not-covered' }, { url: 'reason', valueCodeableConcept: reason }]), 'documentation');
    const recorded = notCovered({ coding: [{ system: 'https://codesystem.x12.org/005010/306', code: 'A3', display: 'Not Certified' }], text: words });
    expect(recorded.recordedDenial).toBe(true);
    expect(settlesPendedRequest(recorded)).toBe(true);
    // The same words without the code, and the rules' own "not covered", leave the pended request waiting.
    expect(settlesPendedRequest(notCovered({ text: words }))).toBe(false);
    expect(settlesPendedRequest(notCovered({ text: 'Not covered: Philadelphia chromosome-positive B-ALL without a TKI (CP.PHAR.312 I.A.2)' }))).toBe(false);
    // Another X12 306 code on a reason (A4) is no denial.
    expect(notCovered({ coding: [{ system: 'https://codesystem.x12.org/005010/306', code: 'A4' }], text: words }).recordedDenial).toBe(false);
    const approved = summarizeCoverage(
      ext([{ url: 'covered', valueCode: 'covered' }, { url: 'pa-needed', valueCode: 'satisfied' }, { url: 'satisfied-pa-id', valueString: 'PA-X-1' }]),
      'documentation',
    );
    expect(settlesPendedRequest(approved)).toBe(true);
  });
});

describe("the signing answer after the PAS request's final decision", () => {
  const summary = (subs: Extension[]) =>
    summarizeCoverage({ url: COVERAGE_INFO_URL, extension: [{ url: 'coverage', valueReference: { reference: 'Coverage/c' } }, ...subs] }, 'signing');
  const needed = summary([
    { url: 'covered', valueCode: 'covered' },
    { url: 'pa-needed', valueCode: 'auth-needed' },
    { url: 'doc-needed', valueCode: 'clinical' },
  ]);
  const approved = summary([
    { url: 'covered', valueCode: 'covered' },
    { url: 'pa-needed', valueCode: 'satisfied' },
    { url: 'satisfied-pa-id', valueString: 'PA-CENTENE-20261205-AB12CD34' },
  ]);
  const notCovered = summary([{ url: 'covered', valueCode: 'not-covered' }]);

  it('is out of date when it still asks for documentation or says the other decision; a pended request changes nothing', () => {
    expect(supersededByDecision(needed, 'A1')).toBe(true);
    expect(supersededByDecision(needed, 'A3')).toBe(true);
    expect(supersededByDecision(notCovered, 'A1')).toBe(true);
    expect(supersededByDecision(approved, 'A3')).toBe(true);
    expect(supersededByDecision(approved, 'A1')).toBe(false);
    expect(supersededByDecision(notCovered, 'A3')).toBe(false);
    expect(supersededByDecision(needed, 'A4')).toBe(false);
    expect(supersededByDecision(undefined, 'A1')).toBe(false);
  });

  it('a decision overtakes the stored answer only when it came after the signing (to the day when that is all the answer says)', () => {
    expect(answeredAfter('2026-12-05T12:40:00.000Z', '2026-12-05T12:30:00.000Z')).toBe(true);
    expect(answeredAfter('2026-12-05T12:20:00.000Z', '2026-12-05T12:30:00.000Z')).toBe(false);
    expect(answeredAfter('2026-12-05T08:00:00.000Z', '2026-12-05')).toBe(true);
    expect(answeredAfter('2026-12-04T23:00:00.000Z', '2026-12-05')).toBe(false);
    expect(answeredAfter(undefined, '2026-12-05T12:30:00.000Z')).toBe(true);
  });
});

describe('demo order form', () => {
  it('changes dose, phase and cycles on the story draft and keeps everything else', () => {
    const base = storyOrder('centene-missing-mrd') as MedicationRequest;
    expect(formOf(base)).toMatchObject({ drug: 'blinatumomab', dose: 28, unit: 'ug/d', phase: 'induction', cycles: 4 });
    const edited = applyForm(base, {
      drug: 'blinatumomab',
      dose: 15,
      unit: 'ug/m2/d',
      phase: 'consolidation',
      cycles: 2,
    });
    expect(edited.dosageInstruction?.[0]?.doseAndRate?.[0]?.doseQuantity).toEqual({
      value: 15,
      unit: 'mcg/m2/d',
      system: 'http://unitsofmeasure.org',
      code: 'ug/m2/d',
    });
    expect(edited.extension?.find((e) => e.url === TREATMENT_PHASE_URL)?.valueCode).toBe('consolidation');
    expect(edited.dispenseRequest?.numberOfRepeatsAllowed).toBe(1);
    expect(edited.requester).toEqual(base.requester);
    const besponsa = applyForm(base, { drug: 'inotuzumab', dose: 0.8, unit: 'mg/m2', phase: '', cycles: 1 });
    expect(besponsa.dosageInstruction?.[0]?.text).toBe('0.8 mg/m²');
    expect(besponsa.medicationCodeableConcept?.coding?.map((c) => c.code)).toEqual(['1942954', 'J9229']);
    expect(besponsa.extension).toBeUndefined();
  });

  it('a new planned start moves every dosage period and the validity period by the same days; an order with none gets one', () => {
    const base = storyOrder('ohsu-live-vaccine') as MedicationRequest;
    const f = formOf(base);
    expect(f.start).toBe(base.dosageInstruction?.[0]?.timing?.repeat?.boundsPeriod?.start?.slice(0, 10));
    const plus = (d: string, n: number) => new Date(Date.parse(`${d.slice(0, 10)}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
    const moved = applyForm(base, { ...f, start: plus(f.start!, 9) });
    expect(moved.dosageInstruction?.map((d) => d.timing?.repeat?.boundsPeriod)).toEqual(
      base.dosageInstruction?.map((d) => ({ start: plus(d.timing!.repeat!.boundsPeriod!.start!, 9), end: plus(d.timing!.repeat!.boundsPeriod!.end!, 9) })),
    );
    expect(moved.dispenseRequest?.validityPeriod?.start).toBe(plus(base.dispenseRequest!.validityPeriod!.start!, 9));
    expect(formOf(moved).start).toBe(plus(f.start!, 9));
    expect(applyForm(base, f)).toEqual(base);
    const none = structuredClone(base);
    for (const d of none.dosageInstruction ?? []) delete d.timing;
    expect(formOf(none).start).toBeUndefined();
    expect(applyForm(none, { ...formOf(none), start: '2026-12-18' }).dosageInstruction?.[0]?.timing?.repeat?.boundsPeriod).toEqual({ start: '2026-12-18' });
  });

  it('signs whole cycles from 1 to 12 only, and the order line names them', () => {
    expect([0, 2.5, -1, 13, undefined, Number.NaN].map(validCycles)).toEqual([false, false, false, false, false, false]);
    expect([1, 3, 12].map(validCycles)).toEqual([true, true, true]);
    const base = storyOrder('centene-missing-mrd') as MedicationRequest;
    const f = formOf(base);
    expect(describeOrder(applyForm(base, { ...f, cycles: 3 }))).toMatch(/, 3 cycles$/);
    expect(describeOrder(applyForm(base, { ...f, cycles: 1 }))).toMatch(/, 1 cycle$/);
  });
});

describe('demo EHR: the documentation on file', () => {
  it('dates a response by its authored time, else by when the EHR stored it, and picks the newest either way', () => {
    const qr = (id: string, authored?: string, lastUpdated?: string): QuestionnaireResponse => ({
      resourceType: 'QuestionnaireResponse',
      id,
      status: 'completed',
      ...(authored ? { authored } : {}),
      ...(lastUpdated ? { meta: { lastUpdated } } : {}),
    });
    const older = qr('static', '2026-12-05T05:00:00.000Z', '2026-12-05T05:00:01.000Z');
    const adaptive = qr('adaptive', undefined, '2026-12-05T06:00:00.000Z');
    expect(savedAt(adaptive)).toBe('2026-12-05T06:00:00.000Z');
    expect(savedAt(older)).toBe('2026-12-05T05:00:00.000Z');
    expect([older, adaptive].sort(newestFirst).map((r) => r.id)).toEqual(['adaptive', 'static']);
    expect([adaptive, older].sort(newestFirst).map((r) => r.id)).toEqual(['adaptive', 'static']);
  });
});

describe('the sig after a dose change', () => {
  it("keeps the prescriber's words and changes only the dose they state (accepting the payer's 28 mcg/day)", () => {
    const base = storyOrder('centene-over-dose') as MedicationRequest;
    expect(base.dosageInstruction?.[0]?.text).toBe('56 mcg/day continuous IV infusion, days 1-28 (induction cycle 2)');
    const accepted = applyForm(base, { ...formOf(base), dose: 28 });
    expect(accepted.dosageInstruction?.[0]?.text).toBe('28 mcg/day continuous IV infusion, days 1-28 (induction cycle 2)');
    expect(accepted.dosageInstruction?.[0]?.doseAndRate?.[0]?.doseQuantity?.value).toBe(28);
    const f = formOf(base);
    expect(sigWithDose('Infuse over 28 days', f, { ...f, dose: 28 })).toBe('Infuse over 28 days');
    expect(sigWithDose('9 mcg/day days 1-7, then 28 mcg/day', { ...f, dose: 28 }, { ...f, dose: 15 })).toBe(
      '9 mcg/day days 1-7, then 15 mcg/day',
    );
  });
});

describe('web router', () => {
  const BASE = 'http://priorpath.test';
  const app = express();
  app.use(createWebRouter({ publicBaseUrl: BASE, sandboxAuth: createSandboxAuth({ publicBaseUrl: BASE }) }));

  it('serves the demo page and the DTR pages with a same-origin content security policy', async () => {
    for (const path of ['/', '/dtr/index.html', '/dtr/launch.html']) {
      const res = await request(app).get(path);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.headers['content-security-policy']).toContain("script-src 'self'");
      expect(res.text).not.toMatch(/src="https?:\/\//);
    }
  });

  it('serves the bundles it builds and the vendored LHC-Forms files', async () => {
    for (const path of ['/dtr/app.js', '/dtr/launch.js', '/demo/demo.js']) {
      const res = await request(app).get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers['content-type']).toMatch(/javascript/);
    }
    const lforms = await request(app).get('/dtr/vendor/lforms-40.1.3/lformsFHIR.min.js');
    expect(lforms.status).toBe(200);
    expect((await request(app).get('/dtr/app.ts')).status).toBe(404);
  });

  it('lists the sandbox stories with their one-line summaries and draft orders', async () => {
    const res = await request(app).get('/sandbox/stories');
    expect(res.status).toBe(200);
    expect(res.body.publicBaseUrl).toBe(BASE);
    const story = (res.body.stories as { id: string; orderId?: string; story?: string }[]).find(
      (s) => s.id === 'centene-missing-mrd',
    );
    expect(story).toMatchObject({ orderId: 'centene-missing-mrd-order', patientId: 'centene-missing-mrd' });
    expect(story?.story).toContain('MRD');
  });
});

describe("reviewer's Decided list: search (review ui s44 L1)", () => {
  const rows: DecidedRow[] = [
    { id: 'b', decision: 'deny', reviewer: 'Sam Okafor, PharmD', reason: '56 mcg/day is above the labelled 28 mcg/day', decidedAt: '2026-12-06T15:00:00.000Z', patientName: 'Bradley Scott Hoffman', drug: 'Blincyto', dose: '56 mcg/day', memberId: 'CEN-88' },
    { id: 'j', decision: 'approve', reviewer: 'Dana Reyes, MD', reason: 'MRD documented', decidedAt: '2026-12-06T09:00:00.000Z', authorizationNumber: 'PA-CENTENE-20261206-AB12CD34', patientName: 'José Álvarez', drug: 'Blincyto', dose: '28 mcg/day' },
  ];
  it('keeps the rows every word matches in any field (patient without accents, decision in words, number, reviewer), in the order given', () => {
    expect(decidedMatching(rows, '').map((r) => r.id)).toEqual(['b', 'j']);
    expect(decidedMatching(rows, 'jose approved').map((r) => r.id)).toEqual(['j']);
    expect(decidedMatching(rows, 'PA-CENTENE-20261206').map((r) => r.id)).toEqual(['j']);
    expect(decidedMatching(rows, 'okafor denied 56').map((r) => r.id)).toEqual(['b']);
    expect(decidedMatching(rows, 'cen-88').map((r) => r.id)).toEqual(['b']);
    expect(decidedMatching(rows, 'blincyto').map((r) => r.id)).toEqual(['b', 'j']);
    expect(decidedMatching(rows, 'jose denied')).toEqual([]);
  });
});

describe('reviewer queue: search, order and pages', () => {
  const row = (i: number, patientName: string, drug: string, payer: string, missing: string): QueueRow => ({
    id: `r${i}`,
    createdAt: `2026-11-20T09:${String(i).padStart(2, '0')}:00Z`,
    payer,
    policyId: `${payer}-blinatumomab`,
    patientName,
    memberId: `M${1000 + i}`,
    drug,
    needed: [missing],
  });
  const rows = [
    row(1, 'Wilfredo José Ortiz Maldonado', 'Blincyto (blinatumomab)', 'mmm', 'CD19 expression'),
    row(2, 'Kwame Osei Mensah', 'Blincyto (blinatumomab)', 'centene', 'Minimal residual disease (MRD) level'),
    row(3, 'Harold Eugene Pruitt', 'Besponsa (inotuzumab ozogamicin)', 'bcbsnc', 'Compendium citation'),
  ];

  it('finds by any word in any column, without regard to accents or case; every word must match', () => {
    expect(queuePage(rows, { filter: 'JOSE', sort: 'oldest', page: 1 }).rows.map((r) => r.id)).toEqual(['r1']);
    expect(queuePage(rows, { filter: 'M1002', sort: 'oldest', page: 1 }).rows.map((r) => r.id)).toEqual(['r2']);
    expect(queuePage(rows, { filter: 'blincyto mrd', sort: 'oldest', page: 1 }).rows.map((r) => r.id)).toEqual(['r2']);
    expect(queuePage(rows, { filter: 'besponsa mrd', sort: 'oldest', page: 1 }).matching).toBe(0);
  });

  it('finds a request by the reference the clinician\'s DTR form quotes (its id), in the queue and in Decided (review ui s46 L2)', () => {
    const ref = 'dbf505a8-3736-48af-a093-6066ca2fcb1b';
    const queued = [...rows, { ...rows[1], id: ref }];
    expect(queuePage(queued, { filter: ref, sort: 'oldest', page: 1 }).rows.map((r) => r.id)).toEqual([ref]);
    expect(queuePage(queued, { filter: ref.toUpperCase(), sort: 'oldest', page: 1 }).rows.map((r) => r.id)).toEqual([ref]);
    expect(queuePage(queued, { filter: 'dbf505a8', sort: 'oldest', page: 1 }).rows.map((r) => r.id)).toEqual([ref]);
    // A part of it is no search word of its own: "505" (a dose, a code) does not find every reference holding it.
    expect(queuePage(queued, { filter: '505', sort: 'oldest', page: 1 }).matching).toBe(0);
    const decided = [{ id: ref, patientName: 'Kwame Osei Mensah', decision: 'approve' as const, reviewer: 'Documentation answers (DTR)', reason: 'Meets CP.PHAR.312', decidedAt: '2026-12-06T10:00:00Z' }];
    expect(decidedMatching(decided, ref).map((r) => r.id)).toEqual([ref]);
  });

  it('orders oldest or newest first, or by patient, drug or payer name', () => {
    const ids = (sort: 'oldest' | 'newest' | 'patient' | 'drug' | 'payer') =>
      queuePage(rows, { filter: '', sort, page: 1 }).rows.map((r) => r.id);
    expect(ids('oldest')).toEqual(['r1', 'r2', 'r3']);
    expect(ids('newest')).toEqual(['r3', 'r2', 'r1']);
    expect(ids('patient')).toEqual(['r3', 'r2', 'r1']);
    expect(ids('drug')).toEqual(['r3', 'r1', 'r2']);
    expect(ids('payer')).toEqual(['r3', 'r2', 'r1']);
  });

  it('pages the matching rows and brings a page past the end back to the last one', () => {
    const many = Array.from({ length: 53 }, (_, i) => row(i, `Patient ${i}`, 'Blincyto', 'centene', 'MRD'));
    expect(queuePage(many, { filter: '', sort: 'oldest', page: 1 })).toMatchObject({ pages: 3, from: 1, to: 25 });
    const last = queuePage(many, { filter: '', sort: 'oldest', page: 9 });
    expect(last).toMatchObject({ page: 3, from: 51, to: 53, total: 53, matching: 53 });
    expect(last.rows).toHaveLength(3);
    expect(queuePage(many, { filter: 'nobody', sort: 'oldest', page: 2 })).toMatchObject({ page: 1, pages: 1, from: 0, to: 0 });
  });
});

describe('DTR answers the EHR refused, kept in the tab', () => {
  /** sessionStorage as the browser gives it, in memory. */
  const memoryStorage = (): Storage => {
    const m = new Map<string, string>();
    return {
      get length() {
        return m.size;
      },
      clear: () => m.clear(),
      getItem: (k) => m.get(k) ?? null,
      key: (i) => [...m.keys()][i] ?? null,
      removeItem: (k) => void m.delete(k),
      setItem: (k, v) => void m.set(k, String(v)),
    };
  };
  const key = unsavedKey('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11', 'MedicationRequest/m1');
  const copy: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
    status: 'in-progress',
    authored: '2026-12-05T10:30:00Z',
    item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.9 }] }],
  };
  const saved = (at: string): QuestionnaireResponse => ({ resourceType: 'QuestionnaireResponse', status: 'in-progress', meta: { lastUpdated: at } });

  it('gives the copy back over an older EHR draft (or none), one per form whatever its version, and drops it once the EHR holds later work', () => {
    const store = memoryStorage();
    keepUnsaved(store, key, copy);
    expect(unsavedKey('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab', 'MedicationRequest/m1')).toBe(key);
    expect(takeUnsaved(store, unsavedKey('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab', 'MedicationRequest/m2'), undefined)).toBeUndefined();
    expect(takeUnsaved(store, key, undefined)).toEqual(copy);
    expect(takeUnsaved(store, key, saved('2026-12-05T10:29:59Z'))).toEqual(copy);
    // Saved (or sent) in the EHR after the copy was taken: the EHR's is the later work, and the copy goes.
    expect(takeUnsaved(store, key, saved('2026-12-05T10:31:00Z'))).toBeUndefined();
    expect(store.getItem(key)).toBeNull();
    store.setItem(key, '{not json');
    expect(takeUnsaved(store, key, undefined)).toBeUndefined();
    expect(store.getItem(key)).toBeNull();
  });
});

describe('DTR draft saving', () => {
  it('saves again with keepalive when the page goes away while a save is still in flight (the browser cancels that one)', async () => {
    const calls: { method: string; keepalive: boolean }[] = [];
    const realFetch = globalThis.fetch;
    // The EHR takes its time: the first save is still under way when the clinician closes the tab.
    globalThis.fetch = ((_url: string, init: RequestInit) => {
      calls.push({ method: String(init.method), keepalive: Boolean(init.keepalive) });
      return new Promise<Response>(() => {});
    }) as typeof fetch;
    try {
      const qr: QuestionnaireResponse = {
        resourceType: 'QuestionnaireResponse',
        status: 'in-progress',
        item: [{ linkId: 'b-all-diagnosis', answer: [{ valueBoolean: true }] }],
      };
      const saver = new DraftSaver(
        { serverUrl: 'https://ehr.example.org/fhir', authorization: () => null },
        () => qr,
        () => {},
        () => {},
        0,
      );
      saver.schedule();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(calls).toEqual([{ method: 'POST', keepalive: false }]);
      saver.flush();
      expect(calls).toEqual([
        { method: 'POST', keepalive: false },
        { method: 'POST', keepalive: true },
      ]);
    } finally {
      globalThis.fetch = realFetch;
    }
  });

  it('sends nothing on leaving a form whose answers were all saved', async () => {
    let count = 0;
    const realFetch = globalThis.fetch;
    globalThis.fetch = (async () => {
      count++;
      return new Response(JSON.stringify({ resourceType: 'QuestionnaireResponse', id: 'qr-1' }), { status: 201 });
    }) as typeof fetch;
    try {
      const saver = new DraftSaver(
        { serverUrl: 'https://ehr.example.org/fhir', authorization: () => null },
        () => ({ resourceType: 'QuestionnaireResponse', status: 'in-progress' }),
        () => {},
        () => {},
        0,
      );
      saver.schedule();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(count).toBe(1);
      saver.flush();
      expect(count).toBe(1);
    } finally {
      globalThis.fetch = realFetch;
    }
  });
});

describe('review trace: each criterion says what holds', () => {
  it('a requirement or covered use is met, not met or unknown', () => {
    for (const kind of ['requirement', 'pathway'] as const) {
      expect(criterionResult({ kind, result: true }).word).toBe('Met');
      expect(criterionResult({ kind, result: false }).word).toBe('Not met');
      expect(criterionResult({ kind, result: 'unknown' }).word).toBe('Unknown');
    }
  });

  it('a limit is within, exceeded, unknown, or not applicable to a patient not on its covered use; never "Met"', () => {
    expect(criterionResult({ kind: 'limit', result: true, applies: true })).toEqual({ word: 'Within the limit', tone: 'true' });
    expect(criterionResult({ kind: 'limit', result: false, applies: true })).toEqual({ word: 'Exceeded', tone: 'false' });
    expect(criterionResult({ kind: 'limit', result: 'unknown', applies: true }).word).toBe('Unknown');
    expect(criterionResult({ kind: 'limit', result: true, applies: false })).toEqual({ word: 'Not applicable', tone: 'na' });
    expect(criterionResult({ kind: 'limit', result: true, applies: 'unknown' }).word).toBe('Not known to apply');
    // A request stored before applicability was recorded: only that the limit was not exceeded is known.
    expect(criterionResult({ kind: 'limit', result: true }).word).toBe('Not exceeded');
  });
});

describe('review attachments: what opens in the browser', () => {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

  it('opens plain text, PDF, PNG, JPEG and GIF (parameters and case aside); HTML, SVG, XML and the rest download only', () => {
    expect(viewableType('text/plain; charset=UTF-8')).toBe('text/plain');
    expect(viewableType('Application/PDF')).toBe('application/pdf');
    for (const t of ['image/png', 'image/jpeg', 'image/gif']) expect(viewableType(t)).toBe(t);
    for (const t of ['text/html', 'image/svg+xml', 'application/xhtml+xml', 'text/xml', 'application/octet-stream', 'text/plain+html', undefined])
      expect(viewableType(t)).toBeUndefined();
    const page = { title: 'note.html', contentType: 'text/html', data: b64('<script>alert(1)</script>') };
    expect(attachmentBlob(page)).toBeUndefined();
    expect(attachmentText(page)).toBeUndefined();
    expect(imageSource({ title: 'logo.svg', contentType: 'image/svg+xml', data: b64('<svg onload="alert(1)"/>') })).toBeUndefined();
  });

  it('reads a text note in its charset as text, and opens each type as a blob of the allowed type, never the type as sent', async () => {
    const note = { title: 'Progress note', contentType: 'text/plain; charset=utf-8', data: b64('MRD 0.4 % on 2026-11-02 <b>flow</b> — café') };
    expect(attachmentText(note)).toBe('MRD 0.4 % on 2026-11-02 <b>flow</b> — café');
    const latin1 = { title: 'Old note', contentType: 'text/plain; charset=ISO-8859-1', data: Buffer.from('caf\xe9', 'latin1').toString('base64') };
    expect(attachmentText(latin1)).toBe('café');
    const blob = attachmentBlob({ ...note, contentType: 'TEXT/PLAIN; charset=utf-8; x=<html>' })!;
    expect(blob.type).toBe('text/plain;charset=utf-8');
    expect(await blob.text()).toContain('<b>flow</b>');
    expect(attachmentBlob({ title: 'Flow report', contentType: 'application/pdf', data: b64('%PDF-1.4\n%%EOF') })?.type).toBe('application/pdf');
    expect(imageSource({ title: 'Scan', contentType: 'image/PNG', data: 'iVBORw0KGgo=' })).toBe('data:image/png;base64,iVBORw0KGgo=');
    // Data that is not base64 is not opened.
    expect(attachmentBlob({ title: 'Broken', contentType: 'application/pdf', data: '%%%not base64%%%' })).toBeUndefined();
  });
});

describe('DTR: the questions the payer still needs (review ui s44 M4)', () => {
  const form: Questionnaire = {
    resourceType: 'Questionnaire',
    status: 'active',
    item: [
      { linkId: 'order-date', type: 'date', readOnly: true, text: "The order's start date" },
      {
        linkId: 'g',
        type: 'group',
        text: 'Indication',
        item: [
          { linkId: 'mrd', type: 'decimal', text: 'Minimal residual disease (MRD) level, in percent (within 90 days)' },
          { linkId: 'vaccine', type: 'boolean', text: 'Do you attest that the patient will not receive live vaccines?' },
          { linkId: 'weight', type: 'decimal', text: 'Body weight (kg)' },
          { linkId: 'doc', type: 'attachment', text: 'Flow cytometry report' },
        ],
      },
    ],
  };
  const reason = (list: string) => `Prior authorization needed. Still to document (HEALTHSERVICES-0382 III (Universal)): ${list}`;

  it('marks the questions a "Still to document" reason quotes, whole entries only, a parenthesis of its own allowed', () => {
    const needed = neededQuestions(form, [
      reason('Do you attest that the patient will not receive live vaccines? (if yes, attach: Flow cytometry report; a note)'),
      'Prior authorization needed: documentation of Body weight (kg)',
    ]);
    expect([...needed.keys()]).toEqual(['vaccine']);
    expect([...neededQuestions(form, [reason('Minimal residual disease (MRD) level, in percent (within 90 days); Body weight (kg)')]).keys()]).toEqual(['mrd', 'weight']);
    // A question that only begins like an entry, or a read-only item, is not marked.
    expect(neededQuestions(form, [reason('Body weight (kg) and height')]).size).toBe(0);
    expect(neededQuestions(form, [reason("The order's start date")]).size).toBe(0);
    expect(neededQuestions(form, []).size).toBe(0);
  });

  it('splits a reason\'s list at "; " outside parentheses only', () => {
    expect(listEntries('a (x; y); b; c (d)')).toEqual(['a (x; y)', 'b', 'c (d)']);
  });
});

describe("demo EHR: a draft is not the payer's answer (review ui s44 L2)", () => {
  it('reads coverage-information only from documentation that was sent', () => {
    const ext = { url: COVERAGE_INFO_URL, extension: [{ url: 'pa-needed', valueCode: 'auth-needed' }] };
    const qr = (status: QuestionnaireResponse['status']): QuestionnaireResponse => ({ resourceType: 'QuestionnaireResponse', status, extension: [ext] } as QuestionnaireResponse);
    expect(payerAnswersOn(qr('in-progress'))).toEqual([]);
    expect(payerAnswersOn(qr('completed'))).toEqual([ext]);
    expect(payerAnswersOn(undefined)).toEqual([]);
  });
});

describe('DTR answer bounds the app applies itself (review s44 M1)', () => {
  const q = {
    resourceType: 'Questionnaire',
    status: 'active',
    item: [
      { linkId: 'order-date', type: 'date' },
      {
        linkId: 'g',
        type: 'group',
        item: [
          {
            linkId: 'weight',
            type: 'decimal',
            extension: [
              { url: 'http://hl7.org/fhir/StructureDefinition/minValue', valueDecimal: 0 },
              { url: 'https://priorpath.dev/fhir/StructureDefinition/min-value-excluded', valueBoolean: true },
            ],
          },
          { linkId: 'mrd', type: 'decimal', extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/minValue', valueDecimal: 0 }] },
          {
            linkId: 'birth-date',
            type: 'date',
            text: 'Patient date of birth',
            extension: [
              {
                url: 'http://hl7.org/fhir/StructureDefinition/maxValue',
                _valueDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/cqf-expression', valueExpression: { language: 'text/fhirpath', expression: 'today()' } }] },
              },
            ],
          },
        ],
      },
    ],
  } as unknown as Questionnaire;

  it('a number bounded on both sides is said with its whole range, by linkId and question text; one bound, or a date, is left to LHC-Forms (review ui s47 #5)', () => {
    const min = (v: number) => ({ url: 'http://hl7.org/fhir/StructureDefinition/minValue', valueInteger: v });
    const max = (v: number) => ({ url: 'http://hl7.org/fhir/StructureDefinition/maxValue', valueInteger: v });
    const ranged = {
      resourceType: 'Questionnaire',
      status: 'active',
      item: [
        { linkId: 'cycles', type: 'integer', text: 'Cycles requested', extension: [min(1), max(6)] },
        { linkId: 'dose', type: 'decimal', text: 'Daily dose (mcg)', extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/minValue', valueDecimal: 0 }, { url: 'https://priorpath.dev/fhir/StructureDefinition/min-value-excluded', valueBoolean: true }, { url: 'http://hl7.org/fhir/StructureDefinition/maxValue', valueDecimal: 28 }] },
      ],
    } as unknown as Questionnaire;
    const { byLinkId, byText } = rangeMessages(ranged);
    expect(Object.fromEntries(byLinkId)).toEqual({ cycles: 'must be a value from 1 to 6.', dose: 'must be a value greater than 0 and at most 28.' });
    expect(byText.get('Cycles requested')).toBe('must be a value from 1 to 6.');
    expect(rangeMessages(q).byLinkId.size).toBe(0);
    expect(ONE_SIDED_BOUND.test('Cycles requested must be a value greater than or equal to 1.')).toBe(true);
    expect(ONE_SIDED_BOUND.test('Cycles requested must be a decimal number.')).toBe(false);
  });

  it('an excluded minimum becomes LHC-Forms\' minExclusive; an inclusive one stays', () => {
    const form = { items: [{ linkId: 'g', items: [{ linkId: 'weight', restrictions: { minInclusive: 0 } }, { linkId: 'mrd', restrictions: { minInclusive: 0 } }] }] };
    withExcludedMinimums(form, q);
    expect(form.items[0].items[0].restrictions).toEqual({ minExclusive: 0 });
    expect(form.items[0].items[1].restrictions).toEqual({ minInclusive: 0 });
  });

  it('a date after the latest day its maxValue expression gives is a problem, with the day in words; on that day or before, none', () => {
    const qr = (dob: string) =>
      ({ resourceType: 'QuestionnaireResponse', status: 'in-progress', item: [{ linkId: 'g', item: [{ linkId: 'birth-date', answer: [{ valueDate: dob }] }] }] }) as QuestionnaireResponse;
    const evaluate = () => ['2026-12-06'];
    expect(dateBoundProblems(q, qr('2099-12-31'), evaluate)).toEqual([
      { linkId: 'birth-date', text: 'Patient date of birth', message: 'must be a date on or before 6 December 2026.' },
    ]);
    expect(dateBoundProblems(q, qr('2026-12-06'), evaluate)).toEqual([]);
    // An expression that fails bounds nothing: the payer still names an answer it cannot use.
    expect(dateBoundProblems(q, qr('2099-12-31'), () => { throw new Error('no'); })).toEqual([]);
  });
});
