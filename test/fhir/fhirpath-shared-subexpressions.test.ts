import fhirpath from 'fhirpath/src/fhirpath.js';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { describe, expect, it } from 'vitest';
import { compileAst } from '../../src/fhir/fhirpath-compiler.js';
import type { AstNode, ModelTables, UserFunction } from '../../src/fhir/fhirpath-compiler.js';

/**
 * A sub-expression written several times over the same `$this` is evaluated once per item (src/fhir/fhirpath-compiler.ts,
 * "evaluated once per scope"): the marker readers (cds-services/facts/b-all-evidence.yaml `cd19Positive`) read a
 * result's words three times, once for each of 'p', 'n' and 'u', on every hook. A user function that counts its calls
 * stands for that sub-expression here; fhirpath.js (https://hl7.org/fhirpath/N1/) gives the expected results.
 */
const EVIDENCE = 'https://priorpath.dev/fhir/CodeSystem/evidence';
const cd19 = (id: string, value: Record<string, unknown>) => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: EVIDENCE, code: 'cd19-status' }], text: 'CD19 by flow cytometry' },
  effectiveDateTime: '2026-11-02',
  ...value,
});
const observations = [
  cd19('cd19-dim', { valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '10828004', display: 'Positive' }], text: 'CD19 positive (dim)' } }),
  cd19('cd19-neg', { valueString: 'CD19 not expressed' }),
  cd19('cd19-equivocal', { valueString: 'CD19 equivocal, ? partial loss' }),
];

/** Compiles `expression` with a user function `words()` (the words of a result, lower case) that counts its calls. */
function withCountedWords(expression: string) {
  let calls = 0;
  const words: UserFunction = {
    fn: (inputs: unknown[]) => {
      calls++;
      return inputs.filter((x): x is string => typeof x === 'string').map((x) => x.toLowerCase());
    },
    arity: { 0: [] },
  };
  const compiled = compileAst(fhirpath.parse(expression) as unknown as AstNode, { model: r4Model as unknown as ModelTables, functions: { words } });
  const reference = fhirpath.compile(expression, r4Model, { userInvocationTable: { words }, resolveInternalTypes: true } as Parameters<typeof fhirpath.compile>[2]);
  return {
    run: (env: Record<string, unknown>) => compiled({}, env),
    reference: (env: Record<string, unknown>) => reference({}, env) as unknown[],
    calls: () => calls,
    reset: () => (calls = 0),
  };
}

// The shape of the marker readers: three readings of the same words of each result, each in an iif of its own.
const READING =
  "%obs.select(iif((value.coding.display | value.text | value.ofType(string)).words().where(matches('positive|expressed')).exists(), 'p', '')" +
  " + iif((value.coding.display | value.text | value.ofType(string)).words().where(matches('negative|not expressed')).exists(), 'n', '')" +
  " + iif((value.coding.display | value.text | value.ofType(string)).words().where(matches('equivocal|[?]')).exists(), 'u', ''))";

describe('compiled FHIRPath: a sub-expression written several times is evaluated once', () => {
  it("reads each result's words once, not once per reading, and answers as fhirpath.js does", () => {
    const reader = withCountedWords(READING);
    const env = { obs: observations };
    const expected = reader.reference(env);
    expect(expected).toStrictEqual(['p', 'pn', 'u']);
    reader.reset();
    expect(reader.run(env)).toStrictEqual(expected);
    // One call per Observation: the three readings share it.
    expect(reader.calls()).toBe(observations.length);
  });

  it('still evaluates a shared sub-expression only in the branches taken', () => {
    const reader = withCountedWords("%obs.select(iif(status = 'final', 'f', value.text.words().first()) + iif(status = 'final', 'g', value.text.words().last()))");
    const env = { obs: observations };
    expect(reader.run(env)).toStrictEqual(reader.reference(env));
    expect(reader.run(env)).toStrictEqual(['fg', 'fg', 'fg']);
    reader.reset();
    reader.run(env);
    expect(reader.calls()).toBe(0);
  });

  it('keeps apart the same text over different items (`$this` of an inner where, the outer select)', () => {
    const reader = withCountedWords("%obs.select(value.ofType(string).words().where($this.words().exists()).count())");
    const env = { obs: observations };
    expect(reader.run(env)).toStrictEqual(reader.reference(env));
  });
});
