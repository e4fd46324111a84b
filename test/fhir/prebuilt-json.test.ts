import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPrebuiltChunk, jsonChunks, prebuildArrayHead, prebuildJson, prebuiltRunOf } from '../../src/fhir/prebuilt-json.js';
import { buildCatalog } from '../../src/dtr/catalog.js';
import { testContent } from '../helpers/app.js';

describe('prebuilt JSON (content resources serialised once, spliced into responses)', () => {
  it('writes exactly the bytes JSON.stringify writes, for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(Buffer.concat(jsonChunks(value)).toString('utf8')).toBe(JSON.stringify(value));
      }),
      { numRuns: 300 },
    );
  });

  it('writes what JSON.stringify writes around prebuilt resources, with undefined members and array holes', () => {
    const valueSet = prebuildJson({ resourceType: 'ValueSet', id: 'mrd-units', url: 'https://priorpath.dev/fhir/ValueSet/x', name: 'Ünits «%»' });
    const envelope = {
      resourceType: 'Parameters',
      skipped: undefined,
      parameter: [
        { name: 'a', resource: valueSet },
        undefined,
        { name: 'b', resource: valueSet, when: new Date(0) },
        // A resource built per response, holding a prebuilt one: written whole by JSON.stringify, same bytes.
        { name: 'c', resource: { resourceType: 'QuestionnaireResponse', status: 'in-progress', contained: [valueSet], item: [undefined] } },
      ],
    };
    expect(Buffer.concat(jsonChunks(envelope)).toString('utf8')).toBe(JSON.stringify(envelope));
  });

  it('writes an array starting with a prebuilt head from the head\'s pieces, and any other array as JSON.stringify does', () => {
    const vs = prebuildJson({ resourceType: 'ValueSet', id: 'head-vs', name: 'Ünits' });
    const head = prebuildArrayHead([{ fullUrl: 'https://x/ValueSet/head-vs', resource: vs }, { fullUrl: 'https://x/Library/l', resource: prebuildJson({ resourceType: 'Library', id: 'l' }) }]);
    const qr = { fullUrl: 'urn:uuid:1', resource: { resourceType: 'QuestionnaireResponse', status: 'in-progress' } };
    const bundle = { resourceType: 'Bundle', entry: [...head, qr] };
    const chunks = jsonChunks(bundle);
    expect(Buffer.concat(chunks).toString('utf8')).toBe(JSON.stringify(bundle));
    // The head's pieces, in order: one run a gzip writer can encode once.
    const at = chunks.findIndex((c) => prebuiltRunOf(c) !== undefined);
    const run = prebuiltRunOf(chunks[at])!;
    expect(chunks.slice(at, at + run.length)).toEqual(run);
    expect(run.every(isPrebuiltChunk)).toBe(true);
    // The head alone, another array with the same items out of order, and one with a head item swapped: same bytes.
    for (const entry of [[...head], [head[1], head[0]], [head[0], { ...head[1] }], [{ ...head[0] }, head[1]]]) {
      const b = { resourceType: 'Bundle', entry };
      expect(Buffer.concat(jsonChunks(b)).toString('utf8')).toBe(JSON.stringify(b));
    }
    // The head's items are frozen: what its bytes say cannot change.
    expect(() => ((head[0] as { fullUrl: string }).fullUrl = 'changed')).toThrow(TypeError);
  });

  it("keeps a Library's long base64 content once, in its prebuilt bytes, and reads it back as the same string", () => {
    const elm = Buffer.from(JSON.stringify({ library: { statements: { def: Array.from({ length: 400 }, (_, i) => ({ name: `Define ${i}` })) } } })).toString('base64');
    const escaped = `"quoted" ${'é'.repeat(5000)}`;
    const library = {
      resourceType: 'Library',
      id: 'l',
      content: [
        { contentType: 'application/elm+json', data: elm },
        { contentType: 'text/plain', data: escaped },
      ],
    };
    const text = JSON.stringify(library);
    prebuildJson(library);
    // The base64 is read from the bytes (a getter, not a second copy); a string JSON escapes stays as it was.
    expect(typeof Object.getOwnPropertyDescriptor(library.content[0], 'data')?.get).toBe('function');
    expect(Object.getOwnPropertyDescriptor(library.content[1], 'data')).toMatchObject({ value: escaped });
    expect(library.content[0].data).toBe(elm);
    expect(JSON.stringify(library)).toBe(text);
    expect(JSON.stringify({ wrapped: [library] })).toBe(`{"wrapped":[${text}]}`);
    expect(Buffer.concat(jsonChunks({ resourceType: 'Bundle', entry: [{ resource: library }] })).toString('utf8')).toBe(JSON.stringify({ resourceType: 'Bundle', entry: [{ resource: library }] }));
    expect(Object.isFrozen(library.content[0])).toBe(true);
    expect(() => {
      (library.content[0] as { data: string }).data = 'changed';
    }).toThrow(TypeError);
  });

  it("serves every content Library's CQL and ELM unchanged", () => {
    const content = testContent();
    const before = new Map([...content.libraries.values()].map((l) => [l.id, JSON.stringify(l)]));
    const catalog = buildCatalog(content);
    expect(catalog.libraries.length).toBeGreaterThan(0);
    for (const l of catalog.libraries) {
      expect(JSON.stringify(l)).toBe(before.get(l.id));
      expect(Buffer.concat(jsonChunks(l)).toString('utf8')).toBe(before.get(l.id));
    }
  });

  it('freezes a prebuilt resource, so a change to it throws instead of going missing from responses', () => {
    const questionnaire = buildCatalog(testContent()).all[0];
    expect(() => {
      (questionnaire as { title?: string }).title = 'changed';
    }).toThrow(TypeError);
    expect(() => (questionnaire.item ?? []).push({ linkId: 'x', type: 'string' })).toThrow(TypeError);
  });
});
