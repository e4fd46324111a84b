import fhirpath from 'fhirpath/src/fhirpath.js';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { describe, expect, it } from 'vitest';
import { compileAst, HeldValues } from '../../src/fhir/fhirpath-compiler.js';
import type { AstNode, ModelTables, UserFunction } from '../../src/fhir/fhirpath-compiler.js';

/**
 * Sub-expressions shared by the facts of one evaluation (src/fhir/fhirpath-compiler.ts `HeldValues`): the shared fact
 * library repeats whole sub-expressions over the record in many facts, and readFacts evaluates each once per policy
 * evaluation. A user function that counts its calls stands for such a sub-expression; fhirpath.js
 * (https://hl7.org/fhirpath/N1/) gives the expected results.
 */
const EVIDENCE = 'https://priorpath.dev/fhir/CodeSystem/evidence';
const result = (id: string, code: string, text: string) => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: EVIDENCE, code }] },
  effectiveDateTime: '2026-11-02',
  valueString: text,
});
const observations = [result('cd19', 'cd19-status', 'CD19 not expressed'), result('mrd', 'mrd', 'MRD positive 0.02 %'), result('cd22', 'cd22-status', 'CD22 expressed')];

/** Expressions compiled one by one, as the content's facts are, with one user function `words()` that counts its calls. */
function withCountedWords(...expressions: string[]) {
  let calls = 0;
  const words: UserFunction = {
    fn: (inputs: unknown[]) => {
      calls++;
      return inputs.filter((x): x is string => typeof x === 'string').flatMap((x) => x.toLowerCase().split(' '));
    },
    arity: { 0: [] },
  };
  const functions = { words };
  return {
    compiled: expressions.map((e) => compileAst(fhirpath.parse(e) as unknown as AstNode, { model: r4Model as unknown as ModelTables, functions })),
    reference: expressions.map((e) => {
      const f = fhirpath.compile(e, r4Model, { userInvocationTable: functions, resolveInternalTypes: true } as Parameters<typeof fhirpath.compile>[2]);
      return (resource: unknown, env: Record<string, unknown>) => f(resource as object, env) as unknown[];
    }),
    calls: () => calls,
  };
}

// Two facts reading the words of the results of one code (%code, which differs between policies).
/** The order the facts run over (these read variables only); held values serve this resource alone. */
const order = { resourceType: 'MedicationRequest', status: 'active' };
const FACTS = ["%obs.where(code.coding.code = %code).value.ofType(string).words().where($this = 'positive').exists()", "%obs.where(code.coding.code = %code).value.ofType(string).words().count()"];

describe('compiled FHIRPath: a sub-expression several expressions contain is evaluated once per evaluation', () => {
  it('evaluates it once for both facts, and each answers as fhirpath.js does', () => {
    const facts = withCountedWords(...FACTS);
    const env = { obs: observations, code: 'mrd' };
    const expected = facts.reference.map((f) => f(order, env));
    expect(expected).toStrictEqual([[true], [4]]);
    const before = facts.calls();
    const held = new HeldValues(order, env);
    expect(facts.compiled.map((f) => f(order, env, held))).toStrictEqual(expected);
    expect(facts.calls() - before).toBe(1);
    // Without held values (any caller but readFacts) each expression evaluates it.
    const unshared = facts.calls();
    expect(facts.compiled.map((f) => f(order, env))).toStrictEqual(expected);
    expect(facts.calls() - unshared).toBe(2);
  });

  it('keeps apart evaluations whose variables differ (two policies), and values held for other variables', () => {
    const facts = withCountedWords(...FACTS);
    const mrd = { obs: observations, code: 'mrd' };
    const cd19 = { obs: observations, code: 'cd19-status' };
    const heldMrd = new HeldValues(order, mrd);
    const heldCd19 = new HeldValues(order, cd19);
    expect(facts.compiled[0](order, mrd, heldMrd)).toStrictEqual([true]);
    expect(facts.compiled[0](order, cd19, heldCd19)).toStrictEqual(facts.reference[0](order, cd19));
    expect(facts.compiled[1](order, cd19, heldCd19)).toStrictEqual([3]);
    expect(facts.compiled[1](order, mrd, heldMrd)).toStrictEqual([4]);
    // Held values made for other variables are not read.
    expect(facts.compiled[1](order, cd19, heldMrd)).toStrictEqual([3]);
  });

  it('holds nothing read through `$this` of an enclosing select: the same text over each item stays apart', () => {
    const facts = withCountedWords('value.ofType(string).words().count()', '%obs.select(value.ofType(string).words().count())');
    const root = observations[1];
    const env = { obs: observations };
    const held = new HeldValues(root, env);
    const got = facts.compiled.map((f) => f(root, env, held));
    expect(got).toStrictEqual(facts.reference.map((f) => f(root, env)));
    expect(got).toStrictEqual([[4], [3, 4, 2]]);
  });
});
