import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { ContentError } from '../../src/policies/policy-loader.js';
import { emptyData } from '../../src/coverage/evaluate-response.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { decisionFor } from '../../src/pas/adjudicate.js';
import { repoRoot } from '../helpers/stories.js';

/** A small valid policy that each test breaks in one place. */
function basePolicy(): Record<string, unknown> {
  return {
    id: 'acme-blinatumomab',
    version: '2026-11',
    payer: 'acme',
    drug: 'blinatumomab',
    title: 'Blinatumomab (Blincyto)',
    source: { id: 'ACME-RX-101', title: 'Blincyto medical policy' },
    imports: ['b-all-evidence'],
    requirements: [{ id: 'b-all', when: 'bAll', cite: 'ACME-RX-101 1.a', text: 'Diagnosis of B-cell precursor ALL' }],
    pathways: [{ id: 'relapsed', when: 'relapsedOrRefractory', cite: 'ACME-RX-101 1.c', text: 'Relapsed or refractory disease', approval: { months: 6 } }],
    limits: [{ id: 'max-dose', when: 'dailyDoseUg <= 28', cite: 'ACME-RX-101 2', text: 'Dose does not exceed 28 mcg/day' }],
  };
}

/** A content root with the real value sets and fact library plus one test payer and policy. */
function contentRoot(policy: Record<string, unknown>): string {
  const root = mkdtempSync(join(tmpdir(), 'priorpath-content-'));
  cpSync(join(repoRoot, 'cds-services', 'valuesets'), join(root, 'cds-services', 'valuesets'), { recursive: true });
  cpSync(join(repoRoot, 'cds-services', 'facts'), join(root, 'cds-services', 'facts'), { recursive: true });
  mkdirSync(join(root, 'cds-services', 'payers'), { recursive: true });
  writeFileSync(join(root, 'cds-services', 'payers', 'acme.yaml'), stringify({ key: 'acme', label: 'Acme Health', identifiers: [{ system: 'https://priorpath.dev/fhir/sid/payer', value: 'acme' }] }));
  mkdirSync(join(root, 'cds-services', 'policies', 'acme'), { recursive: true });
  writeFileSync(join(root, 'cds-services', 'policies', 'acme', 'blinatumomab.yaml'), stringify(policy));
  return root;
}

function problemsOf(policy: Record<string, unknown>): string {
  try {
    loadContent({ root: contentRoot(policy), canonicalBase: 'https://priorpath.dev/fhir' });
  } catch (err) {
    expect(err).toBeInstanceOf(ContentError);
    return (err as Error).message;
  }
  throw new Error('content loaded, but a problem was expected');
}

describe('policy loading', () => {
  it('loads a new payer policy without code changes', () => {
    const content = loadContent({ root: contentRoot(basePolicy()), canonicalBase: 'https://priorpath.dev/fhir' });
    expect(content.policies.map((p) => p.file.id)).toEqual(['acme-blinatumomab']);
    expect(content.policies[0].questionnaire).toBe('https://priorpath.dev/fhir/Questionnaire/acme-blinatumomab|2026-11');
  });

  it('fails naming the payer file whose key is not its file name (DEFAULT_PAYER is checked against file names)', () => {
    const root = contentRoot(basePolicy());
    writeFileSync(join(root, 'cds-services', 'payers', 'acme.yaml'), stringify({ key: 'acme-health', label: 'Acme Health', identifiers: [{ system: 'https://priorpath.dev/fhir/sid/payer', value: 'acme-health' }] }));
    expect(() => loadContent({ root, canonicalBase: 'https://priorpath.dev/fhir' })).toThrow(/payers\/acme\.yaml: key: must equal the file name \(acme\)/);
  });

  it('fails naming the service file that declares a CRD version whose coverage-information PriorPath does not build', () => {
    const root = contentRoot(basePolicy());
    mkdirSync(join(root, 'cds-services', 'services'), { recursive: true });
    const service = { id: 'acme-order-sign', hook: 'order-sign', description: 'Acme coverage requirements', extension: { 'davinci-crd.version': ['2.0', '2.3'] } };
    writeFileSync(join(root, 'cds-services', 'services', 'acme-order-sign.yaml'), stringify(service));
    expect(() => loadContent({ root, canonicalBase: 'https://priorpath.dev/fhir' })).toThrow(/services\/acme-order-sign\.yaml: extension\.davinci-crd\.version\.1/);
    writeFileSync(join(root, 'cds-services', 'services', 'acme-order-sign.yaml'), stringify({ ...service, extension: { 'davinci-crd.version': ['2.0', '2.2'] } }));
    expect(loadContent({ root, canonicalBase: 'https://priorpath.dev/fhir' }).services.map((x) => x.id)).toEqual(['acme-order-sign']);
  });

  it('fails naming file and field for a FHIRPath syntax error', () => {
    const p = basePolicy();
    p.facts = { broken: { type: 'boolean', askable: false, fhirpath: "%observations.where(code = 'x'" } };
    expect(problemsOf(p)).toMatch(/policies\/acme\/blinatumomab\.yaml: facts\.broken\.fhirpath: FHIRPath does not compile/);
  });

  it('fails naming file and field for a rule that reads an unknown fact', () => {
    const p = basePolicy();
    p.pathways = [{ id: 'mrd', when: 'mrdPercnt >= 0.1', cite: 'ACME-RX-101 1.d', text: 'MRD positive', approval: { months: 6 } }];
    expect(problemsOf(p)).toMatch(/blinatumomab\.yaml: pathways\[0\]\.when: unknown fact mrdPercnt/);
  });

  it('refuses an approval.from that names no fact or a fact that is not a date, and keeps the date fact it names', () => {
    const p = basePolicy();
    const pathway = (from: string) => [{ id: 'relapsed', when: 'relapsedOrRefractory', cite: 'ACME-RX-101 1.c', text: 'Relapsed or refractory disease', approval: { weeks: 30, from } }];
    p.pathways = pathway('courseStrat');
    expect(problemsOf(p)).toMatch(/blinatumomab\.yaml: pathways\[0\]\.approval\.from: unknown fact courseStrat/);
    p.pathways = pathway('cyclesGiven');
    expect(problemsOf(p)).toMatch(/pathways\[0\]\.approval\.from: fact cyclesGiven is of type integer: an approval runs from a date fact/);
    p.pathways = pathway('relapsedRefractoryCourseStart');
    const policy = loadContent({ root: contentRoot(p), canonicalBase: 'https://priorpath.dev/fhir' }).policies[0];
    expect(policy.pathways[0].approval).toEqual({ weeks: 30, from: 'relapsedRefractoryCourseStart' });
    // Read by no rule, the imported fact is still kept: the approval reads it.
    expect(policy.facts.map((f) => f.name)).toEqual(expect.arrayContaining(['relapsedRefractoryCourseStart', 'courseFirstCycleStart']));
  });

  it('refuses an approval.covers without approval.from, or naming no date fact; keeps the one it names (the day the order needs covered)', () => {
    const p = basePolicy();
    const pathway = (approval: Record<string, unknown>) => [{ id: 'relapsed', when: 'relapsedOrRefractory', cite: 'ACME-RX-101 1.c', text: 'Relapsed or refractory disease', approval }];
    p.pathways = pathway({ weeks: 30, covers: 'cycleInfusionEnd' });
    expect(problemsOf(p)).toMatch(/pathways\[0\]\.approval\.covers: covers needs from/);
    p.pathways = pathway({ weeks: 30, from: 'relapsedRefractoryCourseStart', covers: 'cyclesGiven' });
    expect(problemsOf(p)).toMatch(/pathways\[0\]\.approval\.covers: fact cyclesGiven is of type integer: approval\.covers names a date fact/);
    p.pathways = pathway({ weeks: 30, from: 'relapsedRefractoryCourseStart', covers: 'cycleInfusionEnd' });
    const policy = loadContent({ root: contentRoot(p), canonicalBase: 'https://priorpath.dev/fhir' }).policies[0];
    expect(policy.pathways[0].approval).toEqual({ weeks: 30, from: 'relapsedRefractoryCourseStart', covers: 'cycleInfusionEnd' });
    expect(policy.facts.map((f) => f.name)).toContain('cycleInfusionEnd');
  });

  it('refuses a limit written iif(A, B, true), which passes when A is unknown, and takes the same limit written with implies', () => {
    const p = basePolicy();
    p.limits = [
      { id: 'cycles-relapsed', when: 'iif(relapsedOrRefractory = true, courseCyclesGiven + cyclesRequested <= 9, true)', cite: 'ACME-RX-101 2', text: 'Up to 9 cycles' },
    ];
    expect(problemsOf(p)).toMatch(/blinatumomab\.yaml: limits\[0\]\.when: iif\(relapsedOrRefractory = true, \.\.\., true\) passes cycles-relapsed when its condition is unknown/);
    p.limits = [
      { id: 'cycles-relapsed', when: 'relapsedOrRefractory implies courseCyclesGiven + cyclesRequested <= 9', cite: 'ACME-RX-101 2', text: 'Up to 9 cycles' },
      { id: 'cycles-other', when: 'iif(relapsedOrRefractory = true, true, false) implies courseCyclesGiven + cyclesRequested <= 12', cite: 'ACME-RX-101 2', text: 'Up to 12 cycles' },
      { id: 'dose-unless', when: 'iif(relapsedOrRefractory = true, true, dailyDoseUg <= 9)', cite: 'ACME-RX-101 2', text: 'At most 9 mcg/day unless relapsed' },
    ];
    expect(loadContent({ root: contentRoot(p), canonicalBase: 'https://priorpath.dev/fhir' }).policies[0].limits.map((l) => l.id)).toEqual(['cycles-relapsed', 'cycles-other', 'dose-unless']);
  });

  it('fails naming file and field for a criterion without a citation', () => {
    const p = basePolicy();
    p.requirements = [{ id: 'b-all', when: 'bAll', text: 'Diagnosis of B-ALL' }];
    expect(problemsOf(p)).toMatch(/blinatumomab\.yaml: requirements\.0\.cite/);
  });

  it('fails for an unknown value set, an unknown import and a reserved fact name', () => {
    const p = basePolicy();
    p.imports = ['no-such-library'];
    p.facts = { patient: { type: 'boolean', askable: false, fhirpath: "%conditions.code.memberOf('no-such-set')" } };
    const msg = problemsOf(p);
    expect(msg).toMatch(/imports: unknown fact library no-such-library/);
    expect(msg).toMatch(/facts\.patient: "patient" is a reserved variable name/);
  });

  it("refuses a policy whose criterion reads a fact without words for the payer reviewer; the policy's label is what the reviewer reads", () => {
    const p = basePolicy();
    // Centene CP.PHAR.312 I.A.4.a "B-ALL in remission but MRD-positive", as a derived fact the form never asks.
    const mrdPositive = { type: 'boolean', askable: false, fhirpath: '%mrdPercent >= 0.01' };
    p.facts = { mrdPositive };
    p.pathways = [{ id: 'mrd-positive', when: 'mrdPositive', cite: 'ACME-RX-101 1.d', text: 'B-ALL in remission but MRD-positive', approval: { months: 6 } }];
    expect(problemsOf(p)).toMatch(
      /policies\/acme\/blinatumomab\.yaml: pathways\[0\]\.when: fact mrdPositive is shown to the payer reviewer as evidence for mrd-positive but has no label/,
    );
    // An imported fact is named as one: the library, not the policy, is where its label is missing.
    const q = basePolicy();
    q.pathways = [{ id: 'infant', when: 'infant', cite: 'ACME-RX-101 1.e', text: 'Infant ALL', approval: { months: 6 } }];
    expect(problemsOf(q)).toMatch(/pathways\[0\]\.when: fact infant .* give facts\.infant \(imported\) a label/);

    const label = 'MRD-positive (minimal residual disease detectable at 0.01 % or more)';
    p.facts = { mrdPositive: { ...mrdPositive, label } };
    const policy = loadContent({ root: contentRoot(p), canonicalBase: 'https://priorpath.dev/fhir' }).policies[0];
    const ev = evaluatePolicy(policy, { ...emptyData('2026-11-23'), user: [] });
    const decided = decisionFor(policy, ev, { sequence: 1, orderDate: '2026-11-23', payer: 'acme', today: '2026-11-23' });
    const evidence = decided.criteria.find((c) => c.id === 'mrd-positive')?.evidence;
    expect(evidence).toEqual([{ fact: 'mrdPositive', label, source: 'unknown' }]);
    // An askable fact reads as its DTR question (Diagnosis of B-ALL, from the library).
    expect(decided.criteria.find((c) => c.id === 'b-all')?.evidence?.[0].label).toMatch(/B-cell precursor acute lymphoblastic leukemia/);
  });

  it('turns a fact that fails at run time into an error outcome, never an approval', () => {
    const p = basePolicy();
    // Two Conditions give two codes: a boolean fact must yield one value, so this fails at run time.
    p.facts = { relapsedOrRefractory: { type: 'boolean', askable: false, label: 'Relapsed or refractory disease', fhirpath: '%conditions.exists() | true' } };
    const content = loadContent({ root: contentRoot(p), canonicalBase: 'https://priorpath.dev/fhir' });
    const policy = content.policies[0];
    const ev = evaluatePolicy(policy, { ...emptyData('2026-11-23'), user: [] });
    expect(ev.outcome).toBe('error');
    expect(ev.facts.find((f) => f.name === 'relapsedOrRefractory')?.error).toMatch(/at most one value/);
  });
});
