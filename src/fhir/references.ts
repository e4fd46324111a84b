/**
 * `Type/id` of a literal reference in any form an EHR writes it (FHIR R4 §2.3.0 References: relative
 * `MedicationRequest/1`, absolute `https://ehr/fhir/MedicationRequest/1`, versioned `…/_history/2`); undefined for what
 * names no resource by type and id (`urn:uuid:…`, `#contained`, a display only). Resources found in a request are
 * indexed by this form, and the order's one record is keyed by it (design.md §8), so a reference resolves the same
 * whichever way a request spells it.
 *
 * @see https://hl7.org/fhir/R4/references.html#literal
 */
export function localReference(reference: string | undefined): string | undefined {
  const m = reference ? /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(reference) : null;
  return m ? `${m[1]}/${m[2]}` : undefined;
}
