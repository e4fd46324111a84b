/**
 * Names the generated CQL Libraries give their defines, shared by the generator (src/cql/cql-library-source.ts) and
 * the DTR 2.0.1 form that names them in `text/cql` initialExpressions (src/dtr/cql-questionnaire.ts).
 */

/**
 * The define that gives a code fact's answer as a Coding of its answer value set: what a choice item is pre-filled
 * with (DTR 2.0.1: a client turns a CQL Code into the item's valueCoding).
 *
 * @see https://hl7.org/fhir/us/davinci-dtr/STU2/specification.html#populating-questionnaires
 */
export function codingDefine(fact: string): string {
  return `${fact}Coding`;
}

/**
 * The define that gives a dose computed from the body surface area as the form shows it: the fact rounded to its
 * display decimals (src/policies/display-precision.ts), so a DTR 2.0.1 client pre-fills 0.8 mg/m², not
 * 0.8042857142857143, as the FHIRPath form and the payer's pre-filled response do. The fact's own define stays
 * unrounded: other defines read it, and the CQL agrees with the server's FHIRPath on it.
 */
export function shownDefine(fact: string): string {
  return `${fact}AsShown`;
}
