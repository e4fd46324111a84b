import { describe, expect, it } from 'vitest';
import { BAIL } from '../../src/fhir/fhirpath-compiler.js';
import { compileFhirPath, compiledFhirPath, compiledKind, referenceFhirPath } from '../../src/fhir/fhirpath.js';
import type { FhirPathOptions } from '../../src/fhir/fhirpath.js';
import { testContent } from '../helpers/app.js';

/**
 * The corners of FHIRPath (https://hl7.org/fhirpath/N1/) where a compiler most easily parts from fhirpath.js: each
 * case pins the answer, and both engines must give it (or, for `bail`, the compiled code must hand the evaluation
 * to fhirpath.js rather than answer itself).
 */
const content = testContent();
const r4: FhirPathOptions = { valueSets: content.valueSets, valueSetBase: `${content.canonicalBase}/ValueSet`, model: 'r4' };
const none: FhirPathOptions = { ...r4, model: 'none' };

const observation = (value: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Observation',
  id: 'o1',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] },
  effectiveDateTime: '2026-11-01T10:00:00Z',
  ...value,
  ...extra,
});

interface Case {
  name: string;
  expression: string;
  model?: 'r4' | 'none';
  resource?: unknown;
  env?: Record<string, unknown>;
  /** The result both engines give. */
  expected?: unknown[];
  /** fhirpath.js throws: the compiled code must bail, not answer. */
  throws?: boolean;
  /** The compiled code hands this input to fhirpath.js (which gives `expected`). */
  bail?: boolean;
}

const CASES: Case[] = [
  // §6.5 Boolean logic: three-valued, with the singleton evaluation of collections
  { name: 'false and empty is false', expression: 'false and {}', model: 'none', expected: [false] },
  { name: 'true and empty is empty', expression: 'true and {}', model: 'none', expected: [] },
  { name: 'empty or true is true', expression: '{} or true', model: 'none', expected: [true] },
  { name: 'empty or false is empty', expression: '{} or false', model: 'none', expected: [] },
  { name: 'empty implies false is empty', expression: '{} implies false', model: 'none', expected: [] },
  { name: 'false implies empty is true', expression: 'false implies {}', model: 'none', expected: [true] },
  { name: 'empty implies true is true', expression: '{} implies true', model: 'none', expected: [true] },
  { name: 'a string in a Boolean position is true', expression: "'x' and true", model: 'none', expected: [true] },
  { name: 'xor with empty is empty', expression: 'true xor {}', model: 'none', expected: [] },
  { name: 'not() of empty is empty', expression: '{}.not()', model: 'none', expected: [] },
  { name: 'not() of a fact', expression: 'a.not()', model: 'none', resource: { a: false }, expected: [true] },
  { name: 'two items in a Boolean position throw', expression: '(true | false) and true', model: 'none', throws: true },
  // §6.1 equality and §6.4 membership
  { name: '= with an empty side is empty', expression: "a = 'x'", model: 'none', resource: {}, expected: [] },
  { name: '!= of different strings', expression: "a != 'x'", model: 'none', resource: { a: 'y' }, expected: [true] },
  { name: 'decimals equal at 8 places', expression: '0.1 + 0.2 = 0.3', model: 'none', expected: [true] },
  { name: '= compares collections item by item, in order', expression: "(%a | %b) = (%b | %a)", env: { a: 'x', b: 'y' }, expected: [false] },
  { name: '= of collections of different lengths is false', expression: "%a = ('x' | 'y')", env: { a: 'x' }, expected: [false] },
  { name: 'in of an empty item is empty', expression: "{} in ('a' | 'b')", model: 'none', expected: [] },
  { name: 'in of an empty collection is false', expression: "'a' in {}", model: 'none', expected: [false] },
  { name: 'union removes duplicates, first kept', expression: "('a' | 'b' | 'a').count()", model: 'none', expected: [2] },
  { name: 'a number against a string bails (fhirpath.js may parse numeric strings)', expression: "%n = '5'", env: { n: 5 }, expected: [false], bail: true },
  // §6.2 comparison, §6.6 math
  { name: 'comparison with an empty side is empty', expression: 'a > 1', model: 'none', resource: {}, expected: [] },
  { name: 'numbers within 1e-8 bail (whether fhirpath.js rounds depends on where they came from)', expression: '28.000000001 <= 28', model: 'none', expected: [true], bail: true },
  { name: 'a fact against a literal', expression: 'dose <= 28', model: 'none', resource: { dose: 28.5 }, expected: [false] },
  { name: 'division by zero is empty', expression: '1 / 0', model: 'none', expected: [] },
  { name: 'decimal arithmetic is floating point, as in fhirpath.js', expression: '(0.1 + 0.2) * 10', model: 'none', expected: [3.0000000000000004] },
  { name: 'floor of a product', expression: '(15 * 1.73 * 10).floor() / 10', model: 'none', expected: [25.9] },
  { name: 'sqrt of a negative is empty', expression: '(0 - 4).sqrt()', model: 'none', expected: [] },
  { name: 'string + string concatenates', expression: "'a' + 'b'", model: 'none', expected: ['ab'] },
  { name: 'sum of nothing is empty', expression: '{}.sum()', model: 'none', expected: [] },
  { name: 'sum and max of numbers', expression: '(1 | 2.5 | 4).sum() + (1 | 2.5 | 4).max()', model: 'none', expected: [11.5] },
  { name: 'a number compared with a string throws', expression: "1 < 'a'", model: 'none', throws: true },
  // §5 functions
  { name: 'first() and last() of empty are empty', expression: '{}.first() | {}.last()', model: 'none', expected: [] },
  { name: 'iif with an empty criterion takes the otherwise branch', expression: "iif({}, 'yes', 'no')", model: 'none', expected: ['no'] },
  { name: 'iif with a non-Boolean criterion takes the otherwise branch', expression: "iif('x', 'yes', 'no')", model: 'none', expected: ['no'] },
  { name: 'iif without otherwise gives empty', expression: "iif(false, 'yes')", model: 'none', expected: [] },
  { name: 'where() drops items whose criterion is empty', expression: "('a' | 'b').where($this = %x)", env: { x: [] }, expected: [] },
  { name: 'exists(criteria)', expression: "('a' | 'b').exists($this = 'b')", model: 'none', expected: [true] },
  { name: 'exists(criteria) runs every criterion: a later error still throws', expression: "('a' | 'b').exists($this = 'a' or $this.substring('x') = 'y')", model: 'none', throws: true },
  { name: 'all() of empty is true', expression: '{}.all($this = 1)', model: 'none', expected: [true] },
  { name: 'select() flattens', expression: '%o.select(code.coding | code.coding).count()', env: { o: [observation({}), observation({})] }, expected: [2] },
  { name: 'count() of empty is 0', expression: '{}.count()', model: 'none', expected: [0] },
  { name: 'substring out of range is empty', expression: "'abc'.substring(3)", model: 'none', expected: [] },
  { name: 'substring with a length', expression: "'abcdef'.substring(1, 2)", model: 'none', expected: ['bc'] },
  { name: 'matches uses Unicode and dot-all flags', expression: "'a\\nb'.matches('a.b')", model: 'none', expected: [true] },
  { name: 'length() over a where(): a date not to the day (the course facts)', expression: "('2026-11' | '2026-11-05').where(length() < 10)", model: 'none', expected: ['2026-11'] },
  { name: 'length() of a string, and of empty', expression: "'abc'.length() = 3 and {}.length().empty()", model: 'none', expected: [true] },
  { name: 'length() of a number throws, as in fhirpath.js', expression: '5.length()', model: 'none', throws: true },
  { name: 'lower().contains()', expression: "'Intrathecal MTX'.lower().contains('intrathecal')", model: 'none', expected: [true] },
  { name: 'toString of a Boolean', expression: 'true.toString()', model: 'none', expected: ['true'] },
  { name: 'toString of a decimal keeps its literal text (bail)', expression: '1.0.toString()', model: 'none', expected: ['1.0'], bail: true },
  // fhirpath.js checks String/Integer arguments before the input: a bad argument throws even when the input is empty
  // (found by test/fhir/fhirpath-compiled-fuzz.test.ts: the compiled code answered [] here)
  { name: 'contains() with a number argument throws on empty input', expression: '{}.contains(28)', model: 'none', throws: true },
  { name: 'startsWith() with a Boolean argument throws on an absent fact', expression: 'flag.startsWith(true)', model: 'none', resource: {}, throws: true },
  { name: 'matches() with a number argument throws on empty input', expression: 'missing.matches(0.1)', model: 'none', resource: {}, throws: true },
  { name: 'substring() with a string length throws even past the end', expression: "'abc'.substring(5, 'x')", model: 'none', throws: true },
  { name: 'substring() with a string start throws on empty input', expression: "{}.substring('a')", model: 'none', throws: true },
  // Literal-only arguments are folded at compile time; a fold the compiled code cannot do must not fail the load
  { name: 'a union of a Boolean and a decimal literal compiles (and is left to fhirpath.js)', expression: '(true | 1.0) = a', model: 'none', resource: { a: 1 }, expected: [false], bail: true },
  // fhirpath.js keeps an item when its criterion's first item is truthy, and a Boolean element is a node (truthy)
  // whatever its value: where(active) keeps inactive patients (the spec would drop them). Content must compare
  // (`where(active = true)`); the compiled code keeps fhirpath.js's answer so the two never part.
  { name: 'where() over a Boolean element keeps items whose element is false (fhirpath.js)', expression: '%x.where(active).count()', env: { x: [{ resourceType: 'Patient', active: false }] }, expected: [1] },
  { name: 'where() comparing a Boolean element drops items whose element is false', expression: '%x.where(active = true).count()', env: { x: [{ resourceType: 'Patient', active: false }] }, expected: [0] },
  { name: 'exclude removes equal items', expression: "('a' | 'b' | 'c').exclude('b' | 'd')", model: 'none', expected: ['a', 'c'] },
  { name: 'distinct keeps the first of equal items, in order', expression: '%x.select(name).distinct()', env: { x: [{ name: 'vincristine' }, { name: 'cytarabine' }, { name: 'vincristine' }] }, model: 'none', expected: ['vincristine', 'cytarabine'] },
  { name: 'distinct counts one agent for two orders of it', expression: '%x.select(code).distinct().count()', env: { x: [{ code: '11202' }, { code: '11202' }] }, model: 'none', expected: [1] },
  // §Path selection over the R4 model: choice types, element types, extension siblings
  { name: 'value reads valueQuantity', expression: 'value.ofType(Quantity).value', resource: observation({ valueQuantity: { value: 70, unit: 'kg', code: 'kg' } }), expected: [70] },
  { name: 'value reads valueCodeableConcept', expression: 'value.coding.code', resource: observation({ valueCodeableConcept: { coding: [{ code: 'positive' }] } }), expected: ['positive'] },
  { name: 'ofType(Quantity) of a string value is empty', expression: 'value.ofType(Quantity)', resource: observation({ valueString: '70 kg' }), expected: [] },
  { name: 'a FHIR code is a code and a String', expression: "status.ofType(code).count() + status.ofType(String).count()", resource: observation({}), expected: [2] },
  { name: 'an unknown member is empty', expression: 'valueFoo', resource: observation({ valueQuantity: { value: 1 } }), expected: [] },
  { name: 'a root identifier naming a type', expression: 'Observation.status', resource: observation({}), expected: ['final'] },
  { name: 'a primitive with an extension sibling bails', expression: 'birthDate', resource: { resourceType: 'Patient', birthDate: '2010-05-01', _birthDate: { id: 'x' } }, expected: ['2010-05-01'], bail: true },
  // §6.6.5 date arithmetic and §6.2 date comparison
  { name: 'a date plus a year', expression: "(%d.toDate() + 1 year).toString()", env: { d: '2024-02-29' }, expected: ['2025-02-28'] },
  { name: 'end of month plus a month', expression: "(%d.toDate() + 1 month).toString()", env: { d: '2026-01-31' }, expected: ['2026-02-28'] },
  { name: 'a date plus weeks', expression: "(%d.toDate() + 2 weeks).toString()", env: { d: '2026-12-25' }, expected: ['2027-01-08'] },
  { name: 'an 18th birthday on the day', expression: "(%d.toDate() + 18 years) <= @2026-11-23", env: { d: '2008-11-23' }, expected: [true] },
  { name: 'dates of different precision do not compare', expression: "%d.toDate() < @2026-11-23", env: { d: '2026-11' }, expected: [] },
  { name: 'dates of different precision are not equal or unequal', expression: "%d.toDate() = @2026-11-23", env: { d: '2026-11' }, expected: [] },
  { name: 'a dateTime element against a date-time', expression: 'occurrence.ofType(dateTime) < %t.toDateTime() + 1 day', resource: { resourceType: 'Immunization', occurrenceDateTime: '2026-11-20T10:00:00Z' }, env: { t: '2026-11-20T00:00:00Z' }, expected: [true] },
  { name: 'toDate of a non-date string is empty', expression: "'soon'.toDate()", model: 'none', expected: [] },
  { name: 'a date element is returned as its string', expression: 'birthDate', resource: { resourceType: 'Patient', birthDate: '2010-05-01' }, expected: ['2010-05-01'] },
  // PriorPath's user functions (src/fhir/fhirpath.ts) with an empty argument: fhirpath.js hands it over as [], and the
  // compiled code answers the same itself (a bail here sent every such evaluation to fhirpath.js: an OHSU fact asking
  // maybeRecent over an earlier course's first cycle, empty for every patient without an earlier course)
  { name: 'maybeRecent with an empty window day is empty', expression: '%obs.maybeRecent(%start, 0, %start)', env: { obs: [observation({ effectiveDateTime: '2026-11' })], start: [] }, expected: [] },
  { name: 'maybeRecent with an empty upper end keeps a month that may be latest', expression: '%obs.maybeRecent(%on, 30, %start).count()', env: { obs: [observation({ effectiveDateTime: '2026-11' })], on: '2026-11-23', start: [] }, expected: [1] },
  { name: 'recent with an empty date is empty', expression: '%obs.recent(%start, 30)', env: { obs: [observation({})], start: [] }, expected: [] },
  { name: 'coded with an empty system is empty', expression: "%obs.coded(%system, '29463-7')", env: { obs: [observation({})], system: [] }, expected: [] },
];

describe('compiled FHIRPath: tricky semantics', () => {
  it.each(CASES)('$name', (c) => {
    const options = c.model === 'none' ? none : r4;
    const resource = c.resource ?? (c.model === 'none' ? {} : { resourceType: 'Patient' });
    const env = c.env ?? {};
    const fast = compiledFhirPath(c.expression, options);
    expect(fast, 'compiled, not left to fhirpath.js').toBeDefined();
    const ref = referenceFhirPath(c.expression, options);
    if (c.throws) {
      expect(() => ref(resource, env)).toThrow();
      expect(() => fast!(resource, env)).toThrow();
      try {
        fast!(resource, env);
      } catch (err) {
        expect(err, 'a bail, so the error is fhirpath.js\'s own').toBe(BAIL);
      }
      // Through compileFhirPath the error is fhirpath.js's.
      expect(() => compileFhirPath(c.expression, options)(resource, env)).toThrow();
      return;
    }
    expect(ref(resource, env)).toStrictEqual(c.expected);
    if (c.bail) {
      expect(() => fast!(resource, env)).toThrow();
    } else {
      expect(fast!(resource, env)).toStrictEqual(c.expected);
    }
    const chosen = compileFhirPath(c.expression, options);
    expect(compiledKind(chosen)).toBe('compiled');
    expect(chosen(resource, env)).toStrictEqual(c.expected);
  });

  it('leaves an expression outside the subset to fhirpath.js', () => {
    const fn = compileFhirPath("'abc'.indexOf('b')", none);
    expect(compiledKind(fn)).toBe('fallback');
    expect(fn({}, {})).toStrictEqual([1]);
  });
});
