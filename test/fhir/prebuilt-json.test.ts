import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonChunks, prebuildJson } from '../../src/fhir/prebuilt-json.js';
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

  it('freezes a prebuilt resource, so a change to it throws instead of going missing from responses', () => {
    const questionnaire = buildCatalog(testContent()).all[0];
    expect(() => {
      (questionnaire as { title?: string }).title = 'changed';
    }).toThrow(TypeError);
    expect(() => (questionnaire.item ?? []).push({ linkId: 'x', type: 'string' })).toThrow(TypeError);
  });
});
