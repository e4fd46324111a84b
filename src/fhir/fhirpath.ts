import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import type { ValueSetIndex } from './value-sets.js';

/** A FHIRPath expression parsed once; call it as often as needed (design.md §5 "compiled once when content loads"). */
export type CompiledExpression = (resource: unknown, env: Record<string, unknown>) => unknown[];

/** Options shared by every expression of one content load. */
export interface FhirPathOptions {
  valueSets: ValueSetIndex;
  /** Base for bare value-set ids in `memberOf('b-all-snomed')`: `{valueSetBase}/{id}`. */
  valueSetBase: string;
  /** Whether the expression walks FHIR resources (typed R4 model) or a plain object of facts. */
  model: 'r4' | 'none';
}

interface CodingLike {
  system?: string;
  code?: string;
  coding?: CodingLike[];
}

/** Resolves a `memberOf` argument (canonical URL or bare id) to a known value-set URL. */
export function resolveValueSetUrl(ref: string, base: string): string {
  return ref.includes('/') ? ref : `${base}/${ref}`;
}

/**
 * FHIRPath `memberOf()` answered from local expansions, synchronously. The input may be Codings or
 * CodeableConcepts; the result is true when any of them is in the set (so `code.memberOf(...)` and
 * `code.coding.memberOf(...)` both read naturally), empty for empty input.
 * See https://hl7.org/fhir/R4/fhirpath.html#functions.
 */
function memberOfTable(options: FhirPathOptions) {
  return {
    memberOf: {
      fn: (inputs: unknown[], ref: string) => {
        if (inputs.length === 0) return [];
        const url = resolveValueSetUrl(ref, options.valueSetBase);
        const hit = inputs.some((item) => {
          if (typeof item === 'string') return false;
          const c = item as CodingLike;
          if (c.coding) return c.coding.some((cc) => options.valueSets.contains(url, cc));
          return options.valueSets.contains(url, c);
        });
        return [hit];
      },
      arity: { 1: ['String'] },
    },
  };
}

/**
 * Compiles an expression; throws with fhirpath.js's message when it does not parse. Only this module imports
 * `fhirpath` (style.md "one module owns each outside dependency").
 */
export function compileFhirPath(expression: string, options: FhirPathOptions): CompiledExpression {
  const fn = fhirpath.compile(expression, options.model === 'r4' ? r4Model : undefined, {
    userInvocationTable: memberOfTable(options),
    resolveInternalTypes: true,
  } as Parameters<typeof fhirpath.compile>[2]);
  return (resource, env) => fn(resource as object, env as Record<string, unknown>) as unknown[];
}

/** Value-set URLs named in `memberOf('...')` calls, so the loader can check them before anything runs. */
export function referencedValueSets(expression: string, base: string): string[] {
  const out: string[] = [];
  for (const m of expression.matchAll(/memberOf\(\s*'([^']+)'\s*\)/g)) out.push(resolveValueSetUrl(m[1], base));
  return out;
}
