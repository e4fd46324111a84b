import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fhirpath from 'fhirpath/src/fhirpath.js';
import { afterAll, describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { fhirPathStats, parseTreeStamp, recordParseTrees, useParseTrees } from '../../src/fhir/fhirpath.js';
import { PARSE_TREES_FILE, readParseTrees } from '../../src/fhir/parse-trees-file.js';

/**
 * The built service's content comes with its FHIRPath expressions parsed by `npm run build` (start-up without ANTLR
 * parsing). A tree is what fhirpath.js's parser gives for the expression's text, so the compiled expressions are the
 * same either way; an expression the build did not see is parsed as before.
 */
const root = join(import.meta.dirname, '..', '..');
const canonicalBase = 'https://priorpath.dev/fhir';
const dirs: string[] = [];
afterAll(() => {
  useParseTrees(undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('FHIRPath parse trees made ahead of start-up', () => {
  const stop = recordParseTrees();
  const recordedContent = loadContent({ root, canonicalBase });
  const trees = stop();

  it('records every expression the content parses, as plain JSON equal to what the parser gives less the positions', () => {
    const texts = Object.keys(trees);
    expect(texts.length).toBeGreaterThanOrEqual(100);
    // Where a node stands in the text (`start`, `length`) is left out: the compiler never reads it, and it was a
    // quarter of the file read at start-up.
    const positionless = (key: string, value: unknown) => (key === 'start' || key === 'length' ? undefined : value);
    for (const text of texts) {
      const recorded = JSON.stringify(trees[text]);
      expect(recorded).not.toMatch(/"(start|length)":/);
      expect(isDeepStrictEqual(JSON.parse(recorded), JSON.parse(JSON.stringify(fhirpath.parse(text)), positionless))).toBe(true);
    }
  });

  it('loads the same content without parsing once the trees are handed in, and parses what they lack', () => {
    const parsedBefore = fhirPathStats.parsed;
    useParseTrees(JSON.parse(JSON.stringify(trees)) as typeof trees);
    try {
      const content = loadContent({ root, canonicalBase });
      expect(fhirPathStats.parsed).toBe(parsedBefore);
      expect(content.policies.map((p) => p.file.id)).toEqual(recordedContent.policies.map((p) => p.file.id));
    } finally {
      useParseTrees(undefined);
    }
    // Without a tree (content changed since the build), the expression is parsed as it loads.
    const withoutOne = { ...trees };
    delete withoutOne[Object.keys(withoutOne)[0]];
    useParseTrees(withoutOne);
    try {
      loadContent({ root, canonicalBase });
      expect(fhirPathStats.parsed).toBe(parsedBefore + 1);
    } finally {
      useParseTrees(undefined);
    }
  });

  it('reads the build file only when fhirpath.js is the version that made it', () => {
    const dist = mkdtempSync(join(tmpdir(), 'priorpath-trees-'));
    dirs.push(dist);
    expect(readParseTrees(dist, parseTreeStamp())).toBeUndefined();
    writeFileSync(join(dist, PARSE_TREES_FILE), JSON.stringify({ stamp: parseTreeStamp(), trees }));
    expect(Object.keys(readParseTrees(dist, parseTreeStamp()) ?? {})).toEqual(Object.keys(trees));
    writeFileSync(join(dist, PARSE_TREES_FILE), JSON.stringify({ stamp: 'fhirpath 0.0.1', trees }));
    expect(readParseTrees(dist, parseTreeStamp())).toBeUndefined();
    writeFileSync(join(dist, PARSE_TREES_FILE), '{"stamp":');
    expect(readParseTrees(dist, parseTreeStamp())).toBeUndefined();
  });
});
