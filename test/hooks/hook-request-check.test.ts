import { describe, expect, it } from 'vitest';
import { parseHookRequest } from '../../src/hooks/hook-request.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * parseHookRequest's answers to hook bodies a client might send (src/hooks/hook-request.ts): a 400 that names the
 * field the schema refuses, and a fhirServer read as the schema normalises it.
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

describe('hook request check', () => {
  it('answers a malformed body with a 400 naming the field, and trims a fhirServer with spaces around it', () => {
    expect(() => parseHookRequest(variant((b) => { b.hookInstance = 42; }), 'order-sign')).toThrow(/Invalid CDS Hooks request: hookInstance: /);
    expect(() => parseHookRequest(variant((b) => { b.context.draftOrders.entry.push({ resource: null }); }), 'order-sign')).toThrow(/Invalid CDS Hooks request: context\.draftOrders\.entry\.\d+\.resource: /);
    expect(() => parseHookRequest(variant((b) => { b.prefetch.constructor = 'x'; }), 'order-sign')).toThrow(/Invalid CDS Hooks request: prefetch: /);
    const spaced = variant((b) => { b.fhirServer = ` ${b.fhirServer as string}/ `; });
    expect(parseHookRequest(spaced, 'order-sign').fhirServer).toBe((fresh().fhirServer as string).replace(/\/+$/, ''));
  });
});
