import { describe, expect, it } from 'vitest';
import { parseHookRequest, plainlyValid, requestSchema } from '../../src/hooks/hook-request.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * parseHookRequest checks a hook body by hand before (and instead of) the zod schema (src/hooks/hook-request.ts
 * plainlyValid): what it lets through must be exactly what the schema would give back, and every body the schema
 * refuses or changes must reach the schema, so that a client's 400 and the request read stay as they were.
 */
const STORY = 'centene-mrd-positive';
const resources = storyResources(STORY);
const text = JSON.stringify(orderSignRequest(resources, storyOrder(STORY, resources)));
type Body = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- variants poke at any field
const fresh = (): Body => JSON.parse(text) as Body;

/** A body changed by `edit`, as a client would send it (JSON text parsed, as jsonBody does). */
const variant = (edit: (b: Body) => void): Body => {
  const b = fresh();
  edit(b);
  return JSON.parse(JSON.stringify(b)) as Body;
};

const variants: [string, Body][] = [
  ['the story as sent', fresh()],
  ['no fhirServer nor fhirAuthorization', variant((b) => { delete b.fhirServer; delete b.fhirAuthorization; })],
  ['fhirAuthorization null', variant((b) => { delete b.fhirServer; b.fhirAuthorization = null; })],
  ['prefetch null', variant((b) => { b.prefetch = null; })],
  ['a prefetch key null', variant((b) => { b.prefetch.conditions = null; })],
  ['fhirServer with spaces around it', variant((b) => { b.fhirServer = ` ${b.fhirServer as string} `; })],
  ['fhirServer not a URL', variant((b) => { b.fhirServer = 'ehr.example.org/fhir'; })],
  ['hookInstance a number', variant((b) => { b.hookInstance = 42; })],
  ['hookInstance empty', variant((b) => { b.hookInstance = ''; })],
  ['patientId missing', variant((b) => { delete b.context.patientId; })],
  ['draftOrders not a Bundle', variant((b) => { b.context.draftOrders.resourceType = 'Parameters'; })],
  ['a draft order entry without its resource', variant((b) => { b.context.draftOrders.entry.push({ fullUrl: 'urn:uuid:x' }); })],
  ['a draft order entry whose resource is null', variant((b) => { b.context.draftOrders.entry.push({ resource: null }); })],
  ['a draft order entry whose resource is an array', variant((b) => { b.context.draftOrders.entry.push({ resource: [] }); })],
  ['selections holding a number', variant((b) => { b.context.selections = ['MedicationRequest/x', 3]; })],
  ['expires_in a string', variant((b) => { b.fhirAuthorization.expires_in = '300'; })],
  ['access_token missing', variant((b) => { delete b.fhirAuthorization.access_token; })],
  ['prefetch an array', variant((b) => { b.prefetch = [b.prefetch.patient]; })],
  ['extension a string', variant((b) => { b.extension = 'davinci-crd'; })],
  ['a prefetch key named constructor', variant((b) => { b.prefetch.constructor = 'x'; })],
  ['a prefetch key named __proto__', JSON.parse(text.replace('"prefetch":{', '"prefetch":{"__proto__":{"resourceType":"Patient"},')) as Body],
];

describe('hook request check (plainlyValid before the schema)', () => {
  it('passes only bodies the schema passes unchanged; every other body goes to the schema', () => {
    let passed = 0;
    for (const [name, body] of variants) {
      const schema = requestSchema.safeParse(structuredClone(body));
      if (plainlyValid(body)) {
        passed++;
        expect(schema.success, name).toBe(true);
        expect(schema.data, name).toEqual(body);
      }
    }
    // The ordinary requests do take the hand check (the point of it).
    expect(passed).toBeGreaterThanOrEqual(5);
    expect(plainlyValid(fresh())).toBe(true);
  });

  it('answers a body the hand check leaves to the schema as the schema says: the 400 names the field, a URL is trimmed', () => {
    expect(() => parseHookRequest(variant((b) => { b.hookInstance = 42; }), 'order-sign')).toThrow(/Invalid CDS Hooks request: hookInstance: /);
    expect(() => parseHookRequest(variant((b) => { b.context.draftOrders.entry.push({ resource: null }); }), 'order-sign')).toThrow(/Invalid CDS Hooks request: context\.draftOrders\.entry\.\d+\.resource: /);
    expect(() => parseHookRequest(variant((b) => { b.prefetch.constructor = 'x'; }), 'order-sign')).toThrow(/Invalid CDS Hooks request: prefetch: /);
    const spaced = variant((b) => { b.fhirServer = ` ${b.fhirServer as string}/ `; });
    expect(parseHookRequest(spaced, 'order-sign').fhirServer).toBe((fresh().fhirServer as string).replace(/\/+$/, ''));
  });
});
