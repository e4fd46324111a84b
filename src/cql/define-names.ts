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
