import { inspect, isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BAIL } from '../../src/fhir/fhirpath-compiler.js';
import { compiledFhirPath, referenceFhirPath } from '../../src/fhir/fhirpath.js';
import type { CompiledExpression, FhirPathOptions } from '../../src/fhir/fhirpath.js';
import { testContent } from '../helpers/app.js';

/**
 * Differential fuzzing of the compiled FHIRPath (src/fhir/fhirpath-compiler.ts) against fhirpath.js, the reference
 * engine: random expressions from a grammar of the constructs the compiler compiles (operators, three-valued logic,
 * equality and membership, arithmetic, union, path navigation over choice types, type filters, lambdas with `$this`,
 * string and date functions, the user functions), over random R4 resources (Patient, Observation with value[x] of
 * several types, Condition with onset[x], MedicationRequest with dosage) and plain objects of facts. For every pair
 * the compiled code must give fhirpath.js's result item for item, or hand the evaluation back to it (a bail); it
 * must never answer where fhirpath.js throws. The seed is fixed so CI sees the same cases every run;
 * FHIRPATH_FUZZ_RUNS and FHIRPATH_FUZZ_SEED explore further locally.
 */
const content = testContent();
const r4: FhirPathOptions = { valueSets: content.valueSets, valueSetBase: `${content.canonicalBase}/ValueSet`, model: 'r4' };
const none: FhirPathOptions = { ...r4, model: 'none' };
const RUNS = Number(process.env.FHIRPATH_FUZZ_RUNS ?? 2500);
const SEED = Number(process.env.FHIRPATH_FUZZ_SEED ?? 20261202);
/** About 5 s each on a quiet machine; room for the whole suite sharing two cores. */
const FUZZ_TIMEOUT = 60_000 * Math.max(1, RUNS / 2500);

// ---- values -------------------------------------------------------------------------------------------------------

const dateText = fc.constantFrom('2026-11-01', '2026-11', '2026', '2010-05-01', '2026-11-01T10:00:00Z', '2026-11-01T10:00:00+05:00', '2026-11-01T10:00', 'soon', '');
const dateOnly = fc.constantFrom('2026-11-01', '2026-11', '2010-05-01', '1950-01-31');
const dateTime = fc.constantFrom('2026-11-01T10:00:00Z', '2026-10-31T23:30:00-05:00', '2026-11-01', '2026-11', '2025-01-01T00:00:00.000Z');
const decimal = fc.constantFrom(0, 1, 1.0, 1.5, 0.1, 0.30000000000000004, 2.5, 28, 28.000000001, 70, 1e21, -3, 100000000.5);
const text = fc.constantFrom('final', 'Final', 'amended', 'a', 'A', '', '5', '1.0', 'kg', 'Intrathecal MTX', 'a.b', 'x\ny', 'true');
const ucum = 'http://unitsofmeasure.org';
const quantity = fc.record(
  {
    value: decimal,
    comparator: fc.constantFrom('<', '>='),
    unit: fc.constantFrom('kg', 'mg', 'a', 'mL/min'),
    system: fc.constantFrom(ucum, 'http://example.org/units'),
    code: fc.constantFrom('kg', 'mg', 'a', 'mL/min'),
  },
  { requiredKeys: ['value'] },
).map((q) => (q.comparator !== undefined && q.value !== 0 ? (({ comparator: _c, ...rest }) => rest)(q) : q));
const coding = fc.record(
  {
    system: fc.constantFrom('http://loinc.org', 'http://snomed.info/sct', 'http://www.nlm.nih.gov/research/umls/rxnorm', 'http://hl7.org/fhir/sid/icd-10-cm'),
    code: fc.constantFrom('29463-7', '8302-2', '2093-3', '1723222', 'C50.911', '254637007', '363346000'),
    display: fc.constantFrom('Body weight', 'Body height', 'Breast cancer', 'pembrolizumab'),
  },
  { requiredKeys: ['code'] },
);
const concept = fc.record({ coding: fc.array(coding, { maxLength: 2 }), text: fc.constantFrom('Body weight', 'pembrolizumab 100 MG/4ML', 'x') }, { requiredKeys: [] });
const primitiveExtension = fc.record({ id: fc.constant('x1'), extension: fc.constant([{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }]) }, { requiredKeys: [] });
const period = fc.record({ start: dateTime, end: dateTime }, { requiredKeys: [] });

/** One choice of a value[x]/onset[x]/effective[x] element, spelled as FHIR JSON spells it. */
const choice = (name: string, options: Record<string, fc.Arbitrary<unknown>>) =>
  fc.option(
    fc.oneof(...Object.entries(options).map(([type, arb]) => arb.map((v) => ({ [`${name}${type}`]: v })))),
    { nil: {} },
  );

const patient = fc
  .tuple(
    fc.record(
      {
        id: fc.constant('p1'),
        birthDate: dateOnly,
        _birthDate: primitiveExtension,
        active: fc.boolean(),
        _gender: primitiveExtension,
        extension: fc.array(
          fc.oneof(
            fc.record({ url: fc.constant('http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex'), valueCode: fc.constantFrom('F', 'M') }),
            fc.record({ url: fc.constant('http://example.org/flag'), valueBoolean: fc.boolean() }),
            fc.record({ url: fc.constant('http://example.org/coded'), valueCoding: coding }),
          ),
          { maxLength: 2 },
        ),
        gender: fc.constantFrom('female', 'male', 'unknown'),
        name: fc.array(
          fc.record({ given: fc.array(fc.option(fc.constantFrom('Ann', 'Bo', 'ann'), { nil: null, freq: 8 }), { maxLength: 3 }), family: fc.constantFrom('Lee', 'Ng') }, { requiredKeys: [] }),
          { maxLength: 2 },
        ),
      },
      { requiredKeys: [] },
    ),
    choice('deceased', { Boolean: fc.boolean(), DateTime: dateTime }),
    choice('multipleBirth', { Boolean: fc.boolean(), Integer: fc.integer({ min: 0, max: 3 }) }),
  )
  .map(([base, d, m]) => {
    // A null in a primitive array stands for an element that has only an extension (its `_given` sibling).
    const name = base.name?.map((n) => (n.given?.includes(null) ? { ...n, _given: n.given.map((g) => (g === null ? { extension: [{ url: 'http://example.org/x', valueString: 'x' }] } : null)) } : n));
    return { resourceType: 'Patient', ...base, ...(name ? { name } : {}), ...d, ...m };
  });

const observation = fc
  .tuple(
    fc.record(
      {
        id: fc.constant('o1'),
        status: fc.constantFrom('final', 'amended', 'preliminary', 'entered-in-error'),
        code: concept,
        issued: fc.constant('2026-11-01T10:00:00.000Z'),
        interpretation: fc.array(concept, { maxLength: 1 }),
        component: fc.array(fc.record({ code: concept, valueQuantity: quantity }, { requiredKeys: ['code'] }), { maxLength: 2 }),
      },
      { requiredKeys: ['status', 'code'] },
    ),
    choice('value', {
      Quantity: quantity,
      String: text,
      Boolean: fc.boolean(),
      Integer: fc.integer({ min: -2, max: 100 }),
      CodeableConcept: concept,
      DateTime: dateTime,
      Period: period,
    }),
    choice('effective', { DateTime: dateTime, Period: period, Instant: fc.constant('2026-11-01T10:00:00.000Z') }),
    fc.option(primitiveExtension.map((e) => ({ _status: e })), { nil: {} }),
  )
  .map(([base, v, e, x]) => ({ resourceType: 'Observation', ...base, ...v, ...e, ...x }));

const condition = fc
  .tuple(
    fc.record(
      {
        id: fc.constant('c1'),
        code: concept,
        clinicalStatus: fc.constant({ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] }),
        recordedDate: dateTime,
      },
      { requiredKeys: ['code'] },
    ),
    choice('onset', { DateTime: dateTime, Period: period, String: text, Age: quantity }),
  )
  .map(([base, o]) => ({ resourceType: 'Condition', ...base, ...o }));

const medicationRequest = fc
  .tuple(
    fc.record(
      {
        id: fc.constant('m1'),
        status: fc.constantFrom('active', 'draft'),
        intent: fc.constant('order'),
        authoredOn: dateOnly,
        dosageInstruction: fc.array(
          fc.record(
            {
              text: text,
              timing: fc.record({ repeat: fc.record({ frequency: fc.integer({ min: 1, max: 3 }), period: decimal, periodUnit: fc.constantFrom('d', 'wk') }, { requiredKeys: [] }) }),
              doseAndRate: fc.array(fc.record({ doseQuantity: quantity }), { maxLength: 2 }),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 2 },
        ),
      },
      { requiredKeys: ['status'] },
    ),
    choice('medication', { CodeableConcept: concept, Reference: fc.constant({ reference: 'Medication/1' }) }),
  )
  .map(([base, m]) => ({ resourceType: 'MedicationRequest', ...base, ...m }));

const resource = fc.oneof(patient, observation, condition, medicationRequest);

/** A fact value as the policy evaluator keeps them, and the odd ones a fact object may still hold. */
const factValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.boolean(),
  decimal,
  fc.integer({ min: -3, max: 30 }),
  text,
  dateText,
  fc.constant(null),
  fc.constant([]),
  fc.array(fc.oneof(fc.boolean(), decimal, text), { maxLength: 3 }),
  fc.record({ x: decimal, y: text }, { requiredKeys: [] }),
);
// Fact names that are also type names (`date`, `code`, `Object`...) reach the root type test fhirpath.js makes.
const facts = fc.dictionary(fc.constantFrom('a', 'b', 'n', 's', 'd', 'flag', 'list', 'obj', 'date', 'code', 'Object', 'String', 'Patient'), factValue, { maxKeys: 6 });

const env = fc.record({
  obs: fc.array(observation, { maxLength: 3 }),
  conditions: fc.array(condition, { maxLength: 2 }),
  patient: patient,
  order: medicationRequest,
  num: decimal,
  str: text,
  date: dateText,
  flag: fc.option(fc.boolean(), { nil: null }),
  empty: fc.constant([]),
  list: fc.array(fc.oneof(decimal, text, fc.boolean()), { maxLength: 3 }),
  today: dateOnly,
});

// ---- expressions --------------------------------------------------------------------------------------------------

const R4_MEMBERS = [
  'birthDate', 'active', 'gender', 'name', 'given', 'family', 'deceased', 'multipleBirth', 'status', 'value', 'unit', 'code',
  'coding', 'system', 'display', 'text', 'effective', 'issued', 'component', 'interpretation', 'onset', 'start', 'end',
  'recordedDate', 'clinicalStatus', 'dosageInstruction', 'doseAndRate', 'dose', 'timing', 'repeat', 'frequency', 'period',
  'authoredOn', 'medication', 'reference', 'id', 'extension', 'url', 'valueQuantity', 'valueString', 'Patient', 'Observation',
  'Condition', 'MedicationRequest', 'Quantity', 'string',
];
const NONE_MEMBERS = ['a', 'b', 'n', 's', 'd', 'flag', 'list', 'obj', 'x', 'y', 'missing', 'date', 'code', 'Object', 'String', 'Patient'];
const VARIABLES = ['%obs', '%conditions', '%patient', '%order', '%num', '%str', '%date', '%flag', '%empty', '%list', '%today', '%context'];
const LITERALS = [
  'true', 'false', '{}', '0', '1', '2', '1.0', '0.1', '2.5', '28', "'final'", "'a'", "'A'", "''", "'5'", "'kg'", "'2026-11-01'",
  "'a.b'", '@2026-11-01', '@2026-11', '@2026-11-01T10:00:00Z', '@2010-05-01', '1 year', '30 days', '2 weeks',
];
const TYPES = ['Quantity', 'string', 'String', 'code', 'dateTime', 'DateTime', 'date', 'Period', 'boolean', 'Boolean', 'integer', 'Integer', 'decimal', 'Decimal', 'CodeableConcept', 'Coding', 'Age', 'Observation', 'Patient', 'HumanName', 'FHIR.string', 'System.String'];
const BINARY = ['=', '!=', '<', '>', '<=', '>=', 'and', 'or', 'xor', 'implies', '|', 'in', 'contains', '+', '-', '*', '/'];
const NULLARY = ['exists', 'empty', 'not', 'first', 'last', 'count', 'sum', 'max', 'floor', 'sqrt', 'lower', 'toString', 'toDate', 'toDateTime'];
const LAMBDAS = ['where', 'select', 'exists', 'all'];
const STRING_FNS = ['contains', 'startsWith', 'matches'];
const PATTERNS = ["'a'", "'^A'", "'.'", "'a.b'", "'[0-9]+'", "''", "'(?i)a'", "'\\\\d'", "'x.y'"];

function expressions(members: string[]): fc.Arbitrary<string> {
  const { expr } = fc.letrec<{ expr: string; term: string }>((tie) => ({
    term: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...members) },
      { weight: 2, arbitrary: fc.constantFrom(...VARIABLES) },
      { weight: 3, arbitrary: fc.constantFrom(...LITERALS) },
      { weight: 1, arbitrary: fc.constant('$this') },
    ),
    expr: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 5, arbitrary: tie('term') },
      { weight: 3, arbitrary: fc.tuple(tie('expr'), fc.constantFrom(...members)).map(([e, m]) => `${paren(e)}.${m}`) },
      { weight: 3, arbitrary: fc.tuple(tie('expr'), fc.constantFrom(...BINARY), tie('expr')).map(([a, op, b]) => `${paren(a)} ${op} ${paren(b)}`) },
      { weight: 2, arbitrary: fc.tuple(tie('expr'), fc.constantFrom(...NULLARY)).map(([e, f]) => `${paren(e)}.${f}()`) },
      { weight: 2, arbitrary: fc.tuple(tie('expr'), fc.constantFrom(...LAMBDAS), tie('expr')).map(([e, f, c]) => `${paren(e)}.${f}(${c})`) },
      { weight: 1, arbitrary: fc.tuple(tie('expr'), fc.constantFrom(...TYPES)).map(([e, t]) => `${paren(e)}.ofType(${t})`) },
      { weight: 1, arbitrary: fc.tuple(tie('expr'), fc.constantFrom(...STRING_FNS), fc.oneof(fc.constantFrom(...PATTERNS), tie('expr'))).map(([e, f, a]) => `${paren(e)}.${f}(${a})`) },
      { weight: 1, arbitrary: fc.tuple(tie('expr'), fc.integer({ min: -1, max: 4 }), fc.option(fc.integer({ min: -1, max: 3 }))).map(([e, s, l]) => `${paren(e)}.substring(${num(s)}${l === null ? '' : `, ${num(l)}`})`) },
      { weight: 1, arbitrary: fc.tuple(tie('expr'), tie('expr')).map(([e, x]) => `${paren(e)}.exclude(${x})`) },
      { weight: 1, arbitrary: fc.tuple(tie('expr'), tie('expr'), fc.option(tie('expr'))).map(([c, t, o]) => `iif(${c}, ${t}${o === null ? '' : `, ${o}`})`) },
      {
        weight: 1,
        arbitrary: fc.tuple(
          tie('expr'),
          fc.constantFrom("memberOf('b-all-snomed')", "coded('http://loinc.org', '29463-7')", "codedIn('b-all-snomed')", "recent('2026-11-20', 30)", 'recent(%today, 400)'),
        ).map(([e, f]) => `${paren(e)}.${f}`),
      },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }).map((n) => `-${n}`) },
    ),
  }));
  return expr;
}
const paren = (e: string) => (/^[%$@'A-Za-z0-9_{}.]+(\(\))?$/.test(e) && !/^-/.test(e) ? e : `(${e})`);
const num = (n: number) => (n < 0 ? `(0 - ${-n})` : String(n));

/**
 * Content-like expressions: typed pieces (Booleans, numbers, strings, dates, collections of resources) combined the
 * way policy facts combine them, so that most evaluations reach the compiled semantics rather than a type error.
 */
function typedExpressions(model: 'r4' | 'none'): fc.Arbitrary<string> {
  const S = fc.constantFrom("'final'", "'amended'", "'a'", "'A'", "''", "'kg'", "'mg'", "'5'", "'29463-7'", "'http://loinc.org'", "'Intrathecal MTX'");
  const N = fc.constantFrom('0', '1', '2', '5', '18', '28', '28.0', '1.5', '0.1', '0.3', '70', '100', '2.50');
  const D = fc.constantFrom('@2026-11-01', '@2026-11', '@2026', '@2010-05-01', '@2026-11-01T10:00:00Z', '@2026-11-01T05:00:00-05:00', '@2026-10-31T23:30');
  const DUR = fc.constantFrom('1 year', '18 years', '30 days', '2 weeks', '6 months', '1 day');
  const CMP = fc.constantFrom('=', '!=', '<', '>', '<=', '>=');
  const resources = model === 'r4' ? ['%obs', '%conditions', '%obs.where(status = \'final\')', "%obs.coded('http://loinc.org', '29463-7')", '%obs.recent(%today, 30)', "%conditions.codedIn('b-all-snomed')"] : ['%obs', '%conditions'];
  const C = fc.constantFrom(...resources);
  const num: string[] =
    model === 'r4'
      ? ['value.ofType(Quantity).value', 'value.value', 'value.ofType(integer)', 'component.value.ofType(Quantity).value', '%obs.value.ofType(Quantity).value', '%order.dosageInstruction.doseAndRate.dose.ofType(Quantity).value', '%order.dosageInstruction.timing.repeat.frequency', '%order.dosageInstruction.timing.repeat.period', '%patient.multipleBirth.ofType(integer)', '%num', '%list']
      : ['n', 'a', 'b', 'obj.x', 'list', '%num', '%list'];
  const str: string[] =
    model === 'r4'
      ? ['status', 'value.ofType(string)', 'value.unit', 'value.ofType(Quantity).code', 'code.coding.code', 'code.coding.system', 'code.text', '%patient.gender', '%patient.name.given', '%patient.name.family', 'onset.ofType(string)', '%order.dosageInstruction.text', '%str', 'code.coding.display']
      : ['s', 'a', 'obj.y', 'd', '%str', 'list'];
  const date: string[] =
    model === 'r4'
      ? ['effective', 'effective.ofType(dateTime)', 'effective.ofType(Period).start', 'issued', 'onset.ofType(dateTime)', 'onset.ofType(Period).end', '%patient.birthDate', 'recordedDate', '%order.authoredOn', '%patient.deceased.ofType(dateTime)', 'value.ofType(dateTime)', '%today.toDate()', '%date.toDateTime()']
      : ['d.toDate()', 'd.toDateTime()', '%today.toDate()', '%date.toDate()', 'd'];
  const bool: string[] =
    model === 'r4'
      ? ['value.ofType(boolean)', '%patient.active', '%patient.deceased.ofType(boolean)', '%flag', 'value.exists()', 'code.coding.exists()', "code.memberOf('b-all-snomed')", "code.coding.memberOf('b-all-snomed')"]
      : ['flag', 'a', 'b', '%flag', 'list', 'missing'];
  const { bool: B } = fc.letrec<{ bool: string; num: string; str: string; date: string }>((tie) => ({
    num: fc.oneof(
      { depthSize: 'small' },
      { weight: 4, arbitrary: fc.constantFrom(...num) },
      { weight: 2, arbitrary: N },
      { weight: 1, arbitrary: fc.tuple(tie('num'), fc.constantFrom('+', '-', '*', '/'), tie('num')).map(([a, op, b]) => `(${a} ${op} ${b})`) },
      { weight: 1, arbitrary: fc.tuple(tie('num'), fc.constantFrom('first', 'last', 'sum', 'max', 'floor', 'count', 'sqrt')).map(([a, f]) => `(${a}).${f}()`) },
      { weight: 1, arbitrary: fc.tuple(C, fc.constantFrom('count', 'exists')).map(([c, f]) => (f === 'count' ? `${c}.count()` : `${c}.select(value.ofType(Quantity).value).max()`)) },
      { weight: 1, arbitrary: fc.tuple(tie('bool'), tie('num'), tie('num')).map(([c, a, b]) => `iif(${c}, ${a}, ${b})`) },
    ),
    str: fc.oneof(
      { depthSize: 'small' },
      { weight: 4, arbitrary: fc.constantFrom(...str) },
      { weight: 2, arbitrary: S },
      { weight: 1, arbitrary: tie('str').map((a) => `(${a}).lower()`) },
      { weight: 1, arbitrary: fc.tuple(tie('str'), fc.integer({ min: 0, max: 3 }), fc.option(fc.integer({ min: 0, max: 3 }))).map(([a, i, l]) => `(${a}).substring(${i}${l === null ? '' : `, ${l}`})`) },
      { weight: 1, arbitrary: fc.tuple(tie('str'), tie('str')).map(([a, b]) => `(${a} + ${b})`) },
      { weight: 1, arbitrary: tie('num').map((a) => `(${a}).toString()`) },
      { weight: 1, arbitrary: tie('date').map((a) => `(${a}).toString()`) },
      { weight: 1, arbitrary: fc.tuple(tie('str'), fc.constantFrom('first', 'last')).map(([a, f]) => `(${a}).${f}()`) },
    ),
    date: fc.oneof(
      { depthSize: 'small' },
      { weight: 4, arbitrary: fc.constantFrom(...date) },
      { weight: 2, arbitrary: D },
      { weight: 1, arbitrary: fc.tuple(tie('date'), fc.constantFrom('+', '-'), DUR).map(([a, op, d]) => `(${a} ${op} ${d})`) },
      { weight: 1, arbitrary: tie('str').map((a) => `(${a}).toDate()`) },
    ),
    bool: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 3, arbitrary: fc.constantFrom(...bool, 'true', 'false', '{}') },
      { weight: 3, arbitrary: fc.tuple(tie('num'), CMP, tie('num')).map(([a, op, b]) => `${a} ${op} ${b}`) },
      { weight: 2, arbitrary: fc.tuple(tie('str'), CMP, tie('str')).map(([a, op, b]) => `${a} ${op} ${b}`) },
      { weight: 2, arbitrary: fc.tuple(tie('date'), CMP, tie('date')).map(([a, op, b]) => `${a} ${op} ${b}`) },
      { weight: 2, arbitrary: fc.tuple(tie('bool'), fc.constantFrom('and', 'or', 'xor', 'implies'), tie('bool')).map(([a, op, b]) => `(${a}) ${op} (${b})`) },
      { weight: 1, arbitrary: tie('bool').map((a) => `(${a}).not()`) },
      { weight: 1, arbitrary: fc.tuple(tie('str'), fc.array(S, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([a, l, inOp]) => (inOp ? `(${a}) in (${l.join(' | ')})` : `(${l.join(' | ')}) contains (${a})`)) },
      { weight: 1, arbitrary: fc.tuple(tie('str'), fc.constantFrom('contains', 'startsWith', 'matches'), S).map(([a, f, b]) => `(${a}).${f}(${b})`) },
      { weight: 1, arbitrary: fc.tuple(tie('str'), fc.constantFrom('exists', 'empty')).map(([a, f]) => `(${a}).${f}()`) },
      { weight: 2, arbitrary: fc.tuple(C, fc.constantFrom('exists', 'all', 'where', 'select'), tie('bool')).map(([c, f, b]) => (f === 'where' || f === 'select' ? `${c}.${f}(${b}).exists()` : `${c}.${f}(${b})`)) },
      { weight: 1, arbitrary: fc.tuple(C, tie('bool'), tie('bool')).map(([c, a, b]) => `${c}.where(${a}).exists(${b})`) },
      { weight: 1, arbitrary: fc.tuple(tie('bool'), tie('bool'), tie('bool')).map(([c, a, b]) => `iif(${c}, ${a}, ${b})`) },
      { weight: 1, arbitrary: fc.tuple(C, tie('str')).map(([c, a]) => `${c}.code.coding.where(code = ${a} or system = $this.system).exists()`) },
      { weight: 1, arbitrary: fc.tuple(tie('num'), tie('num')).map(([a, b]) => `(${a} | ${b}).count() = 1`) },
    ),
  }));
  return B;
}

// ---- the differential check ---------------------------------------------------------------------------------------

interface Outcome {
  value?: unknown[];
  error?: unknown;
}
function run(fn: CompiledExpression, input: unknown, vars: Record<string, unknown>, shared = false): Outcome {
  // A fresh copy for each engine: fhirpath.js may mark objects it returns, and neither engine should see the other's.
  const copy = <T>(x: T): T => (x === undefined || shared ? x : (JSON.parse(JSON.stringify(x)) as T));
  try {
    return { value: fn(copy(input), copy(vars)) };
  } catch (error) {
    return { error };
  }
}

const stats = { cases: 0, compiled: 0, answered: 0, bailed: 0, bothThrew: 0 };
const compiledCache = new Map<string, { fast?: CompiledExpression; ref: CompiledExpression } | null>();
function engines(expression: string, options: FhirPathOptions) {
  const key = `${options.model}|${expression}`;
  if (!compiledCache.has(key)) {
    let ref: CompiledExpression;
    try {
      ref = referenceFhirPath(expression, options);
    } catch {
      compiledCache.set(key, null); // not an expression fhirpath.js accepts
      return null;
    }
    let fast: CompiledExpression | undefined;
    try {
      fast = compiledFhirPath(expression, options);
    } catch (err) {
      // fhirpath.js compiled it, so the compiler must too (or leave it to fhirpath.js): content load must not fail.
      fast = () => {
        throw new Error(`compiling threw ${String(err)}`);
      };
    }
    compiledCache.set(key, { ref, fast });
  }
  return compiledCache.get(key)!;
}

/** Undefined when the engines agree, else a description of the disagreement. */
function disagreement(expression: string, options: FhirPathOptions, input: unknown, vars: Record<string, unknown>, shared = false): string | undefined {
  stats.cases++;
  const e = engines(expression, options);
  if (!e?.fast) return undefined;
  stats.compiled++;
  const fast = run(e.fast, input, vars, shared);
  const ref = run(e.ref, input, vars);
  if (fast.error === BAIL) {
    stats.bailed++;
    if (ref.error) stats.bothThrew++;
    return undefined;
  }
  if (fast.error) return `compiled code threw ${String((fast.error as Error).message ?? fast.error)}`;
  stats.answered++;
  if (ref.error) return `fhirpath.js threw "${(ref.error as Error).message}", compiled gave ${JSON.stringify(fast.value)}`;
  if (!isDeepStrictEqual(fast.value, ref.value)) {
    const [f, r] = [JSON.stringify(fast.value), JSON.stringify(ref.value)];
    // Same JSON, different values (-0, a hidden property, a prototype): show what JSON hides.
    if (f === r) return `compiled ${inspect(fast.value, { showHidden: true, depth: 8 })}, fhirpath.js ${inspect(ref.value, { showHidden: true, depth: 8 })}`;
    return `compiled ${f}, fhirpath.js ${r}`;
  }
  return undefined;
}

/** FHIRPATH_FUZZ_COLLECT=1 lists every disagreement (for exploring) instead of failing on the first, shrunk. */
const collected = new Map<string, string>();
function report(expression: string, input: unknown, vars: unknown, d: string | undefined): void {
  if (!d) return;
  if (!process.env.FHIRPATH_FUZZ_COLLECT) throw new Error(`${expression}: ${d}`);
  if (!collected.has(expression)) collected.set(expression, `${d} | input ${JSON.stringify(input)} | env ${JSON.stringify(vars)}`);
}

describe('compiled FHIRPath agrees with fhirpath.js on random expressions and data', () => {
  it('over R4 resources', () => {
    fc.assert(
      fc.property(expressions(R4_MEMBERS), resource, env, (expression, res, vars) => {
        const d = disagreement(expression, r4, res, vars);
        report(expression, res, vars, d);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }, FUZZ_TIMEOUT);

  it('over plain objects of facts', () => {
    fc.assert(
      fc.property(expressions(NONE_MEMBERS), facts, env, (expression, res, vars) => {
        const d = disagreement(expression, none, res, vars);
        report(expression, res, vars, d);
      }),
      { seed: SEED + 1, numRuns: RUNS },
    );
  }, FUZZ_TIMEOUT);

  it('over content-like expressions on R4 resources', () => {
    fc.assert(
      fc.property(typedExpressions('r4'), resource, env, (expression, res, vars) => {
        report(expression, res, vars, disagreement(expression, r4, res, vars));
      }),
      { seed: SEED + 2, numRuns: RUNS },
    );
  }, FUZZ_TIMEOUT);

  it('over content-like expressions on facts', () => {
    fc.assert(
      fc.property(typedExpressions('none'), facts, env, (expression, res, vars) => {
        report(expression, res, vars, disagreement(expression, none, res, vars));
      }),
      { seed: SEED + 3, numRuns: RUNS },
    );
  }, FUZZ_TIMEOUT);

  it('over criteria that hold for one item and throw for a later one (where, select, exists, all, iif)', () => {
    // fhirpath.js runs where()/exists()'s criterion on every item: the compiled code must not stop at a match.
    const lambdaExpr = fc
      .tuple(
        fc.constantFrom('%list', 'list', 'n', '%obs.value', '%obs.status', '%conditions.onset'),
        fc.constantFrom('where', 'select', 'exists', 'all'),
        fc.constantFrom('>', '<', '=', '+', 'and', 'in', 'contains', '.startsWith', '.matches', '.substring'),
        fc.constantFrom('1', '2.5', "'a'", 'true', '@2026-11-01', '{}'),
        fc.constantFrom('', '.exists()', '.count()', '.first()', '.not()'),
      )
      .map(([c, f, op, lit, tail]) => `${c}.${f}(${op.startsWith('.') ? `$this${op}(${lit})` : `$this ${op} ${lit}`})${tail}`);
    const mixed = fc.array(fc.oneof(fc.boolean(), decimal, text, dateText), { minLength: 2, maxLength: 4 });
    fc.assert(
      fc.property(lambdaExpr, fc.tuple(mixed, mixed), env, (expression, [list, n], vars) => {
        report(expression, { list, n }, { ...vars, list }, disagreement(expression, none, { list, n }, { ...vars, list }));
      }),
      { seed: SEED + 5, numRuns: Math.ceil(RUNS / 2) },
    );
  }, FUZZ_TIMEOUT);

  it('over one record shared by many expressions, as in a request (memoised collections and user functions)', () => {
    // Production evaluates every fact of every policy over the same record objects: the compiled code keeps per-value
    // caches (a variable's items, user-function results, date values). Here the compiled code sees the same objects
    // for every expression (and twice over), fhirpath.js a fresh copy each time.
    const exprs = fc.array(fc.oneof(typedExpressions('r4'), expressions(R4_MEMBERS)), { minLength: 4, maxLength: 8 });
    fc.assert(
      fc.property(exprs, resource, env, (list, generated, generatedVars) => {
        // Plain JSON objects, as a request body gives them (fast-check may make null-prototype records).
        const [res, vars] = JSON.parse(JSON.stringify([generated, generatedVars])) as [unknown, Record<string, unknown>];
        for (const expression of [...list, ...list]) report(expression, res, vars, disagreement(expression, r4, res, vars, true));
      }),
      { seed: SEED + 4, numRuns: Math.ceil(RUNS / 8) },
    );
  }, FUZZ_TIMEOUT);

  it('reaches the compiled code, not only the fallback and bails', () => {
    // Both properties ran above: most expressions compiled, and a good share answered by the compiled code itself.
    console.info('compiled FHIRPath fuzz:', stats);
    for (const [expression, d] of collected) console.info(`DISAGREEMENT ${expression}: ${d}`);
    expect(stats.compiled / stats.cases).toBeGreaterThan(0.6);
    expect(stats.answered / stats.compiled).toBeGreaterThan(0.5);
  });
});
