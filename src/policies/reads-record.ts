import type { Token } from '../fhir/fhirpath-tokens.js';
import type { CompiledPolicy } from './compiled-policy.js';

/** Server-only functions (src/fhir/fhirpath.ts); a renderer's FHIRPath engine has none of them. */
export const SERVER_FUNCTIONS = ['memberOf', 'coded', 'codedIn', 'recent', 'maybeRecent', 'statedDay'];

/** Variables a form's FHIRPath has a reading of besides the facts: terminology constants, the drug, the order date. */
const FORM_VARIABLES = /^(ucum|sct|loinc|policyDrug|orderDate|orderDateTime)$/;

/**
 * Whether a derived fact's expression (its tokens) reads the record or calls a server-only function: such a fact is
 * unknown over a form's answers alone, in the form's gates (src/dtr/expressions.ts ruleOverAnswers) and in the
 * server's reading of them (src/coverage/hidden-answers.ts).
 */
export function readsRecord(policy: CompiledPolicy, tokens: Token[]): boolean {
  const previous = (i: number) => {
    for (let j = i - 1; j >= 0; j--) if (tokens[j].kind !== 'space') return tokens[j];
    return undefined;
  };
  return tokens.some(
    (t, i) =>
      (t.kind === 'var' && !policy.factsByName.has(t.name!) && !FORM_VARIABLES.test(t.name!)) ||
      (t.kind === 'ident' && SERVER_FUNCTIONS.includes(t.name!) && previous(i)?.text === '.'),
  );
}
