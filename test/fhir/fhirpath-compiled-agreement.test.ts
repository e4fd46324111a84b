import { isDeepStrictEqual } from 'node:util';
import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { policiesFor } from '../../src/content.js';
import { BAIL } from '../../src/fhir/fhirpath-compiler.js';
import { compiledFhirPath, compiledKind, referenceFhirPath } from '../../src/fhir/fhirpath.js';
import type { CompiledExpression, FhirPathOptions } from '../../src/fhir/fhirpath.js';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';
import { factEnvironment } from '../../src/policies/evaluate-policy.js';
import type { FactValue } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { testContent } from '../helpers/app.js';
import { storyIds, storyOrder, storyResources } from '../helpers/stories.js';
import { caseScenarios } from '../helpers/policy-cases.js';
import type { PolicyScenario as Scenario } from '../helpers/policy-cases.js';

/**
 * The compiled FHIRPath (src/fhir/fhirpath-compiler.ts) agrees with fhirpath.js, the reference engine, on every
 * expression the content compiles at load (facts over the record, askWhen, rules and proposals over facts), over all
 * the evaluation data the project has: every sandbox story, every policy case file, and generated variations of the
 * stories (values, units, dates, statuses, birth dates, empty collections, extension siblings, answers supplied as
 * facts). Same result, item for item and type for type (empty is not [false]); where fhirpath.js throws, the compiled
 * code hands the evaluation back to it (a bail), never a value of its own. It also pins how much is compiled, so a
 * change that quietly sends everything back to fhirpath.js fails here.
 */
const content = testContent();
const fpR4: FhirPathOptions = { valueSets: content.valueSets, valueSetBase: `${content.canonicalBase}/ValueSet`, model: 'r4' };
const fpNone: FhirPathOptions = { ...fpR4, model: 'none' };

interface Expr {
  label: string;
  text: string;
  ref: CompiledExpression;
  fast: CompiledExpression | undefined;
}
const exprs = new Map<string, Expr>();
function expr(text: string, model: 'r4' | 'none', label: string): Expr {
  const key = `${model}|${text}`;
  let e = exprs.get(key);
  if (!e) {
    const options = model === 'r4' ? fpR4 : fpNone;
    e = { label, text, ref: referenceFhirPath(text, options), fast: compiledFhirPath(text, options) };
    exprs.set(key, e);
  }
  return e;
}

const tally = { evaluations: 0, compared: 0, bails: 0, bothThrew: 0, faults: [] as string[], mismatches: [] as string[] };
const bailed = new Map<string, number>();

/** Runs one expression with both engines (compiled first, as in production) and records any disagreement. */
function both(e: Expr, resource: unknown, env: Record<string, unknown>, where: string): unknown[] | undefined {
  tally.evaluations++;
  let fastOut: unknown[] | undefined;
  let fastErr: unknown;
  if (e.fast) {
    try {
      fastOut = e.fast(resource, env);
    } catch (err) {
      fastErr = err;
    }
  }
  let refOut: unknown[] | undefined;
  let refErr: unknown;
  try {
    refOut = e.ref(resource, env);
  } catch (err) {
    refErr = err;
  }
  if (!e.fast) return refOut;
  if (fastErr === BAIL) {
    tally.bails++;
    bailed.set(e.label, (bailed.get(e.label) ?? 0) + 1);
    if (refErr) tally.bothThrew++;
  } else if (fastErr !== undefined) {
    tally.faults.push(`${where} ${e.label}: compiled code threw ${(fastErr as Error).message}`);
  } else if (refErr !== undefined) {
    tally.mismatches.push(`${where} ${e.label}: fhirpath.js threw "${(refErr as Error).message}", compiled gave ${JSON.stringify(fastOut)}`);
  } else {
    tally.compared++;
    if (!isDeepStrictEqual(fastOut, refOut)) tally.mismatches.push(`${where} ${e.label}: compiled ${JSON.stringify(fastOut)}, fhirpath.js ${JSON.stringify(refOut)}`);
  }
  return refOut;
}

/** A fact value as the evaluator keeps it: one boolean, number or string, else unknown. */
function factValue(out: unknown[] | undefined): FactValue | undefined {
  if (!out || out.length !== 1) return undefined;
  const v = out[0];
  return typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string' ? v : undefined;
}

const ruleTexts = (p: CompiledPolicy) => [...p.file.requirements, ...p.file.pathways, ...p.file.limits];

/** Every fact, askWhen, rule and proposal of a policy over one scenario, as readFacts/evaluatePolicy run them. */
function runScenario(s: Scenario, policy: CompiledPolicy, answers: Record<string, FactValue> = {}): void {
  const record = indexRecord(recordFromResources(s.resources, [s.order], s.order.requester?.reference));
  const data = evaluationDataFor(record, s.order, s.today);
  const env = factEnvironment(policy, data);
  const known: Record<string, FactValue> = {};
  const where = `${s.label} ${policy.file.id}`;
  for (const f of policy.facts) {
    if (Object.prototype.hasOwnProperty.call(answers, f.name)) {
      env[f.name] = answers[f.name];
      known[f.name] = answers[f.name];
      continue;
    }
    const v = factValue(both(expr(f.def.fhirpath, 'r4', `fact ${f.name}`), data.order, env, where));
    env[f.name] = v === undefined ? [] : v;
    if (v !== undefined) known[f.name] = v;
  }
  overFacts(policy, known, data.orderDate, where);
}

/** The expressions over facts (rules, proposals, askWhen) of a policy, over one set of known facts. */
function overFacts(policy: CompiledPolicy, known: Record<string, FactValue>, orderDate: string, where: string): void {
  for (const r of ruleTexts(policy)) {
    both(expr(r.when, 'none', `rule ${r.id}`), known, {}, where);
    const propose = 'propose' in r ? r.propose : undefined;
    if (propose) both(expr('quantity' in propose ? propose.quantity.value : propose.value, 'none', `proposal ${r.id}`), known, {}, where);
  }
  const dates = { orderDate, orderDateTime: `${orderDate}T00:00:00Z` };
  for (const f of policy.facts) if (f.def.askWhen) both(expr(f.def.askWhen, 'none', `askWhen ${f.name}`), known, dates, where);
  for (const a of policy.file.attachments) if (a.askWhen) both(expr(a.askWhen, 'none', `askWhen ${a.linkId}`), known, dates, where);
}

const stories = storyIds();

/** Every policy case file, built as test/policies/policy-cases.test.ts builds them, with its answers. */

type Rec = Record<string, unknown>;
const ofType = (rs: Resource[], type: string) => rs.filter((r) => r.resourceType === type) as unknown as Rec[];
const shiftDate = (v: unknown, days: number) => {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(v)) return v;
  const d = new Date(`${v.slice(0, 10)}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10) + v.slice(10);
};

/**
 * Variations of a story that reach readings the stories alone do not: each changes the copy in place (the order is
 * among the resources) and may return extra resources.
 */
const VARIATIONS: { name: string; change(rs: Resource[], order: MedicationRequest): Resource[] | void }[] = [
  { name: 'values halved', change: (rs) => ofType(rs, 'Observation').forEach((o) => (o.valueQuantity as Rec | undefined) && ((o.valueQuantity as Rec).value = Number((o.valueQuantity as Rec).value) / 2)) },
  { name: 'values × 1.7 + 0.005', change: (rs) => ofType(rs, 'Observation').forEach((o) => (o.valueQuantity as Rec | undefined) && ((o.valueQuantity as Rec).value = Number((o.valueQuantity as Rec).value) * 1.7 + 0.005)) },
  { name: 'values zero', change: (rs) => ofType(rs, 'Observation').forEach((o) => (o.valueQuantity as Rec | undefined) && ((o.valueQuantity as Rec).value = 0)) },
  {
    name: 'codes dropped, units left; grams and pounds',
    change: (rs) =>
      ofType(rs, 'Observation').forEach((o, i) => {
        const q = o.valueQuantity as Rec | undefined;
        if (!q) return;
        if (i % 2 === 0) delete q.code;
        else if (q.code === 'kg') Object.assign(q, { value: Number(q.value) * 1000, code: 'g', unit: 'g' });
        else if (q.code === 'cm') Object.assign(q, { value: Number(q.value) / 100, code: 'm', unit: 'm' });
      }),
  },
  { name: 'dates 40 days earlier', change: (rs) => ofType(rs, 'Observation').forEach((o) => (o.effectiveDateTime = shiftDate(o.effectiveDateTime, -40))) },
  { name: 'dates 100 days earlier', change: (rs) => ofType(rs, 'Observation').forEach((o) => (o.effectiveDateTime = shiftDate(o.effectiveDateTime, -100))) },
  { name: 'year-only and period dates', change: (rs) => ofType(rs, 'Observation').forEach((o, i) => (i % 2 === 0 ? (o.effectiveDateTime = '2026') : ((o.effectivePeriod = { start: String(o.effectiveDateTime ?? '2026-10-01').slice(0, 10) }), delete o.effectiveDateTime))) },
  { name: 'results preliminary or entered in error', change: (rs) => ofType(rs, 'Observation').forEach((o, i) => (o.status = i % 2 === 0 ? 'preliminary' : 'entered-in-error')) },
  { name: 'text results instead of codes', change: (rs) => ofType(rs, 'Observation').forEach((o) => o.valueCodeableConcept && ((o.valueString = String((o.valueCodeableConcept as Rec).text ?? 'positive')), delete o.valueCodeableConcept)) },
  { name: 'no birth date', change: (rs) => ofType(rs, 'Patient').forEach((p) => delete p.birthDate) },
  { name: 'a 3-month-old', change: (rs) => ofType(rs, 'Patient').forEach((p) => (p.birthDate = '2026-08-20')) },
  { name: 'a child born on 29 February', change: (rs) => ofType(rs, 'Patient').forEach((p) => (p.birthDate = '2024-02-29')) },
  { name: 'a 15-year-old, birth month only', change: (rs) => ofType(rs, 'Patient').forEach((p) => (p.birthDate = '2011-11')) },
  { name: 'an 18th birthday on the order date', change: (rs, o) => ofType(rs, 'Patient').forEach((p) => (p.birthDate = `${Number(String(o.authoredOn ?? '2026-11-20').slice(0, 4)) - 18}${String(o.authoredOn ?? '2026-11-20').slice(4, 10)}`)) },
  { name: 'birth date with an extension sibling', change: (rs) => ofType(rs, 'Patient').forEach((p) => (p._birthDate = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '2010-05-01T08:00:00Z' }] })) },
  { name: 'no observations, conditions or other orders', change: (rs, o) => rs.splice(0, rs.length, ...rs.filter((r) => !['Observation', 'Condition', 'MedicationStatement', 'Immunization'].includes(r.resourceType) && (r.resourceType !== 'MedicationRequest' || r === o))) },
  { name: 'order without dosage, repeats 0', change: (_rs, o) => ((o as unknown as Rec).dosageInstruction = undefined, (o.dispenseRequest = { numberOfRepeatsAllowed: 0 })) },
  {
    name: 'order with three dosages (step dose, per m², a zero dose)',
    change: (_rs, o) => {
      o.dosageInstruction = [
        { text: 'intrathecal flush', doseAndRate: [{ doseQuantity: { value: 9, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } }] },
        { doseAndRate: [{ doseQuantity: { value: 15, unit: 'mcg/m2/d', system: 'http://unitsofmeasure.org', code: 'ug/m2/d' } }] },
        { doseAndRate: [{ doseQuantity: { value: 0, unit: 'mg/d', system: 'http://unitsofmeasure.org', code: 'mg/d' } }] },
      ];
      o.dispenseRequest = { numberOfRepeatsAllowed: 3 };
    },
  },
  {
    name: 'a live vaccine 10 days before, an MMR a year before, a Blincyto course before',
    change: (rs, o) => {
      const day = String(o.authoredOn ?? '2026-11-20').slice(0, 10);
      const patient = `Patient/${rs.find((r) => r.resourceType === 'Patient')?.id ?? 'x'}`;
      return [
        { resourceType: 'Immunization', id: 'v1', status: 'completed', patient: { reference: patient }, vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '03' }] }, occurrenceDateTime: shiftDate(day, -10) } as Resource,
        { resourceType: 'Immunization', id: 'v2', status: 'completed', patient: { reference: patient }, vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '94' }] }, occurrenceDateTime: `${shiftDate(day, -365)}T10:00:00Z` } as Resource,
        {
          resourceType: 'MedicationRequest',
          id: 'earlier-course',
          status: 'completed',
          intent: 'order',
          subject: { reference: patient },
          authoredOn: shiftDate(day, -120),
          medicationCodeableConcept: o.medicationCodeableConcept,
          dispenseRequest: { numberOfRepeatsAllowed: 1 },
        } as Resource,
      ];
    },
  },
  {
    // Malformed records make fhirpath.js throw (a string compared with a number, toString() of two items): the
    // compiled code must not answer, only hand the evaluation back.
    name: 'malformed: quantity values as strings, two birth dates, a dose value as text',
    change: (rs, o) => {
      ofType(rs, 'Observation').forEach((obs) => (obs.valueQuantity as Rec | undefined) && ((obs.valueQuantity as Rec).value = String((obs.valueQuantity as Rec).value)));
      ofType(rs, 'Patient').forEach((p) => (p.birthDate = [String(p.birthDate ?? '2010-01-01'), '2011-01-01']));
      const dose = o.dosageInstruction?.[0]?.doseAndRate?.[0]?.doseQuantity as Rec | undefined;
      if (dose) dose.value = 'fifteen';
    },
  },
  {
    name: 'a treatment-phase extension and a C91.02 diagnosis',
    change: (rs, o) => {
      o.extension = [{ url: 'https://priorpath.dev/fhir/StructureDefinition/treatment-phase', valueCode: 'maintenance' }];
      ofType(rs, 'Condition').forEach((c) => (c.code = { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'C91.02' }] }));
    },
  },
];

function storyScenarios(): Scenario[] {
  const out: Scenario[] = [];
  const today = '2026-11-23';
  for (const story of stories) {
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    out.push({ label: `story ${story}`, resources, order, today, policies: content.policies });
    for (const v of VARIATIONS) {
      const copy = structuredClone(storyResources(story));
      const o = storyOrder(story, copy);
      const extra = v.change(copy, o);
      out.push({ label: `story ${story} (${v.name})`, resources: [...copy, ...(Array.isArray(extra) ? extra : [])], order: o, today, policies: policiesFor(content, story.split('-')[0], o) });
    }
  }
  return out;
}

/** A small deterministic generator, so the sampled fact assignments are the same on every run. */
function prng(seed: number) {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
}

/** Values a fact can take over the facts (answers included), unknown among them. */
function domain(policy: CompiledPolicy, name: string): (FactValue | undefined)[] {
  const def = policy.factsByName.get(name)?.def;
  switch (def?.type) {
    case 'boolean':
      return [true, false, undefined];
    case 'decimal':
    case 'integer':
      return [undefined, 0, 0.01, 1, 2, 4, 9, 15, 28, 28.00000001, 45, 100.5];
    case 'date':
      return [undefined, '2026-11-01', '2026-08-20', '2024-02-29', '2011-11-23', '2008-11-23', '1990-01-01', '2026'];
    case 'code':
    case 'string':
    case undefined: {
      const url = def?.answerValueSet ? `${content.canonicalBase}/ValueSet/${def.answerValueSet}` : undefined;
      const codes = (url ? content.valueSets.get(url)?.expansion?.contains ?? [] : []).map((c) => c.code!).filter(Boolean);
      return [undefined, ...codes.slice(0, 8), 'other'];
    }
  }
}

describe('compiled FHIRPath agrees with fhirpath.js', () => {
  it('compiles every expression the content compiles at load (none left to fhirpath.js)', () => {
    const kinds = { compiled: 0, fallback: 0 };
    for (const p of content.policies) {
      for (const f of p.facts) {
        kinds[compiledKind(f.expr)!]++;
        if (f.askWhen) kinds[compiledKind(f.askWhen)!]++;
      }
      for (const r of [...p.requirements, ...p.pathways, ...p.limits]) {
        kinds[compiledKind(r.when)!]++;
        if (r.propose) kinds[compiledKind(r.propose.value)!]++;
      }
    }
    expect(kinds.compiled).toBeGreaterThan(250);
    expect(kinds.fallback).toBe(0);
  });

  it('gives the same results over every story, every case file and variations of the stories', () => {
    for (const s of storyScenarios()) for (const p of s.policies) runScenario(s, p);
    for (const s of caseScenarios(content)) for (const p of s.policies) runScenario(s, p, s.answers);
    // Answers supplied as facts: every askable fact answered (each value of its domain in turn) over a story.
    for (const p of content.policies) {
      const story = stories.find((id) => id.startsWith(p.file.payer))!;
      const resources = storyResources(story);
      const s = { label: `answers over ${story}`, resources, order: storyOrder(story, resources), today: '2026-11-23', policies: [p] };
      for (const f of p.facts.filter((x) => x.def.askable !== false)) {
        for (const v of domain(p, f.name)) if (v !== undefined) runScenario(s, p, { [f.name]: v });
      }
    }
    // Rules, proposals and askWhen over sampled fact values: three-valued logic over every combination reached.
    const random = prng(15);
    for (const p of content.policies) {
      const names = [...p.factsByName.keys()];
      for (let i = 0; i < 400; i++) {
        const known: Record<string, FactValue> = {};
        for (const n of names) {
          const d = domain(p, n);
          const v = d[Math.floor(random() * d.length)];
          if (v !== undefined) known[n] = v;
        }
        overFacts(p, known, '2026-11-23', `sampled ${i}`);
      }
    }

    expect(tally.faults).toEqual([]);
    expect(tally.mismatches).toEqual([]);
    // Enough of everything was compared, and almost nothing handed back to fhirpath.js (the bails: evaluations with
    // a `_birthDate` extension sibling, fhirpath.js errors, and the like).
    expect(exprs.size).toBeGreaterThan(140);
    expect(tally.compared).toBeGreaterThan(50_000);
    expect(tally.bails / tally.evaluations).toBeLessThan(0.02);
    // The malformed variations make fhirpath.js throw, and each time the compiled code handed the evaluation back.
    expect(tally.bothThrew).toBeGreaterThan(30);
    expect([...exprs.values()].filter((e) => !e.fast).map((e) => e.label)).toEqual([]);
    console.info(`compiled FHIRPath: ${exprs.size} expressions, ${tally.evaluations} evaluations, ${tally.compared} compared, ${tally.bails} handed to fhirpath.js (${tally.bothThrew} where it threw)`, Object.fromEntries(bailed));
  }, 300_000);
});
