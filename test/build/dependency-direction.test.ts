/**
 * The direction of dependence (docs/design.md §2): edges → core → engine, nothing pointing back up. The edges (CRD
 * `hooks/`, `dtr/`, `pas/`) never import one another; the core (`coverage/`) imports no edge; the engine
 * (`policies/`) knows no storage and no edge; the FHIR helpers (`fhir/`) and storage import none of them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/stories.js';

const SRC = join(repoRoot, 'src');
const EDGES = ['hooks', 'dtr', 'pas'];
/** What each layered folder may import besides itself and the root modules (config, errors, content, logger). */
const MAY_IMPORT: Record<string, string[]> = {
  hooks: ['coverage', 'policies', 'fhir', 'storage', 'http', 'auth'],
  dtr: ['coverage', 'policies', 'fhir', 'storage', 'cql'],
  pas: ['coverage', 'policies', 'fhir', 'storage', 'http', 'auth'],
  coverage: ['policies', 'fhir', 'storage'],
  policies: ['fhir'],
  fhir: [],
  storage: [],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The top-level folder under src/ a relative import of `file` lands in ('' for a root module like errors.ts). */
function importedFolders(file: string): { folder: string; spec: string }[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((spec) => {
    const target = relative(SRC, join(dirname(file), spec));
    const parts = target.split(sep);
    return { folder: parts.length > 1 ? parts[0] : '', spec };
  });
}

describe('the direction of dependence in src/', () => {
  it('keeps every layered folder to what it may import: no edge imports another, the core and the engine import no edge', () => {
    const breaches: string[] = [];
    for (const [folder, allowed] of Object.entries(MAY_IMPORT)) {
      for (const file of sourceFiles(join(SRC, folder))) {
        for (const { folder: target, spec } of importedFolders(file)) {
          if (target === '' || target === folder || allowed.includes(target)) continue;
          breaches.push(`${relative(SRC, file)} imports ${spec}`);
        }
      }
    }
    expect(breaches).toEqual([]);
  });

  it('names the three edges apart from one another', () => {
    for (const edge of EDGES) expect(MAY_IMPORT[edge].filter((f) => EDGES.includes(f))).toEqual([]);
  });
});
