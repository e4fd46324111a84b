import type {
  Condition,
  Immunization,
  MedicationRequest,
  Observation,
  Practitioner,
  Resource,
} from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import {
  blinatumomabOrder,
  evidence,
  inotuzumabOrder,
  observation,
  PHASE_URL,
  PT,
  relapseRecord,
  RXNORM,
  TODAY,
} from '../fixtures/bcbsnc-relapse.js';
import { edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { codeOf, edgeMrd, proposedOrders, reasonText, signOne, sub } from '../helpers/crd-answer.js';
import { fakeEhr } from '../helpers/fake-ehr.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/*
 * Acceptance scenarios for the determination table (design.md §5) and the evidence conventions (§6), written from
 * the contract and the seeds and run over HTTP: each changes one piece of the chart, or the FHIR shape it is written
 * in, and checks the answer an EHR receives.
 */

const ICD10 = 'http://hl7.org/fhir/sid/icd-10-cm';
const SNOMED = 'http://snomed.info/sct';
const sign = (record: Resource[], order: MedicationRequest, opts?: Parameters<typeof signOne>[3]) =>
  signOne(record, order, TODAY, opts);
const mrdResult = edgeMrd;

const without = (record: Resource[], ...ids: string[]) => record.filter((r) => !ids.includes(r.id ?? ''));
const replace = (record: Resource[], r: Resource) => [...without(record, r.id!), r];

/**
 * The relapse record with B-ALL coded by SNOMED alone and the Condition merely active: the relapse is then shown only
 * by the status result (a SNOMED B-ALL Condition whose clinicalStatus is relapse would show it as C91.02 does).
 */
function snomedOnly(record = relapseRecord()): Resource[] {
  const dx = record.find((r) => r.id === 'bc-dx') as Condition;
  const active = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] };
  return replace(record, { ...dx, clinicalStatus: active, code: { coding: [dx.code!.coding![0]] } });
}

/** A rheumatoid arthritis patient: a non-cancer indication (ICD-10-CM M06.9), nothing else on the problem list. */
function nonCancer(record = relapseRecord()): Resource[] {
  const ra: Condition = {
    resourceType: 'Condition',
    id: 'bc-dx',
    subject: { reference: `Patient/${PT}` },
    clinicalStatus: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
    },
    verificationStatus: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }],
    },
    code: { coding: [{ system: ICD10, code: 'M06.9', display: 'Rheumatoid arthritis, unspecified' }] },
  };
  return replace(without(record, 'bc-status', 'bc-cd19'), ra);
}

describe('the determination table, row by row (design.md §5), BCBSNC blinatumomab and inotuzumab', () => {
  describe.each([
    ['blinatumomab', blinatumomabOrder, 'bcbsnc-blinatumomab'],
    ['inotuzumab', inotuzumabOrder, 'bcbsnc-inotuzumab'],
  ] as const)('%s', (_drug, makeOrder, questionnaire) => {
    it('row 1, the chart proves a pathway and every requirement: covered, satisfied with an authorization number, nothing to document; CRD 2.2 adds the approval end', async () => {
      const first = await sign(relapseRecord(), makeOrder());
      expect(codeOf(first.ext, 'covered')).toBe('covered');
      expect(codeOf(first.ext, 'pa-needed')).toBe('satisfied');
      const number = sub(first.ext, 'satisfied-pa-id')[0]?.valueString;
      expect(number).toBeTruthy();
      for (const u of ['doc-needed', 'doc-purpose', 'questionnaire', 'info-needed'])
        expect(sub(first.ext, u), u).toEqual([]);
      const again = await sign(relapseRecord(), makeOrder(), {
        extra: { extension: { 'davinci-crd.requestedVersion': '2.2' } },
      });
      expect(sub(again.ext, 'expiry-date')[0]?.valueDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(sub(again.ext, 'expiry-date')[0].valueDate! > TODAY).toBe(true);
    });

    it('row 2, nothing false and the disease status unknown: auth-needed, clinical documentation with the PA, the Questionnaire, a reason naming what is missing', async () => {
      const { ext } = await sign(without(snomedOnly(), 'bc-status'), makeOrder());
      expect(codeOf(ext, 'covered')).toBe('covered');
      expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
      expect(codeOf(ext, 'doc-needed')).toBe('clinical');
      expect(codeOf(ext, 'doc-purpose')).toBe('withpa');
      expect(sub(ext, 'questionnaire')[0]?.valueCanonical).toMatch(
        new RegExp(`/Questionnaire/${questionnaire}(\\|.+)?$`),
      );
      expect(reasonText(ext)).toMatch(/status|relaps|refractor/i);
    });

    it('row 4, a non-cancer indication (rheumatoid arthritis): not-covered, no pa-needed, no documentation, a reason citing the clause and a warning Instructions card', async () => {
      const { ext, cards } = await sign(nonCancer(), makeOrder());
      expect(codeOf(ext, 'covered')).toBe('not-covered');
      for (const u of ['pa-needed', 'doc-needed', 'doc-purpose', 'questionnaire', 'satisfied-pa-id'])
        expect(sub(ext, u), u).toEqual([]);
      expect(reasonText(ext)).toMatch(/investigational|non-cancer|not covered/i);
      const warnings = cards.filter((c) => c.indicator === 'warning');
      expect(warnings.length, JSON.stringify(cards)).toBeGreaterThan(0);
      expect(cards.filter((c) => c.indicator !== 'warning').every((c) => c.indicator === 'info')).toBe(true);
    });
  });
});

describe('versions: the shared 2.0.1/2.2 form by default, the full 2.2 form on request (design.md §4 "Versions")', () => {
  /** Each row: its name, the record, the order, and the pa-needed the row is about (none when not covered). */
  const rows: [string, () => Resource[], () => MedicationRequest, string | undefined][] = [
    ['satisfied', () => relapseRecord(), blinatumomabOrder, 'satisfied'],
    ['documentation needed', () => without(snomedOnly(), 'bc-status'), inotuzumabOrder, 'auth-needed'],
    [
      'cycles over the course',
      () => relapseRecord(),
      () => ({ ...blinatumomabOrder(), dispenseRequest: { numberOfRepeatsAllowed: 9 } }),
      'auth-needed',
    ],
    ['not covered', () => nonCancer(), inotuzumabOrder, undefined],
  ];
  const SHARED = {
    covered: ['covered', 'not-covered', 'conditional'],
    'pa-needed': ['no-auth', 'auth-needed', 'satisfied', 'performpa', 'conditional'],
    'doc-needed': ['clinical', 'admin', 'conditional'],
    'info-needed': ['performer', 'location', 'timeframe', 'contract-window', 'OTH'],
  } as Record<string, string[]>;

  it.each(rows)('%s: by default only what 2.0.1 and 2.2 share', async (_row, record, order, paNeeded) => {
    const { ext } = await sign(record(), order());
    expect(codeOf(ext, 'pa-needed')).toBe(paNeeded);
    for (const u of ['expiry-date', 'detail', 'contact', 'patient', 'response']) expect(sub(ext, u), u).toEqual([]);
    for (const [u, allowed] of Object.entries(SHARED))
      for (const e of sub(ext, u)) expect(allowed, `${u} ${e.valueCode}`).toContain(e.valueCode);
    expect(sub(ext, 'doc-needed').length).toBeLessThanOrEqual(1);
    const covered = codeOf(ext, 'covered');
    expect(sub(ext, 'pa-needed').length).toBe(covered === 'not-covered' ? 0 : 1);
    const conditional = ['covered', 'pa-needed', 'doc-needed'].some((u) => codeOf(ext, u) === 'conditional');
    expect(sub(ext, 'info-needed').length > 0).toBe(conditional);
    expect(sub(ext, 'coverage-assertion-id')).toHaveLength(1);
    expect(sub(ext, 'coverage')).toHaveLength(1);
    for (const r of sub(ext, 'reason'))
      for (const c of r.valueCodeableConcept?.coding ?? []) expect(['gold-card']).toContain(c.code);
  });

  it.each(rows)(
    '%s: with requestedVersion 2.2, every detail has a category and a code, and an approval its expiry-date',
    async (_row, record, order, paNeeded) => {
      const { ext } = await sign(record(), order(), {
        extra: { extension: { 'davinci-crd.requestedVersion': '2.2' } },
      });
      expect(codeOf(ext, 'pa-needed')).toBe(paNeeded);
      expect(sub(ext, 'detail').length).toBeGreaterThan(0);
      for (const d of sub(ext, 'detail')) {
        expect(['cat-limitation', 'cat-decisional', 'cat-other']).toContain(
          d.extension?.find((x) => x.url === 'category')?.valueCode,
        );
        expect(d.extension?.find((x) => x.url === 'code')?.valueCodeableConcept).toBeTruthy();
      }
      expect(sub(ext, 'expiry-date')).toHaveLength(paNeeded === 'satisfied' ? 1 : 0);
    },
  );
});

describe('evidence conventions: each fact read from the FHIR shape design.md §6 names', () => {
  describe('diagnosis', () => {
    it('ICD-10-CM C91.02 with a CD19-positive result is B-ALL in relapse (no SNOMED code, no status result needed); C91.02 alone leaves the lineage unknown', async () => {
      const record = relapseRecord();
      const dx = record.find((r) => r.id === 'bc-dx') as Condition;
      const icdOnly = replace(without(record, 'bc-status'), { ...dx, code: { coding: [dx.code!.coding![1]] } });
      expect(codeOf((await sign(icdOnly, blinatumomabOrder())).ext, 'pa-needed')).toBe('satisfied');
      expect(codeOf((await sign(without(icdOnly, 'bc-cd19'), blinatumomabOrder())).ext, 'pa-needed')).toBe(
        'auth-needed',
      );
    });

    it.each([
      [
        'clinicalStatus active',
        {
          clinicalStatus: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
          },
        },
        'satisfied',
      ],
      [
        'verificationStatus refuted',
        {
          verificationStatus: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'refuted' }],
          },
        },
        'not satisfied',
      ],
      [
        'verificationStatus entered-in-error',
        {
          verificationStatus: {
            coding: [
              { system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'entered-in-error' },
            ],
          },
        },
        'not satisfied',
      ],
      [
        'clinicalStatus resolved',
        {
          clinicalStatus: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }],
          },
        },
        'not satisfied',
      ],
    ])('a B-ALL Condition with %s: %s', async (_name, patch, want) => {
      const record = snomedOnly();
      const dx = record.find((r) => r.id === 'bc-dx') as Condition;
      const { ext } = await sign(replace(record, { ...dx, ...patch } as Condition), blinatumomabOrder());
      if (want === 'satisfied') expect(codeOf(ext, 'pa-needed')).toBe('satisfied');
      else expect(codeOf(ext, 'pa-needed')).not.toBe('satisfied');
    });

    it("the order's reasonCode decides over the problem list: T-cell ALL (SNOMED 277575008) is not Centene's B-ALL, though the list holds B-ALL", async () => {
      const { resources, order } = edgePatient();
      const mrd = mrdResult(0.4);
      expect(codeOf((await sign([...resources, mrd], order)).ext, 'pa-needed')).toBe('satisfied');
      order.reasonCode = [
        { coding: [{ system: SNOMED, code: '277575008', display: 'T-cell acute lymphoblastic leukemia' }] },
      ];
      const { ext } = await sign([...resources, mrd], order);
      expect(codeOf(ext, 'covered')).toBe('not-covered');
    });
  });

  describe('disease status and the order date its 90-day window counts from', () => {
    const oldStatus = (effective: string) =>
      replace(snomedOnly(), evidence('bc-status', 'disease-status', 'relapsed', effective));

    it.each([
      ['refractory', 'refractory', 'satisfied'],
      ['relapsed', 'relapsed', 'satisfied'],
    ])('a %s status Observation (evidence#disease-status) shows R/R disease', async (_name, value, want) => {
      const { ext } = await sign(
        replace(snomedOnly(), evidence('bc-status', 'disease-status', value)),
        blinatumomabOrder(),
      );
      expect(codeOf(ext, 'pa-needed')).toBe(want);
    });

    it('counts 90 days back from the planned start (boundsPeriod.start), not from authoredOn', async () => {
      // Status on 2026-08-20: 97 days before the planned start 2026-11-25, 82 days before authoredOn 2026-11-10.
      const order = { ...blinatumomabOrder(), authoredOn: '2026-11-10' };
      expect(codeOf((await sign(oldStatus('2026-08-20'), order)).ext, 'pa-needed')).toBe('auth-needed');
    });

    it('without a boundsPeriod, counts from dispenseRequest.validityPeriod.start, then from authoredOn', async () => {
      const base = blinatumomabOrder();
      const noBounds: MedicationRequest = {
        ...base,
        authoredOn: '2026-11-10',
        dosageInstruction: [{ ...base.dosageInstruction![0], timing: undefined }],
      };
      const fromValidity: MedicationRequest = {
        ...noBounds,
        dispenseRequest: { ...noBounds.dispenseRequest, validityPeriod: { start: '2026-11-25', end: '2027-02-25' } },
      };
      expect(codeOf((await sign(oldStatus('2026-08-20'), fromValidity)).ext, 'pa-needed')).toBe('auth-needed');
      expect(codeOf((await sign(oldStatus('2026-08-20'), noBounds)).ext, 'pa-needed')).toBe('satisfied');
    });
  });

  describe('prescriber specialty (Centene CP.PHAR.312 I.A.2)', () => {
    it('reads the specialty from the PractitionerRole the order names as requester when the user is a Practitioner', async () => {
      const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
      const { resources, order } = edgePatient();
      const role = resources.find((r) => r.resourceType === 'PractitionerRole')!;
      const practitioner = resources.find((r) => r.resourceType === 'Practitioner') as Practitioner;
      const record = [...resources.filter((r) => r.resourceType !== 'PractitionerRole'), mrdResult(0.4)];
      const ehr = fakeEhr([...record, role]);
      const body = orderSignRequest(record, order) as {
        context: Record<string, unknown>;
        prefetch: Record<string, unknown>;
      };
      body.context.userId = `Practitioner/${practitioner.id}`;
      body.prefetch.user = practitioner;
      const { app } = buildApp({
        today: TODAY,
        env: { CDS_AUTH: 'open', SANDBOX: 'off', NODE_ENV: 'development' },
        fetchImpl: ehr.fetchImpl,
      });
      const res = await request(app).post('/cds-services/priorpath-order-sign').send(body).expect(200);
      const ext = (res.body.systemActions[0].resource as MedicationRequest).extension!.find(
        (e) => e.url === COVERAGE_INFO,
      )!;
      expect(codeOf(ext, 'pa-needed')).toBe('satisfied');
    });
  });

  describe('Philadelphia chromosome and concurrent TKI (Centene CP.PHAR.312 I.A.4.b.i)', () => {
    // Ph+ B-ALL in first remission without an MRD result: only the Ph+ with-a-TKI pathway can approve.
    const phPositive = (ph: Observation, tki: MedicationRequest) => {
      const { resources, order } = edgePatient();
      order.extension = [{ url: PHASE_URL, valueCode: 'consolidation' }];
      return { record: [...resources, ph, tki], order };
    };
    const dasatinib = (patch: Partial<MedicationRequest> = {}): MedicationRequest => ({
      resourceType: 'MedicationRequest',
      id: 'edge-tki',
      status: 'active',
      intent: 'order',
      subject: { reference: 'Patient/edge-pt' },
      authoredOn: '2026-10-01',
      medicationCodeableConcept: { coding: [{ system: RXNORM, code: '475342', display: 'dasatinib' }] },
      ...patch,
    });
    const phStatus = {
      ...evidence('edge-ph', 'ph-status', 'positive', '2026-02-01'),
      subject: { reference: 'Patient/edge-pt' },
    };

    it('an active dasatinib order is concurrent TKI therapy (approved); the same order stopped is not', async () => {
      const active = phPositive(phStatus, dasatinib());
      expect(codeOf((await sign(active.record, active.order)).ext, 'pa-needed')).toBe('satisfied');
      const stopped = phPositive(phStatus, dasatinib({ status: 'stopped' }));
      expect(codeOf((await sign(stopped.record, stopped.order)).ext, 'pa-needed')).not.toBe('satisfied');
    });
  });

  describe('dose (Centene CP.PHAR.312 I.A.5.a: 28 mcg/day)', () => {
    const withDose = (quantity: NonNullable<MedicationRequest['dosageInstruction']>[0]) => {
      const { resources, order } = edgePatient();
      order.dosageInstruction = [quantity];
      return sign([...resources, mrdResult(0.4)], order);
    };
    const timing = { repeat: { boundsPeriod: { start: '2026-11-25' } } };

    it.each([
      ['UCUM ug/d', 'ug/d'],
      ['mcg/d (mcg accepted as ug)', 'mcg/d'],
    ])('35 %s exceeds the limit: auth-needed and a proposal at 28 mcg/day', async (_name, unitCode) => {
      const { ext, cards } = await withDose({
        timing,
        doseAndRate: [
          { doseQuantity: { value: 35, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: unitCode } },
        ],
      });
      expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
      const proposed = cards
        .flatMap((c) => c.suggestions ?? [])
        .flatMap((s) => s.actions)
        .map((a) => a.resource)
        .find((r) => r?.resourceType === 'MedicationRequest');
      expect(proposed?.dosageInstruction?.[0].doseAndRate?.[0].doseQuantity?.value).toBe(28);
    });

    it('28 mcg/d written with the mcg unit is within the limit and approved', async () => {
      const { ext } = await withDose({
        timing,
        doseAndRate: [
          { doseQuantity: { value: 28, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'mcg/d' } },
        ],
      });
      expect(codeOf(ext, 'pa-needed')).toBe('satisfied');
    });
  });

  describe('live vaccine in the last 2 weeks (OHSU HEALTHSERVICES-0382 Universal Criteria; Immunization, CVX, completed)', () => {
    const story = 'ohsu-live-vaccine';
    const signWith = (patch: Partial<Immunization>) => {
      const resources = storyResources(story).map((r) =>
        r.resourceType === 'Immunization' ? ({ ...r, ...patch } as Immunization) : r,
      );
      return signOne(resources, storyOrder(story), '2026-11-16');
    };

    it('a completed yellow fever vaccine (CVX 37) 6 days before the planned start is not covered (the story)', async () => {
      expect(codeOf((await signWith({})).ext, 'covered')).toBe('not-covered');
    });

    it.each<[string, Partial<Immunization>]>([
      [
        'recorded as not done',
        {
          status: 'not-done',
          statusReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'PATOBJ' }] },
        },
      ],
      ['entered in error', { status: 'entered-in-error' }],
      [
        'an inactivated vaccine (Shingrix, CVX 187)',
        {
          vaccineCode: {
            coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '187', display: 'zoster recombinant' }],
          },
        },
      ],
      ['given more than 2 weeks before the planned start', { occurrenceDateTime: '2026-10-20' }],
    ])('the same vaccine %s does not deny the order', async (_name, patch) => {
      expect(codeOf((await signWith(patch)).ext, 'covered')).toBe('covered');
    });
  });

  describe('weight, height and BSA (Centene CP.PHAR.312 I.A.5: the proposal at the labelled dose for the weight class)', () => {
    /** The edge patient as an 8-year-old of 30 kg and 130 cm, MRD-positive, ordered 35 mcg/day. */
    const child = (extra: Resource[], weightDate = '2026-11-16') => {
      const { resources, order } = edgePatient();
      const record = resources.map((r) =>
        r.resourceType === 'Patient'
          ? { ...r, birthDate: '2018-05-20' }
          : r.id === 'edge-weight'
            ? {
                ...r,
                effectiveDateTime: weightDate,
                valueQuantity: { value: 30, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
              }
            : r,
      );
      order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = 35;
      return signOne([...record, edgeMrd(0.4), ...extra], order, TODAY);
    };
    const height = observation(
      'edge-height',
      { system: 'http://loinc.org', code: '8302-2', display: 'Body height' },
      {
        subject: { reference: 'Patient/edge-pt' },
        valueQuantity: { value: 130, unit: 'cm', system: 'http://unitsofmeasure.org', code: 'cm' },
      },
      '2026-11-16',
    );
    const proposedUgPerDay = (cards: Parameters<typeof proposedOrders>[0]) => {
      const q = proposedOrders(cards)[0]?.dosageInstruction?.[0].doseAndRate?.[0].doseQuantity;
      return q?.code === 'ug/d' ? q.value : undefined;
    };

    it('computes BSA from weight and height (Mosteller, 1.04 m²) when none is recorded: 15 mcg/m²/day is 15.6 mcg/day', async () => {
      const { ext, cards } = await child([height]);
      expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
      expect(proposedUgPerDay(cards)).toBeCloseTo(15.6, 1);
    });

    it('uses a recorded BSA (LOINC 8277-6, 1.2 m²) over the computed one: 18 mcg/day', async () => {
      const bsa = observation(
        'edge-bsa',
        { system: 'http://loinc.org', code: '8277-6', display: 'Body surface area' },
        {
          subject: { reference: 'Patient/edge-pt' },
          valueQuantity: { value: 1.2, unit: 'm2', system: 'http://unitsofmeasure.org', code: 'm2' },
        },
        '2026-11-16',
      );
      const { cards } = await child([height, bsa]);
      expect(proposedUgPerDay(cards)).toBeCloseTo(18, 1);
    });

    it('a weight older than 30 days is unknown: no weight class, so no dose is proposed', async () => {
      const { ext, cards } = await child([{ ...height, effectiveDateTime: '2026-09-01' }], '2026-09-01');
      expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
      expect(proposedOrders(cards)).toEqual([]);
    });
  });

  describe('KMT2A rearrangement (Centene CP.PHAR.312 I.A.4.e, infant ALL): evidence#kmt2a-status or LOINC 72313-0 above 0', () => {
    // The OHSU infant story (KMT2A::AFF1 infant ALL on an Interfant regimen) as a Centene member.
    const story = 'ohsu-infant-kmt2a';
    const reasonWithout = async (...ids: string[]) => {
      const record = storyResources(story)
        .filter((r) => !ids.includes(r.id ?? ''))
        .map((r) =>
          r.resourceType === 'Coverage'
            ? ({
                ...r,
                payor: [{ identifier: { system: 'https://priorpath.dev/fhir/sid/payer', value: 'centene' } }],
              } as Resource)
            : r,
        );
      const { ext } = await signOne(record, storyOrder(story), '2026-11-16');
      expect(codeOf(ext, 'pa-needed')).toBe('satisfied');
      return reasonText(ext);
    };

    it('the KMT2A::AFF1 ratio (LOINC 72313-0) alone shows the rearrangement the infant pathway needs; without any KMT2A result another pathway approves', async () => {
      expect(await reasonWithout('ohsu-infant-kmt2a-kmt2a')).toMatch(/I\.A\.4\.e/);
      expect(await reasonWithout('ohsu-infant-kmt2a-kmt2a', 'ohsu-infant-kmt2a-kmt2a-aff1')).not.toMatch(/I\.A\.4\.e/);
    });
  });
});
