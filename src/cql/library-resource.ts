import type { Library } from '@medplum/fhirtypes';

/** FHIRHelpers 4.0.1, the CQL framework's conversion library every generated Library includes. */
export const FHIRHELPERS = { name: 'FHIRHelpers', version: '4.0.1' } as const;

/** `{canonicalBase}/Library/{name}`: the canonical of a PriorPath Library (cqf-library points at it exactly). */
export function libraryUrl(canonicalBase: string, name: string): string {
  return `${canonicalBase}/Library/${name}`;
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/**
 * A FHIR Library holding CQL and its ELM (DTR 2.0.1: Libraries SHALL carry both `text/cql` and `application/elm+json`
 * content; requirements #95, #96), with the FHIRHelpers dependency and the resource types it retrieves.
 */
export function libraryResource(opts: {
  id: string;
  name: string;
  version: string;
  canonicalBase: string;
  title: string;
  description: string;
  cql: string;
  elm: unknown;
  dataTypes?: string[];
  dependsOn?: string[];
}): Library {
  return {
    resourceType: 'Library',
    id: opts.id,
    meta: { profile: ['http://hl7.org/fhir/uv/cql/StructureDefinition/cql-library'] },
    url: libraryUrl(opts.canonicalBase, opts.name),
    version: opts.version,
    name: opts.name,
    title: opts.title,
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/library-type', code: 'logic-library' }] },
    description: opts.description,
    ...(opts.dependsOn?.length ? { relatedArtifact: opts.dependsOn.map((resource) => ({ type: 'depends-on' as const, resource })) } : {}),
    ...(opts.dataTypes?.length ? { dataRequirement: opts.dataTypes.map((type) => ({ type })) } : {}),
    content: [
      { contentType: 'text/cql', data: base64(opts.cql) },
      { contentType: 'application/elm+json', data: base64(JSON.stringify(opts.elm)) },
    ],
  };
}
