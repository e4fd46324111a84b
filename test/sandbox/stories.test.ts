import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  Bundle,
  Coding,
  Condition,
  Coverage,
  Immunization,
  MedicationRequest,
  Observation,
  Organization,
  Patient,
  Practitioner,
  PractitionerRole,
  Quantity,
  Resource,
} from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { STORY_EXTENSIONS } from '../../src/sandbox/sandbox-bundles.js';

const dir = join(import.meta.dirname, '..', '..', 'sandbox');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();
const stories = files.map((f) => ({ file: f, bundle: JSON.parse(readFileSync(join(dir, f), 'utf8')) as Bundle }));

const SYS = {
  rxnorm: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  hcpcs: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
  ndc: 'http://hl7.org/fhir/sid/ndc',
  icd10: 'http://hl7.org/fhir/sid/icd-10-cm',
  sct: 'http://snomed.info/sct',
  loinc: 'http://loinc.org',
  cvx: 'http://hl7.org/fhir/sid/cvx',
  nucc: 'http://nucc.org/provider-taxonomy',
  ucum: 'http://unitsofmeasure.org',
  npi: 'http://hl7.org/fhir/sid/us-npi',
  evidence: 'https://priorpath.dev/fhir/CodeSystem/evidence',
  payer: 'https://priorpath.dev/fhir/sid/payer',
  clinical: 'http://terminology.hl7.org/CodeSystem/condition-clinical',
  verification: 'http://terminology.hl7.org/CodeSystem/condition-ver-status',
  obsCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
};
const PHASE_EXT = 'https://priorpath.dev/fhir/StructureDefinition/treatment-phase';
const PAYER_KEYS = ['bcbsnc', 'centene', 'mmm', 'ohsu'];
const DAY = 86_400_000;

const resourcesOf = (b: Bundle): Resource[] => (b.entry ?? []).map((e) => e.resource!).filter(Boolean);
const ofType = <T extends Resource>(b: Bundle, type: T['resourceType']) =>
  resourcesOf(b).filter((r): r is T => r.resourceType === type);
const ext = (b: Bundle, url: string) => b.meta?.extension?.find((e) => e.url === url);
const day = (s: string) => Date.parse(s.slice(0, 10) + 'T00:00:00Z');
const codes = (c: { coding?: Coding[] } | undefined, system: string) =>
  (c?.coding ?? []).filter((x) => x.system === system).map((x) => x.code);
const evidenceObs = (b: Bundle, code: string) =>
  ofType<Observation>(b, 'Observation').filter((o) => codes(o.code, SYS.evidence).includes(code));
const loincObs = (b: Bundle, code: string) =>
  ofType<Observation>(b, 'Observation').filter((o) => codes(o.code, SYS.loinc).includes(code));
const orderOf = (b: Bundle) => ofType<MedicationRequest>(b, 'MedicationRequest').find((m) => m.id === `${b.id}-order`)!;
const plannedStart = (b: Bundle) => orderOf(b).dosageInstruction![0].timing!.repeat!.boundsPeriod!.start!;

/** Every `reference` string anywhere in a value. */
function references(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => references(v, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else references(v, out);
    }
  }
  return out;
}

/** Every Coding and Quantity (objects with a `system`) anywhere in a value, with the path to it. */
function systems(
  value: unknown,
  path = '',
  out: { path: string; system: string }[] = [],
): { path: string; system: string }[] {
  if (Array.isArray(value)) value.forEach((v, i) => systems(v, `${path}[${i}]`, out));
  else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.system === 'string' && ('code' in o || 'value' in o)) out.push({ path, system: o.system });
    for (const [k, v] of Object.entries(o)) systems(v, path ? `${path}.${k}` : k, out);
  }
  return out;
}

function npiValid(npi: string): boolean {
  if (!/^\d{10}$/.test(npi)) return false;
  const digits = ('80840' + npi).split('').map(Number);
  let sum = 0;
  for (let i = digits.length - 1, dbl = false; i >= 0; i--, dbl = !dbl) {
    let d = digits[i];
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function ageAt(birthDate: string, on: string): { years: number; months: number } {
  const [by, bm, bd] = birthDate.split('-').map(Number);
  const [y, m, d] = on.slice(0, 10).split('-').map(Number);
  const months = (y - by) * 12 + (m - bm) - (d < bd ? 1 : 0);
  return { years: Math.floor(months / 12), months };
}

const KNOWN_SYSTEMS = new Set([
  ...Object.values(SYS),
  'http://terminology.hl7.org/CodeSystem/condition-category',
  'http://terminology.hl7.org/CodeSystem/v2-0203',
  'http://terminology.hl7.org/CodeSystem/v3-ActCode',
  'http://terminology.hl7.org/CodeSystem/v3-RoleCode',
  'http://terminology.hl7.org/CodeSystem/subscriber-relationship',
  'http://terminology.hl7.org/CodeSystem/coverage-class',
  'http://terminology.hl7.org/CodeSystem/organization-type',
  'http://terminology.hl7.org/CodeSystem/practitioner-role',
  'http://terminology.hl7.org/CodeSystem/dose-rate-type',
  'http://terminology.hl7.org/CodeSystem/medicationrequest-category',
  'urn:ietf:bcp:47',
  'phone',
]);

describe('sandbox stories', () => {
  it('has at least the eleven stories of the brief, one file each, named by Bundle.id', () => {
    const ids = stories.map((s) => s.bundle.id);
    expect(ids).toEqual(stories.map((s) => s.file.replace(/\.json$/, '')));
    for (const id of [
      'bcbsnc-relapsed-adult',
      'centene-mrd-positive',
      'centene-missing-mrd',
      'mmm-ph-positive-tki',
      'mmm-dlbcl-offlabel',
      'ohsu-infant-kmt2a',
      'ohsu-live-vaccine',
      'centene-pediatric-consolidation',
      'bcbsnc-inotuzumab-relapsed',
      'centene-over-dose',
      'bcbsnc-t-all',
    ]) {
      expect(ids).toContain(id);
    }
  });

  it('ids that two stories share (the payer Organizations) are identical copies; every other id is unique', () => {
    const seen = new Map<string, { story: string; json: string }>();
    for (const { bundle } of stories) {
      for (const r of resourcesOf(bundle)) {
        const key = `${r.resourceType}/${r.id}`;
        const prev = seen.get(key);
        if (prev) {
          expect(key, `${key} in ${prev.story} and ${bundle.id}`).toMatch(/^Organization\/payer-/);
          expect(JSON.stringify(r), `${key} differs between ${prev.story} and ${bundle.id}`).toBe(prev.json);
        } else seen.set(key, { story: bundle.id!, json: JSON.stringify(r) });
      }
    }
  });

  describe.each(stories.map((s) => [s.bundle.id!, s.bundle] as const))('%s', (id, bundle) => {
    const resources = resourcesOf(bundle);
    const byRef = new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, r]));

    it('is a transaction of client-id PUTs that HAPI and Medplum both accept', () => {
      expect(bundle.resourceType).toBe('Bundle');
      expect(bundle.type).toBe('transaction');
      // Medplum's processBatch refuses more than 50 updates in one transaction
      expect(bundle.entry!.length).toBeLessThanOrEqual(50);
      for (const e of bundle.entry!) {
        const r = e.resource!;
        expect(e.request).toEqual({ method: 'PUT', url: `${r.resourceType}/${r.id}` });
        // HAPI: [A-Za-z0-9-.]{1,64}, not all digits (client_id_strategy ALPHANUMERIC)
        expect(r.id).toMatch(/^(?=.*[A-Za-z])[A-Za-z0-9.-]{1,64}$/);
        if (!(r.resourceType === 'Organization' && r.id!.startsWith('payer-')) && !(r.resourceType === 'Patient')) {
          expect(r.id!.startsWith(`${id}-`), `${r.resourceType}/${r.id} is prefixed by the story id`).toBe(true);
        }
      }
      expect(ofType<Patient>(bundle, 'Patient').map((p) => p.id)).toEqual([id]);
    });

    it('carries its anchor date, story line and expected outcome', () => {
      expect(ext(bundle, STORY_EXTENSIONS.anchor)?.valueDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(ext(bundle, STORY_EXTENSIONS.story)?.valueString?.length).toBeGreaterThan(20);
      expect(ext(bundle, STORY_EXTENSIONS.expected)?.valueString).toMatch(
        /^(bcbsnc|centene|mmm|ohsu)-(blinatumomab|inotuzumab): (satisfied|auth-needed|not-covered)\b/,
      );
    });

    it('references only resources of the same story', () => {
      const refs = references(resources);
      expect(refs.length).toBeGreaterThan(10);
      for (const ref of refs) expect(byRef.has(ref), `${id}: ${ref} resolves`).toBe(true);
    });

    it('codes with known system URIs, in the conventions of design.md §6', () => {
      for (const r of resources) {
        for (const s of systems(r)) {
          // identifiers the sandbox EHR assigns (MRN, member ids) live under its own namespace
          const known = KNOWN_SYSTEMS.has(s.system) || s.system.startsWith('https://sandbox.priorpath.dev/fhir/sid/');
          expect(known, `${r.resourceType}/${r.id} ${s.path}: ${s.system}`).toBe(true);
        }
      }
      for (const c of ofType<Condition>(bundle, 'Condition')) {
        expect(codes(c.clinicalStatus, SYS.clinical)[0]).toMatch(/^(active|recurrence|relapse|remission)$/);
        expect(codes(c.verificationStatus, SYS.verification)).toEqual(['confirmed']);
        expect(codes(c.code, SYS.icd10).length + codes(c.code, SYS.sct).length).toBeGreaterThan(0);
        expect(c.onsetDateTime).toBeTruthy();
      }
      for (const o of ofType<Observation>(bundle, 'Observation')) {
        expect(o.status).toBe('final');
        expect(codes(o.category?.[0], SYS.obsCategory)[0]).toMatch(/^(laboratory|vital-signs)$/);
        expect(o.effectiveDateTime).toMatch(/^\d{4}-\d{2}-\d{2}T/);
        expect(o.subject?.reference).toBe(`Patient/${id}`);
        const q = o.valueQuantity;
        if (q) expect(q.system).toBe(SYS.ucum);
        if (codes(o.code, SYS.evidence).length) {
          const [code] = codes(o.code, SYS.evidence);
          if (code === 'mrd') expect(q?.code).toBe('%');
          else expect(codes(o.valueCodeableConcept, SYS.evidence).length).toBe(1);
        }
        const loinc = codes(o.code, SYS.loinc)[0];
        if (loinc)
          expect(
            { '29463-7': 'kg', '8302-2': 'cm', '8277-6': 'm2', '50195-7': '{log_ratio}', '72313-0': '{ratio}' }[loinc],
          ).toBe(q?.code);
      }
      for (const m of ofType<MedicationRequest>(bundle, 'MedicationRequest').filter((x) => x.id !== `${id}-order`)) {
        expect(codes(m.medicationCodeableConcept, SYS.rxnorm).length).toBe(1);
        expect(m.status).toMatch(/^(active|completed)$/);
      }
      for (const i of ofType<Immunization>(bundle, 'Immunization')) {
        expect(i.status).toBe('completed');
        expect(codes(i.vaccineCode, SYS.cvx).length).toBe(1);
        expect(i.occurrenceDateTime).toBeTruthy();
      }
    });

    it('has an active Coverage naming the payer the way §4 identifies it, and the payer Organization', () => {
      const coverages = ofType<Coverage>(bundle, 'Coverage');
      expect(coverages).toHaveLength(1);
      const cov = coverages[0];
      expect(cov.status).toBe('active');
      expect(cov.beneficiary.reference).toBe(`Patient/${id}`);
      expect(cov.subscriber?.reference).toBeTruthy();
      expect(cov.subscriberId).toBeTruthy();
      expect(
        cov.class?.some((c) => codes(c.type, 'http://terminology.hl7.org/CodeSystem/coverage-class').includes('plan')),
      ).toBe(true);
      const payor = cov.payor[0];
      const key = payor.identifier?.value ?? '';
      expect(PAYER_KEYS).toContain(key);
      expect(payor.identifier?.system).toBe(SYS.payer);
      expect(payor.reference).toBe(`Organization/payer-${key}`);
      expect(id.startsWith(`${key}-`)).toBe(true);
      const org = byRef.get(`Organization/payer-${key}`) as Organization;
      expect(org.identifier).toContainEqual({ system: SYS.payer, value: key });
      expect(org.name).toBeTruthy();
    });

    it('has a prescriber with a valid NPI and a NUCC specialty', () => {
      const order = orderOf(bundle);
      const role = byRef.get(order.requester!.reference!) as PractitionerRole;
      expect(role.resourceType).toBe('PractitionerRole');
      expect(codes(role.specialty?.[0], SYS.nucc)[0]).toMatch(/^(207RH0003X|207RX0202X|207RH0000X|2080P0207X)$/);
      expect(role.specialty?.[0].coding?.[0].display).toBeTruthy();
      const practitioner = byRef.get(role.practitioner!.reference!) as Practitioner;
      const npi = practitioner.identifier?.find((i) => i.system === SYS.npi)?.value ?? '';
      expect(npiValid(npi), `NPI ${npi}`).toBe(true);
    });

    it('has one draft order with everything the CRD flow reads', () => {
      const drafts = ofType<MedicationRequest>(bundle, 'MedicationRequest').filter((m) => m.status === 'draft');
      expect(drafts.map((d) => d.id)).toEqual([`${id}-order`]);
      const o = drafts[0];
      expect(o.intent).toBe('order');
      const rx = codes(o.medicationCodeableConcept, SYS.rxnorm);
      const besponsa = rx.includes('1942954');
      expect(besponsa || rx.includes('1597262')).toBe(true);
      const hcpcs = codes(o.medicationCodeableConcept, SYS.hcpcs);
      if (besponsa) expect(hcpcs).toEqual(['J9229']);
      else expect(hcpcs.every((c) => c === 'J9039')).toBe(true);
      expect(byRef.get(o.subject.reference!)?.resourceType).toBe('Patient');
      expect(byRef.get(o.requester!.reference!)?.resourceType).toBe('PractitionerRole');
      expect(byRef.get(o.insurance![0].reference!)?.resourceType).toBe('Coverage');
      expect(byRef.get(o.reasonReference![0].reference!)?.resourceType).toBe('Condition');
      expect(o.authoredOn).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[-+]\d{2}:\d{2}$/);
      const anchor = ext(bundle, STORY_EXTENSIONS.anchor)!.valueDate!;
      const start = plannedStart(bundle);
      const lead = (day(start) - day(anchor)) / DAY;
      expect(lead, 'planned start a few days after the anchor').toBeGreaterThanOrEqual(1);
      expect(lead).toBeLessThanOrEqual(14);
      const dose = o.dosageInstruction![0].doseAndRate![0].doseQuantity as Quantity;
      expect(dose.system).toBe(SYS.ucum);
      expect(typeof dose.value).toBe('number');
      expect(besponsa ? ['mg/m2'] : ['ug/d', 'ug/m2/d']).toContain(dose.code);
      expect(dose.unit).toBe({ 'ug/d': 'mcg/d', 'ug/m2/d': 'mcg/m2/d', 'mg/m2': 'mg/m2' }[dose.code!]);
      expect(Number.isInteger(o.dispenseRequest?.numberOfRepeatsAllowed)).toBe(true);
      expect(o.dispenseRequest!.validityPeriod!.start).toBe(start);
      expect(day(o.dispenseRequest!.validityPeriod!.end!)).toBeGreaterThan(day(start));
      expect(o.extension?.find((e) => e.url === PHASE_EXT)?.valueCode).toMatch(
        /^(induction|consolidation|maintenance|continued)$/,
      );
    });

    it('dates its findings inside the recency windows of §6 and before the order', () => {
      const start = day(plannedStart(bundle));
      const authored = Date.parse(orderOf(bundle).authoredOn!);
      for (const o of ofType<Observation>(bundle, 'Observation'))
        expect(Date.parse(o.effectiveDateTime!), `${o.id} is in the past`).toBeLessThan(authored);
      for (const code of ['disease-status', 'mrd', 'cd19-status']) {
        for (const o of evidenceObs(bundle, code))
          expect((start - day(o.effectiveDateTime!)) / DAY, `${o.id} within 90 days`).toBeLessThanOrEqual(90);
      }
      for (const code of ['29463-7', '8302-2', '8277-6']) {
        for (const o of loincObs(bundle, code))
          expect((start - day(o.effectiveDateTime!)) / DAY, `${o.id} within 30 days`).toBeLessThanOrEqual(30);
      }
      const bsa = loincObs(bundle, '8277-6')[0]?.valueQuantity?.value;
      const w = loincObs(bundle, '29463-7')[0]?.valueQuantity?.value;
      const h = loincObs(bundle, '8302-2')[0]?.valueQuantity?.value;
      if (bsa !== undefined && w !== undefined && h !== undefined)
        expect(bsa).toBeCloseTo(Math.sqrt((w * h) / 3600), 2);
    });
  });

  it('varies the order codings: SBD and HCPCS in some stories, an NDC in exactly one', () => {
    const orders = stories.map((s) => orderOf(s.bundle));
    expect(
      orders.filter((o) => codes(o.medicationCodeableConcept, SYS.rxnorm).includes('1597267')).length,
    ).toBeGreaterThanOrEqual(2);
    expect(
      orders.filter((o) => codes(o.medicationCodeableConcept, SYS.hcpcs).includes('J9039')).length,
    ).toBeGreaterThanOrEqual(2);
    expect(orders.filter((o) => codes(o.medicationCodeableConcept, SYS.ndc).includes('55513016001'))).toHaveLength(1);
  });
});

/** The clinical facts each story of the brief promises (what the policies will read). */
interface Promise_ {
  payer: string;
  age: { years?: number; months?: number };
  icd?: string;
  snomed?: string;
  evidence?: Record<string, string | null>;
  mrd?: number | null;
  weightKg: number;
  heightCm?: number;
  bsa?: number;
  specialty: string;
  dose: [number, string];
  phase: string;
  expected: string;
}

const PROMISES: Record<string, Promise_> = {
  'bcbsnc-relapsed-adult': {
    payer: 'bcbsnc',
    age: { years: 52 },
    icd: 'C91.02',
    snomed: '277571004',
    evidence: { 'disease-status': 'relapsed', 'cd19-status': 'positive', 'ph-status': 'negative' },
    weightKg: 81,
    heightCm: 178,
    specialty: '207RH0003X',
    dose: [9, 'ug/d'],
    phase: 'induction',
    expected: 'satisfied',
  },
  'centene-mrd-positive': {
    payer: 'centene',
    age: { years: 34 },
    icd: 'C91.01',
    snomed: '277571004',
    evidence: { 'disease-status': 'cr1', 'cd19-status': 'positive', 'ph-status': 'negative' },
    mrd: 0.4,
    weightKg: 70,
    specialty: '207RX0202X',
    dose: [28, 'ug/d'],
    phase: 'induction',
    expected: 'satisfied',
  },
  'centene-missing-mrd': {
    payer: 'centene',
    age: { years: 41 },
    icd: 'C91.01',
    snomed: '277571004',
    evidence: { 'disease-status': 'cr1', 'cd19-status': 'positive' },
    mrd: null,
    weightKg: 66,
    specialty: '207RH0003X',
    dose: [28, 'ug/d'],
    phase: 'induction',
    expected: 'auth-needed',
  },
  'mmm-ph-positive-tki': {
    payer: 'mmm',
    age: { years: 63 },
    snomed: '277571004',
    evidence: { 'ph-status': 'positive', 'disease-status': 'relapsed', 'cd19-status': 'positive' },
    weightKg: 74,
    specialty: '207RH0003X',
    dose: [9, 'ug/d'],
    phase: 'induction',
    expected: 'satisfied',
  },
  'mmm-dlbcl-offlabel': {
    payer: 'mmm',
    age: { years: 58 },
    icd: 'C83.38',
    snomed: undefined,
    weightKg: 63,
    specialty: '207RH0003X',
    dose: [28, 'ug/d'],
    phase: 'induction',
    expected: 'not-covered',
  },
  'ohsu-infant-kmt2a': {
    payer: 'ohsu',
    age: { months: 4 },
    snomed: '277571004',
    evidence: { 'kmt2a-status': 'rearranged', 'cd19-status': 'positive' },
    weightKg: 6.4,
    heightCm: 63,
    bsa: 0.33,
    specialty: '2080P0207X',
    dose: [15, 'ug/m2/d'],
    phase: 'consolidation',
    expected: 'auth-needed',
  },
  'ohsu-live-vaccine': {
    payer: 'ohsu',
    age: { years: 29 },
    snomed: '277571004',
    evidence: { 'disease-status': 'relapsed', 'cd19-status': 'positive' },
    weightKg: 68,
    specialty: '207RH0000X',
    dose: [9, 'ug/d'],
    phase: 'induction',
    expected: 'not-covered',
  },
  'centene-pediatric-consolidation': {
    payer: 'centene',
    age: { years: 8 },
    snomed: '277571004',
    evidence: { 'ph-status': 'negative', 'cd19-status': 'positive' },
    weightKg: 26,
    heightCm: 128,
    bsa: 0.96,
    specialty: '2080P0207X',
    dose: [15, 'ug/m2/d'],
    phase: 'consolidation',
    expected: 'satisfied',
  },
  'bcbsnc-inotuzumab-relapsed': {
    payer: 'bcbsnc',
    age: { years: 47 },
    icd: 'C91.00',
    snomed: '277571004',
    evidence: { 'disease-status': 'refractory', 'cd19-status': 'positive' },
    weightKg: 80,
    heightCm: 170,
    specialty: '207RX0202X',
    dose: [0.8, 'mg/m2'],
    phase: 'induction',
    expected: 'satisfied',
  },
  'centene-over-dose': {
    payer: 'centene',
    age: { years: 45 },
    snomed: '277571004',
    evidence: { 'disease-status': 'relapsed', 'ph-status': 'negative', 'cd19-status': 'positive' },
    weightKg: 90,
    specialty: '207RH0003X',
    dose: [56, 'ug/d'],
    phase: 'induction',
    expected: 'auth-needed',
  },
  'bcbsnc-t-all': {
    payer: 'bcbsnc',
    age: { years: 19 },
    icd: 'C91.00',
    snomed: '277575008',
    weightKg: 72,
    specialty: '207RH0003X',
    dose: [9, 'ug/d'],
    phase: 'induction',
    // design.md §6 "Clinical readings": BCBSNC asks about label/compendia support for another cancer.
    expected: 'auth-needed',
  },
};

describe.each(Object.entries(PROMISES))('story %s tells what the brief asks', (id, p) => {
  const bundle = stories.find((s) => s.bundle.id === id)!.bundle;
  const order = orderOf(bundle);
  const anchor = ext(bundle, STORY_EXTENSIONS.anchor)!.valueDate!;

  it('patient, payer, diagnosis, findings, prescriber, order and expected outcome', () => {
    const patient = ofType<Patient>(bundle, 'Patient')[0];
    const age = ageAt(patient.birthDate!, anchor);
    if (p.age.years !== undefined) expect(age.years).toBe(p.age.years);
    if (p.age.months !== undefined) expect(age.months).toBe(p.age.months);
    expect(ofType<Coverage>(bundle, 'Coverage')[0].payor[0].identifier?.value).toBe(p.payer);
    const dx = ofType<Condition>(bundle, 'Condition')[0];
    if (p.icd) expect(codes(dx.code, SYS.icd10)).toEqual([p.icd]);
    expect(codes(dx.code, SYS.sct)).toEqual(p.snomed ? [p.snomed] : []);
    for (const [code, value] of Object.entries(p.evidence ?? {})) {
      expect(
        evidenceObs(bundle, code).map((o) => codes(o.valueCodeableConcept, SYS.evidence)[0]),
        `${id} ${code}`,
      ).toEqual(value === null ? [] : [value]);
    }
    if (p.mrd !== undefined)
      expect(evidenceObs(bundle, 'mrd').map((o) => o.valueQuantity?.value)).toEqual(p.mrd === null ? [] : [p.mrd]);
    expect(loincObs(bundle, '29463-7').map((o) => o.valueQuantity?.value)).toEqual([p.weightKg]);
    if (p.heightCm) expect(loincObs(bundle, '8302-2').map((o) => o.valueQuantity?.value)).toEqual([p.heightCm]);
    if (p.bsa) expect(loincObs(bundle, '8277-6').map((o) => o.valueQuantity?.value)).toEqual([p.bsa]);
    const role = ofType<PractitionerRole>(bundle, 'PractitionerRole')[0];
    expect(codes(role.specialty?.[0], SYS.nucc)).toEqual([p.specialty]);
    const dose = order.dosageInstruction![0].doseAndRate![0].doseQuantity!;
    expect([dose.value, dose.code]).toEqual(p.dose);
    expect(order.extension?.find((e) => e.url === PHASE_EXT)?.valueCode).toBe(p.phase);
    expect(ext(bundle, STORY_EXTENSIONS.expected)?.valueString).toContain(`: ${p.expected}`);
  });
});

describe('story-specific evidence', () => {
  const get = (id: string) => stories.find((s) => s.bundle.id === id)!.bundle;

  it('mmm-ph-positive-tki: BCR-ABL1 result above 0 and an active dasatinib order', () => {
    const b = get('mmm-ph-positive-tki');
    expect(loincObs(b, '50195-7')[0].valueQuantity!.value).toBeGreaterThan(0);
    const tki = ofType<MedicationRequest>(b, 'MedicationRequest').filter((m) =>
      codes(m.medicationCodeableConcept, SYS.rxnorm).includes('475342'),
    );
    expect(tki.map((m) => m.status)).toEqual(['active']);
  });

  it('ohsu-infant-kmt2a: the four Interfant drugs are active', () => {
    const b = get('ohsu-infant-kmt2a');
    const active = ofType<MedicationRequest>(b, 'MedicationRequest')
      .filter((m) => m.status === 'active')
      .flatMap((m) => codes(m.medicationCodeableConcept, SYS.rxnorm));
    expect(active.sort()).toEqual(['11202', '3041', '6851', '8640']);
  });

  it('ohsu-live-vaccine: yellow fever (CVX 37) 6 days before the planned start', () => {
    const b = get('ohsu-live-vaccine');
    const yf = ofType<Immunization>(b, 'Immunization').filter((i) => codes(i.vaccineCode, SYS.cvx).includes('37'));
    expect(yf).toHaveLength(1);
    expect((day(plannedStart(b)) - day(yf[0].occurrenceDateTime!)) / DAY).toBe(6);
  });

  it('live vaccines elsewhere are long before the planned start (history, not a recent vaccine)', () => {
    const live = [
      '02',
      '03',
      '04',
      '05',
      '06',
      '07',
      '19',
      '21',
      '25',
      '37',
      '38',
      '94',
      '111',
      '116',
      '119',
      '121',
      '149',
      '183',
      '184',
    ];
    for (const { bundle } of stories.filter((s) => s.bundle.id !== 'ohsu-live-vaccine')) {
      for (const i of ofType<Immunization>(bundle, 'Immunization').filter((x) =>
        live.includes(codes(x.vaccineCode, SYS.cvx)[0] ?? ''),
      )) {
        expect((day(plannedStart(bundle)) - day(i.occurrenceDateTime!)) / DAY).toBeGreaterThan(14);
      }
    }
  });

  it('centene-over-dose: 56 mcg/day for a 90 kg adult (twice the 28 mcg/day limit)', () => {
    const o = orderOf(get('centene-over-dose'));
    expect(o.dosageInstruction![0].doseAndRate![0].doseQuantity).toMatchObject({ value: 56, code: 'ug/d' });
  });

  it('bcbsnc-inotuzumab-relapsed: Besponsa with J9229 at 0.8 mg/m2', () => {
    const o = orderOf(get('bcbsnc-inotuzumab-relapsed'));
    expect(codes(o.medicationCodeableConcept, SYS.rxnorm)).toEqual(['1942954']);
    expect(codes(o.medicationCodeableConcept, SYS.hcpcs)).toEqual(['J9229']);
  });
});
