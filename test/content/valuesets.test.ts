/**
 * Content checks for the terminology, discovery and payer data under cds-services/.
 * Value sets: FHIR R4 ValueSet with a local expansion (design.md §4 "Governed orders": no terminology server).
 * Discovery: CDS Hooks 2.0 §Discovery and CRD 2.2 deviations.md [dev-1 .. dev-9]; ids and prefetch per design.md §4.
 * Payers: design.md §4 "Payer".
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../../cds-services/', import.meta.url));
const valuesetDir = join(root, 'valuesets');
const serviceDir = join(root, 'services');
const payerDir = join(root, 'payers');

const BASE = 'https://priorpath.dev/fhir';
const EVIDENCE = `${BASE}/CodeSystem/evidence`;
const NDC = 'http://hl7.org/fhir/sid/ndc';
const ALLOWED_SYSTEMS = new Set([
  'http://www.nlm.nih.gov/research/umls/rxnorm',
  'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
  NDC,
  'http://hl7.org/fhir/sid/icd-10-cm',
  'http://snomed.info/sct',
  'http://loinc.org',
  'http://hl7.org/fhir/sid/cvx',
  'http://nucc.org/provider-taxonomy',
  'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
  EVIDENCE,
]);

interface Coding {
  system: string;
  code: string;
  display?: string;
}
interface ValueSet {
  resourceType: 'ValueSet';
  id: string;
  url: string;
  version: string;
  name: string;
  title: string;
  status: string;
  description: string;
  compose: { include: { system: string; concept?: { code: string; display?: string }[] }[] };
  expansion: { timestamp: string; total: number; contains: Coding[] };
}
interface CodeSystem {
  resourceType: 'CodeSystem';
  id: string;
  url: string;
  content: string;
  count: number;
  concept: { code: string; display: string; definition: string }[];
}

function readJson(file: string): { resourceType: string } & Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as { resourceType: string } & Record<string, unknown>;
}

const jsonFiles = readdirSync(valuesetDir).filter((f) => f.endsWith('.json'));
const resources = jsonFiles.map((f) => ({ file: f, resource: readJson(join(valuesetDir, f)) }));
const valueSets = resources
  .filter((r) => r.resource.resourceType === 'ValueSet')
  .map((r) => ({ file: r.file, vs: r.resource as unknown as ValueSet }));
const codeSystems = resources.filter((r) => r.resource.resourceType === 'CodeSystem');
const byId = new Map(valueSets.map(({ vs }) => [vs.id, vs]));
const key = (c: Coding): string => `${c.system}|${c.code}`;
const codesOf = (id: string): string[] => (byId.get(id)?.expansion.contains ?? []).map((c) => c.code);

const REQUIRED_VALUE_SETS = [
  'blinatumomab',
  'inotuzumab',
  'b-all-snomed',
  'all-icd10',
  'lymphoblastic-lymphoma-icd10',
  't-all',
  'dlbcl',
  'tki',
  'pomp',
  'interfant-regimen',
  'mini-hyper-cvd',
  'multiagent-chemotherapy',
  'systemic-antineoplastics',
  'live-vaccines-cvx',
  'oncology-hematology-specialties',
  'bcr-abl1-loinc',
  'kmt2a-loinc',
  'disease-status',
  'ph-status',
  'cd19-status',
  'kmt2a-status',
  'treatment-phase',
  'evidence-observation-codes',
];

describe('value set files', () => {
  it('holds only ValueSets and the one evidence CodeSystem', () => {
    expect(valueSets.length + codeSystems.length).toBe(resources.length);
    expect(codeSystems.map((r) => r.file)).toEqual(['evidence-codesystem.json']);
  });

  it('has every value set the policies rely on', () => {
    for (const id of REQUIRED_VALUE_SETS) expect(byId.has(id), id).toBe(true);
  });

  describe.each(valueSets)('$file', ({ file, vs }) => {
    it('has id = file name and url = canonical base + id', () => {
      expect(vs.id).toBe(basename(file, '.json'));
      expect(vs.url).toBe(`${BASE}/ValueSet/${vs.id}`);
    });

    it('has the release metadata', () => {
      expect(vs.version).toBe('2026-11');
      expect(vs.status).toBe('active');
      expect(vs.name).toMatch(/^[A-Z][A-Za-z0-9]*$/);
      expect(vs.title.length).toBeGreaterThan(0);
      expect(vs.description.length).toBeGreaterThan(40);
    });

    it('has an expansion whose total equals its contains', () => {
      expect(Number.isNaN(Date.parse(vs.expansion.timestamp))).toBe(false);
      expect(vs.expansion.contains.length).toBeGreaterThan(0);
      expect(vs.expansion.total).toBe(vs.expansion.contains.length);
    });

    it('lists no code twice', () => {
      const keys = vs.expansion.contains.map(key);
      expect(new Set(keys).size).toBe(keys.length);
    });

    it('uses only the allowed code systems, each code with a display', () => {
      for (const c of vs.expansion.contains) {
        expect(ALLOWED_SYSTEMS.has(c.system), `${c.system}|${c.code}`).toBe(true);
        expect(c.code).toMatch(/^\S+$/);
        expect(c.display?.length ?? 0, `${c.code} display`).toBeGreaterThan(0);
      }
    });

    it('writes NDCs in 11-digit form without hyphens', () => {
      for (const c of vs.expansion.contains.filter((x) => x.system === NDC)) expect(c.code).toMatch(/^\d{11}$/);
    });

    it('has a compose that lists exactly the expansion', () => {
      const composed = vs.compose.include.flatMap((inc) =>
        (inc.concept ?? []).map((cc) => ({ system: inc.system, code: cc.code, display: cc.display })),
      );
      expect(composed.map(key).sort()).toEqual(vs.expansion.contains.map(key).sort());
      for (const inc of vs.compose.include) expect(ALLOWED_SYSTEMS.has(inc.system)).toBe(true);
    });
  });
});

describe('evidence CodeSystem', () => {
  const cs = codeSystems[0]?.resource as unknown as CodeSystem;

  it('is the complete local evidence code system', () => {
    expect(cs.id).toBe('evidence');
    expect(cs.url).toBe(EVIDENCE);
    expect(cs.content).toBe('complete');
    expect(cs.count).toBe(cs.concept.length);
    expect(new Set(cs.concept.map((c) => c.code)).size).toBe(cs.concept.length);
    for (const c of cs.concept) expect(c.definition.length, c.code).toBeGreaterThan(10);
  });

  it('defines every evidence code a value set uses, with the same display', () => {
    const defined = new Map(cs.concept.map((c) => [c.code, c.display]));
    for (const { vs } of valueSets) {
      for (const c of vs.expansion.contains.filter((x) => x.system === EVIDENCE)) {
        expect(defined.get(c.code), `${vs.id}: ${c.code}`).toBe(c.display);
      }
    }
  });

  it('has the answer codes design.md §6 names', () => {
    // "newly diagnosed / not in remission" is an answer a first-line order needs (design.md §6 "Clinical readings").
    expect(codesOf('disease-status')).toEqual(['newly-diagnosed', 'relapsed', 'refractory', 'cr1', 'cr2', 'cr3']);
    expect(codesOf('ph-status')).toEqual(['positive', 'negative', 'ph-like']);
    expect(codesOf('cd19-status')).toEqual(['positive', 'negative']);
    expect(codesOf('kmt2a-status')).toEqual(['rearranged', 'not-rearranged']);
    expect(codesOf('treatment-phase')).toEqual(['induction', 'consolidation', 'maintenance', 'continued']);
    expect(codesOf('evidence-observation-codes')).toEqual([
      'disease-status',
      'mrd',
      'ph-status',
      'cd19-status',
      'kmt2a-status',
      'cd22-status',
    ]);
  });
});

describe('clinical content', () => {
  it('triggers blinatumomab on RxNorm, J9039 and the kit NDCs, never on the stabilizer vial', () => {
    const codes = codesOf('blinatumomab');
    for (const c of ['1597258', '1597262', '1597267', 'J9039', '55513016001', '55513016021', '55513015001']) {
      expect(codes).toContain(c);
    }
    expect(codes).not.toContain('55513015501');
  });

  it('triggers inotuzumab on RxNorm and J9229 only', () => {
    const codes = codesOf('inotuzumab');
    expect(codes).toContain('1942950');
    expect(codes).toContain('J9229');
    for (const c of ['C9028', 'J3490', 'J3590', 'J9999']) expect(codes).not.toContain(c);
  });

  it('uses no code that docs/terminology.md §12 leaves unverified', () => {
    // S-codes, dexamethasone 3264, the Besponsa NDC, the BCR-ABL1 IS% code whose name is unverified.
    const unverified = ['S0353', 'S0354', '3264', '69380-4', '3140-1', 'D89.839'];
    for (const { vs } of valueSets) {
      for (const c of unverified) expect(codesOf(vs.id), `${vs.id} has ${c}`).not.toContain(c);
    }
  });

  it('explains every standard code a value set lists in docs/terminology.md, beside the value set', () => {
    // docs/terminology.md §0: the value sets are what the engine matches; the page says what each code means and
    // where it was verified, so a code added to a value set without its explanation fails here.
    const doc = readFileSync(fileURLToPath(new URL('../../docs/terminology.md', import.meta.url)), 'utf8');
    const unexplained: string[] = [];
    for (const { vs } of valueSets) {
      for (const c of vs.expansion.contains ?? []) {
        if (c.system === EVIDENCE) continue;
        const escaped = c.code.replace(/[.]/g, '\\.');
        if (!new RegExp(`(^|[^0-9A-Z.])${escaped}([^0-9]|$)`, 'm').test(doc)) unexplained.push(`${vs.id} ${c.code}`);
      }
      if ((vs.expansion.contains ?? []).some((c) => c.system !== EVIDENCE) && !doc.includes(`\`${vs.id}\``)) {
        unexplained.push(`${vs.id} (value set not named)`);
      }
    }
    expect(unexplained).toEqual([]);
  });

  it('counts only live vaccines as live', () => {
    const cvx = codesOf('live-vaccines-cvx');
    for (const c of ['03', '21', '94', '121', '37', '19', '111', '75']) expect(cvx).toContain(c);
    for (const c of ['187', '329', '206', '188', '26', '325']) expect(cvx).not.toContain(c);
  });

  it('keeps the pathology hematologist out of the prescriber specialties', () => {
    expect(codesOf('oncology-hematology-specialties').sort()).toEqual(
      ['207RH0003X', '207RX0202X', '207RH0000X', '2080P0207X'].sort(),
    );
  });

  it('keeps T-ALL and DLBCL apart from B-ALL', () => {
    expect(codesOf('b-all-snomed')).not.toContain('277575008');
    expect(codesOf('t-all')).toEqual(['277575008']);
    expect(codesOf('dlbcl').every((c) => c.startsWith('C83.3'))).toBe(true);
  });

  it('names other systemic antineoplastics apart from the other drug sets, and no supportive care', () => {
    // design.md §6 "Single agent": any other systemic antineoplastic ends it; supportive care and corticosteroids do not.
    const namesOf = (id: string): string[] =>
      ((byId.get(id) as unknown as { extension?: { url: string; valueString?: string }[] }).extension ?? [])
        .filter((e) => e.url.endsWith('/valueset-match-name'))
        .map((e) => (e.valueString ?? '').toLowerCase());
    const others = ['systemic-antineoplastics'].flatMap(namesOf);
    for (const n of ['venetoclax', 'navitoclax', 'rituximab', 'bortezomib', 'azacitidine', 'fludarabine', 'tamoxifen']) {
      expect(others).toContain(n);
    }
    const held = ['tki', 'inotuzumab', 'ruxolitinib', 'multiagent-chemotherapy', 'corticosteroids', 'blinatumomab'].flatMap(namesOf);
    for (const n of others) for (const h of held) expect(n.includes(h) || h.includes(n), `${n} / ${h}`).toBe(false);
    for (const n of ['ondansetron', 'filgrastim', 'leuprolide', 'megestrol', 'medroxyprogesterone', 'everolimus', 'tretinoin']) {
      expect(others.some((o) => n.includes(o)), n).toBe(false);
    }
  });

  it('lists the pediatric TKIs as a subset of all TKIs', () => {
    const all = new Set(codesOf('tki'));
    for (const c of codesOf('tki-pediatric')) expect(all.has(c)).toBe(true);
  });

  it("reads Centene's open TKI list (\"e.g.\") as every TKI of the closed lists plus asciminib, by name", () => {
    const names = (id: string): string[] =>
      ((byId.get(id) as unknown as { extension?: { url: string; valueString?: string }[] }).extension ?? [])
        .filter((e) => e.url.endsWith('/valueset-match-name'))
        .map((e) => (e.valueString ?? '').toLowerCase());
    expect(codesOf('bcr-abl1-tki')).toEqual(codesOf('tki'));
    expect(names('bcr-abl1-tki')).toEqual(expect.arrayContaining([...names('tki'), 'asciminib', 'scemblix']));
  });
});

const PREFETCH_TEMPLATES: Record<string, string> = {
  patient: 'Patient/{{context.patientId}}',
  coverage: 'Coverage?patient={{context.patientId}}&status=active',
  user: '{{context.userId}}',
  conditions: 'Condition?patient={{context.patientId}}',
  observations: 'Observation?patient={{context.patientId}}',
  medications: 'MedicationRequest?patient={{context.patientId}}',
  immunizations: 'Immunization?patient={{context.patientId}}',
};
const WITH_USER = ['patient', 'coverage', 'user', 'conditions', 'observations', 'medications', 'immunizations'];
const EXPECTED_SERVICES: Record<string, { hook: string; prefetch: string[] }> = {
  'priorpath-order-sign': { hook: 'order-sign', prefetch: WITH_USER },
  'priorpath-order-select': { hook: 'order-select', prefetch: WITH_USER },
  'priorpath-order-dispatch': { hook: 'order-dispatch', prefetch: WITH_USER.filter((k) => k !== 'user') },
};

interface ConfigOption {
  code: string;
  type: string;
  name: string;
  description: string;
  default: boolean | number;
}
interface Service {
  id: string;
  hook: string;
  title: string;
  description: string;
  usageRequirements?: string;
  prefetch: Record<string, string>;
  extension: { 'davinci-crd.version': string[]; 'davinci-crd.configuration-options': ConfigOption[] };
}

const serviceFiles = readdirSync(serviceDir).filter((f) => f.endsWith('.yaml'));
const services = serviceFiles.map((f) => ({
  file: f,
  svc: parse(readFileSync(join(serviceDir, f), 'utf8')) as Service,
}));

describe('discovery entries', () => {
  it('are exactly the three services of design.md §4', () => {
    expect(services.map(({ svc }) => svc.id).sort()).toEqual(Object.keys(EXPECTED_SERVICES).sort());
  });

  describe.each(services)('$file', ({ file, svc }) => {
    const expected = EXPECTED_SERVICES[svc.id];

    it('has id = file name and the contracted hook', () => {
      expect(svc.id).toBe(basename(file, '.yaml'));
      expect(svc.hook).toBe(expected.hook);
      expect(svc.title.length).toBeGreaterThan(0);
      expect(svc.description.length).toBeGreaterThan(0);
    });

    it('has exactly the contracted prefetch keys and templates', () => {
      expect(Object.keys(svc.prefetch)).toEqual(expected.prefetch);
      for (const k of expected.prefetch) expect(svc.prefetch[k]).toBe(PREFETCH_TEMPLATES[k]);
    });

    it('declares its CRD versions and configuration options', () => {
      expect(svc.extension['davinci-crd.version']).toEqual(['2.0', '2.1', '2.2']);
      const options = svc.extension['davinci-crd.configuration-options'];
      for (const o of options) {
        expect(typeof o.code).toBe('string');
        expect(['boolean', 'integer']).toContain(o.type);
        expect(o.name.length).toBeGreaterThan(0);
        expect(o.description.length).toBeGreaterThan(0);
        if (o.type === 'boolean') expect(typeof o.default).toBe('boolean');
        else expect(Number.isInteger(o.default)).toBe(true);
      }
      for (const field of ['code', 'name', 'description'] as const) {
        expect(new Set(options.map((o) => o[field])).size).toBe(options.length);
      }
      const byCode = new Map(options.map((o) => [o.code, o]));
      expect(byCode.get('coverage-info')).toMatchObject({ type: 'boolean', default: true });
      expect(byCode.get('max-cards')).toMatchObject({ type: 'integer', default: 10 });
      if (byCode.has('dtr-clin')) expect(byCode.get('dtr-clin')).toMatchObject({ type: 'boolean', default: false });
    });
  });

  it('declare on each hook only the configuration options it honours (design.md §4), an option on several hooks alike (CRD dev-9)', () => {
    const codes = Object.fromEntries(services.map(({ svc }) => [svc.hook, svc.extension['davinci-crd.configuration-options'].map((o) => o.code)]));
    const all = ['coverage-info', 'unsolicited-determ', 'guideline', 'therapy-alternatives-req', 'dtr-clin', 'dtr-launch-query', 'max-cards'];
    expect(codes['order-sign']).toEqual(all);
    // No DTR card at order-select (it asks for no documentation, CRD hook-19); no Propose Alternate Request at dispatch
    // (the order is signed; a suggestion changes a draft order, CRD resp-53).
    expect(codes['order-select']).toEqual(all.filter((c) => c !== 'dtr-clin' && c !== 'dtr-launch-query'));
    expect(codes['order-dispatch']).toEqual(all.filter((c) => c !== 'therapy-alternatives-req'));
    const declared = new Map<string, unknown>();
    for (const { svc } of services)
      for (const o of svc.extension['davinci-crd.configuration-options']) {
        if (declared.has(o.code)) expect(o, `${svc.id} ${o.code}`).toEqual(declared.get(o.code));
        else declared.set(o.code, o);
      }
  });
});

interface Payer {
  key: string;
  label: string;
  identifiers: { system: string; value: string }[];
  contact: Record<string, unknown>;
  topicUrl?: string;
  defaultAnswer: 'none' | { covered: string; paNeeded: string };
}

const payerFiles = readdirSync(payerDir).filter((f) => f.endsWith('.yaml'));
const payers = payerFiles.map((f) => ({ file: f, payer: parse(readFileSync(join(payerDir, f), 'utf8')) as Payer }));

describe('payer files', () => {
  it('are the four seed payers and the demo payer', () => {
    expect(payers.map(({ payer }) => payer.key).sort()).toEqual(['bcbsnc', 'centene', 'example', 'mmm', 'ohsu']);
  });

  describe.each(payers)('$file', ({ file, payer }) => {
    it('has key = file name and carries the PriorPath payer identifier', () => {
      expect(payer.key).toBe(basename(file, '.yaml'));
      expect(payer.identifiers).toContainEqual({ system: 'https://priorpath.dev/fhir/sid/payer', value: payer.key });
    });

    it('has a short label and a contact', () => {
      expect(payer.label.length).toBeGreaterThan(0);
      expect(payer.label.length).toBeLessThan(60);
      expect(Object.keys(payer.contact).length).toBeGreaterThan(0);
    });

    it('answers orders no policy governs as design.md §6 says', () => {
      if (payer.key === 'example') expect(payer.defaultAnswer).toEqual({ covered: 'covered', paNeeded: 'no-auth' });
      else expect(payer.defaultAnswer).toBe('none');
    });
  });
});
