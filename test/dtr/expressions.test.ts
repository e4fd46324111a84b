/** Units of the FHIRPath rewriting behind initialExpressions and enableWhenExpressions (src/dtr/expressions.ts). */
import { describe, expect, it } from 'vitest';
import {
  answerPath,
  icd10CodeReads,
  clientInitialExpression,
  isMonotone,
  ruleOverAnswers,
  splitTopLevel,
} from '../../src/dtr/expressions.js';
import { tokenize } from '../../src/fhir/fhirpath-tokens.js';
import { compileFhirPath } from '../../src/fhir/fhirpath.js';
import { CANONICAL_BASE, dtrContent } from './helpers.js';

const content = dtrContent();
const fp = (e: string, model: 'r4' | 'none' = 'r4') =>
  compileFhirPath(e, { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet`, model });

describe('tokenize', () => {
  it('keeps strings (with escapes), %variables, $this, numbers and date literals whole', () => {
    const t = tokenize(
      "%observations.where(code = 'it\\'s' and $this.value > 0.1 and effective > @2026-01-01T10:00:00Z)",
    );
    expect(t.filter((x) => x.kind === 'var').map((x) => x.name)).toEqual(['observations']);
    expect(t.filter((x) => x.kind === 'string').map((x) => x.text)).toEqual(["'it\\'s'"]);
    expect(t.map((x) => x.text)).toContain('$this');
    expect(t.map((x) => x.text)).toContain('0.1');
    expect(t.map((x) => x.text)).toContain('@2026-01-01T10:00:00Z');
    expect(t.map((x) => x.text).join('')).toBe(
      "%observations.where(code = 'it\\'s' and $this.value > 0.1 and effective > @2026-01-01T10:00:00Z)",
    );
  });
});

describe('splitTopLevel', () => {
  it('splits a conjunction at top level only', () => {
    expect(splitTopLevel('a and (b or c) and d.where(x and y)', 'and')).toEqual(['a', '(b or c)', 'd.where(x and y)']);
  });
  it('respects precedence: a top-level or/xor/implies keeps a conjunction whole', () => {
    expect(splitTopLevel('a and b or c', 'and')).toEqual(['a and b or c']);
    expect(splitTopLevel('a and b or c', 'or')).toEqual(['a and b', 'c']);
    expect(splitTopLevel('a implies b or c', 'or')).toEqual(['a implies b or c']);
  });
  it('strips parentheses around the whole expression and ignores words inside strings', () => {
    expect(splitTopLevel("((a and 'x and y'))", 'and')).toEqual(['a', "'x and y'"]);
  });
});

describe('isMonotone', () => {
  it('accepts three-valued logic, comparisons and membership in literal lists', () => {
    expect(isMonotone("a and b >= 0.1 and c in ('x' | 'y') and d.not() and (e implies f)")).toBe(true);
  });
  it('rejects constructs that turn unknown into a definite value', () => {
    for (const e of [
      'iif(a, b, c)',
      'a.exists()',
      'a.empty() or b',
      '(a | b).first()',
      'a in b',
      'a ~ b',
      'x.count() > 1',
      'a contains b',
    ])
      expect(isMonotone(e), e).toBe(false);
  });
});

describe('answerPath and ruleOverAnswers', () => {
  const policy = content.policies.find(
    (p) => p.factsByName.has('diseaseStatus') && p.factsByName.has('relapsedOrRefractory'),
  )!;

  it('reads typed answers from the response being filled in', () => {
    const qr = {
      resourceType: 'QuestionnaireResponse',
      status: 'in-progress',
      item: [
        {
          linkId: 'g',
          item: [
            { linkId: 'ds', answer: [{ valueCoding: { code: 'relapsed' } }] },
            { linkId: 'n', answer: [{ valueDecimal: 0.5 }] },
          ],
        },
      ],
    };
    expect(fp(answerPath('ds', 'code'))(qr, { resource: qr })).toEqual(['relapsed']);
    expect(fp(`${answerPath('n', 'decimal')} >= 0.1`)(qr, { resource: qr })).toEqual([true]);
    expect(fp(answerPath('missing', 'boolean'))(qr, { resource: qr })).toEqual([]);
  });

  it('inlines derived facts over answers and treats hidden facts as unknown', () => {
    const ds = policy.factsByName.get('diseaseStatus')!.def.linkId!;
    const itemFor = (f: string) =>
      policy.factsByName.get(f)!.def.askable
        ? { linkId: policy.factsByName.get(f)!.def.linkId!, type: policy.factsByName.get(f)!.def.type }
        : undefined;
    const e = ruleOverAnswers(policy, 'relapsedOrRefractory', { itemFor, unknown: new Set() })!;
    expect(e).toContain(`linkId = '${ds}'`);
    const qr = (code: string) => ({
      resourceType: 'QuestionnaireResponse',
      status: 'in-progress',
      item: [{ linkId: ds, answer: [{ valueCoding: { code } }] }],
    });
    expect(fp(e)(qr('refractory'), { resource: qr('refractory') })).toEqual([true]);
    expect(fp(e)(qr('cr1'), { resource: qr('cr1') })).toEqual([false]);
    expect(
      ruleOverAnswers(policy, 'relapsedOrRefractory', { itemFor, unknown: new Set(['diseaseStatus']) }),
      'nothing left to read',
    ).toBeUndefined();
  });
});

describe('clientInitialExpression', () => {
  it('spells memberOf out with the same three-valued result as the server', () => {
    const policy = content.policies.find((p) => p.factsByName.has('bAll'))!;
    const init = clientInitialExpression(policy, 'bAll', {
      valueSets: content.valueSets,
      valueSetBase: `${CANONICAL_BASE}/ValueSet`,
    });
    expect(init.expression).toBeDefined();
    expect(init.expression).not.toMatch(/memberOf|codedIn|coded\(|recent\(/);
    expect(init.portability).toBe('approximate');
    const cond = (system: string, code: string) => ({
      resourceType: 'Condition',
      id: 'c',
      subject: { reference: 'Patient/p' },
      code: { coding: [{ system, code }] },
    });
    const bundle = (...rs: unknown[]) => ({
      resourceType: 'Bundle',
      type: 'searchset',
      entry: rs.map((resource) => ({ resource })),
    });
    const run = (conditions: unknown) =>
      fp(init.expression!)({}, { conditions, observations: bundle(), patient: { resourceType: 'Patient' } });
    expect(run(bundle(cond('http://snomed.info/sct', '277571004')))).toEqual([true]);
    expect(run(bundle(cond('http://snomed.info/sct', '277575008')))).toEqual([false]);
    expect(run(bundle(cond('http://hl7.org/fhir/sid/icd-10-cm', 'C91.00')))).toEqual([]);
    // Only another disease on the problem list: not B-ALL. No diagnosis at all shows no other disease: unknown, asked.
    expect(run(bundle(cond('http://hl7.org/fhir/sid/icd-10-cm', 'C83.38')))).toEqual([false]);
    expect(run(bundle())).toEqual([]);
    // Encounter codes alone (Z51.11) name no disease either.
    expect(run(bundle(cond('http://hl7.org/fhir/sid/icd-10-cm', 'Z51.11')))).toEqual([]);
  });

  it("reads a Condition's date as the server does: onset, else with no onset recordedDate; an onset that cannot be placed is unknown", () => {
    // Centene's infant ALL (CP.PHAR.312 I.A.4.e) pre-fill, for a child past the second birthday (design.md §6
    // "A Condition's date"): the renderer runs the standard-FHIRPath spelling of statedDay().
    const policy = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const init = clientInitialExpression(policy, 'infantAll', { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet` });
    expect(init.expression).not.toMatch(/statedDay/);
    const ball = (dates: Record<string, unknown>) => ({
      resourceType: 'Condition',
      id: 'dx-ball',
      subject: { reference: 'Patient/pt' },
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      code: { coding: [{ system: 'http://snomed.info/sct', code: '277571004', display: 'B-cell acute lymphoblastic leukemia' }] },
      ...dates,
    });
    const response = {
      resourceType: 'QuestionnaireResponse',
      status: 'in-progress',
      item: [{ linkId: 'order-date', answer: [{ valueDate: '2026-11-24' }] }],
    };
    const run = (condition: unknown) =>
      fp(init.expression!)(
        {},
        {
          conditions: { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: condition }] },
          patient: { resourceType: 'Patient', id: 'pt', birthDate: '2024-06-15' },
          resource: response,
        },
      );
    expect(run(ball({ onsetPeriod: { start: '2025-03-01' } }))).toEqual([true]);
    expect(run(ball({ recordedDate: '2025-03-01' }))).toEqual([true]);
    expect(run(ball({ onsetDateTime: '2025-09-01', recordedDate: '2025-03-01' }))).toEqual([false]);
    // An onset on record that states no date to compare is not dated by when it was recorded: asked.
    expect(run(ball({ onsetPeriod: { end: '2025-09-30' }, recordedDate: '2026-09-02' }))).toEqual([]);
    expect(run(ball({ onsetString: 'in infancy, diagnosed at an outside hospital', recordedDate: '2026-09-02' }))).toEqual([]);
  });

  it('gives no expression for facts a renderer cannot read (the order, attestations, codes)', () => {
    for (const p of content.policies) {
      for (const f of p.facts.filter((x) => x.def.askable)) {
        const init = clientInitialExpression(p, f.name, {
          valueSets: content.valueSets,
          valueSetBase: `${CANONICAL_BASE}/ValueSet`,
        });
        if (/%order\b/.test(f.def.fhirpath) || f.def.type === 'code' || /^\s*\{\s*\}\s*$/.test(f.def.fhirpath))
          expect(init.expression, `${p.file.id} ${f.name}`).toBeUndefined();
        if (init.expression === undefined) expect(init.portability).toBe('none');
      }
    }
  });
});

describe('icd10CodeReads', () => {
  it("marks an ICD-10 Coding's code (in that where()), not a Condition's code or another system's", () => {
    const expr =
      "%conditions.where(code.coding.where(system = 'http://hl7.org/fhir/sid/icd-10-cm' and (code = 'C91.02' or code.startsWith('C95'))).exists())" +
      " and %diagnoses.coding.where(system = 'http://snomed.info/sct' and code = '91857003')";
    const tokens = tokenize(expr);
    // Each marked token is a `code`; what follows it says which one.
    const next = (i: number) => tokens.slice(i + 1).find((t) => t.kind !== 'space')?.text;
    const marked = [...icd10CodeReads(tokens)].sort((a, b) => a - b);
    expect(marked.map((i) => tokens[i].text)).toEqual(['code', 'code']);
    expect(marked.map(next)).toEqual(['=', '.']);
    expect(marked.map((i) => tokens.slice(i + 1).filter((t) => t.kind !== 'space')[1]?.text)).toEqual(["'C91.02'", 'startsWith']);
  });
});
