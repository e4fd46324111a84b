/**
 * The service sorts with `byCodePoint` (src/code-point-order.ts), never `localeCompare`: the first `localeCompare`
 * in a process loads ICU's collation data, about 1.6 MiB of the node binary resident for the life of the process
 * (README "Memory", design.md §9's 200 MiB). Only code that the service never runs may use it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/stories.js';

const SRC = join(repoRoot, 'src');
/**
 * Not run by the service: CQL Library and Questionnaire generation (`npm run libraries`, `npm run questionnaires`)
 * and the CLI's in-memory storage.
 */
const NOT_RUN_BY_THE_SERVICE = new Set(['cql/cql-library-source.ts', 'dtr/questionnaire-files.ts', 'storage/memory-storage.ts']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

describe('sorting without ICU collation', () => {
  it('no service source calls localeCompare', () => {
    const calling = sourceFiles(SRC)
      .map((f) => relative(SRC, f).split('\\').join('/'))
      .filter((f) => !NOT_RUN_BY_THE_SERVICE.has(f) && readFileSync(join(SRC, f), 'utf8').includes('.localeCompare('));
    expect(calling).toEqual([]);
  });
});
