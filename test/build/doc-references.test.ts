/**
 * The repository stands alone: every section a comment, policy, value set, questionnaire, doc or test cites
 * (`docs/design.md §4`, `design.md §6`, `terminology.md §12`, `docs/terminology.md §2.1, §5`) is a numbered heading of
 * a markdown file in the repository, and nothing cites the research digests or the shared folder the project was
 * written beside, which a clone of the repository does not have (docs/design.md §2 says what is where).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/stories.js';

/** What is scanned: the project's own text. node_modules, dist, .git and the vendored LHC-Forms are not. */
const ROOTS = [
  'src',
  'cds-services',
  'questionnaires',
  'libraries',
  'cql',
  'docs',
  'test',
  'web',
  'sandbox',
  'scripts',
  'bench',
];
const ROOT_FILES = ['README.md'];
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'vendor', 'screenshots']);
const TEXT = /\.(ts|tsx|js|mjs|cjs|json|ya?ml|md|cql|html|css)$/;

function textFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? SKIP_DIRS.has(e.name)
        ? []
        : textFiles(join(dir, e.name))
      : TEXT.test(e.name)
        ? [join(dir, e.name)]
        : [],
  );
}

const files = [...ROOTS.flatMap((d) => textFiles(join(repoRoot, d))), ...ROOT_FILES.map((f) => join(repoRoot, f))];

/**
 * A markdown file named with a section: `docs/design.md §4`, `design.md §6`, `terminology.md §2.1, §5 and §12`.
 * Anchored on the `.md` so that long runs of text (base64 in libraries/) are not backtracked over; the path is read
 * backwards from it. Group 1 the section list.
 */
const SECTION_REF = /\.md["'`]?\s?(§\s?\d+(?:\.\d+)*(?:\s*(?:,|;|and|or|\/)\s*§\s?\d+(?:\.\d+)*)*)/g;
/** The path before a `.md`: `docs/design`, `design`, `research/codes`. */
const pathBefore = (text: string, end: number) => /[\w./-]*$/.exec(text.slice(Math.max(0, end - 200), end))![0];
/**
 * The notes kept beside the project, not in it: the research digests (`research/<name>.md`, and by their bare names)
 * and the house style, whose rules the project states in docs/design.md §2 "Platform conventions".
 */
const DIGEST = /\bresearch\/[\w-]{1,80}\.md\b|(?<![\w./-])(?:codes|cds-hooks|style)\.md\b/g;
/** A relative path climbing to a `shared` folder: fine when it lands inside the repository (web/shared). */
const SHARED = /((?:\.\.\/)+shared)\b/g;

/** The section numbers of a markdown file's headings (`## 4. CRD` → 4, `### 8.2 Lab tests` → 8.2). */
const headingsCache = new Map<string, Set<string>>();
function headingNumbers(path: string): Set<string> {
  let numbers = headingsCache.get(path);
  if (!numbers) {
    numbers = new Set([...readFileSync(path, 'utf8').matchAll(/^#{1,6}\s+§?(\d+(?:\.\d+)*)\.?\s/gm)].map((m) => m[1]));
    headingsCache.set(path, numbers);
  }
  return numbers;
}

/** Where a cited markdown file is: as written from the repository root, else under docs/ (`design.md`). */
function citedFile(written: string): string | undefined {
  const candidates = [join(repoRoot, written), join(repoRoot, 'docs', written)];
  return candidates.find((p) => p.startsWith(repoRoot + sep) && existsSync(p));
}

const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;

describe('references resolve inside the repository', () => {
  it('finds the files to scan', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(files.some((f) => f.endsWith(join('cds-services', 'valuesets', 'blinatumomab.json')))).toBe(true);
  });

  it('cites only sections that are headings of a markdown file in the repository', () => {
    const unresolved: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(SECTION_REF)) {
        const where = `${relative(repoRoot, file)}:${lineOf(text, m.index)}`;
        const written = `${pathBefore(text, m.index)}.md`;
        const target = citedFile(written);
        if (!target) {
          unresolved.push(`${where} cites ${written} ${m[1]}: no such file in the repository`);
          continue;
        }
        for (const n of m[1].matchAll(/§\s?(\d+(?:\.\d+)*)/g)) {
          if (!headingNumbers(target).has(n[1])) {
            unresolved.push(
              `${where} cites ${written} §${n[1]}: ${relative(repoRoot, target)} has no heading numbered ${n[1]}`,
            );
          }
        }
      }
    }
    expect(unresolved).toEqual([]);
  });

  it('cites no research digest, house style or shared folder outside the repository', () => {
    const outside: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(DIGEST)) {
        outside.push(
          `${relative(repoRoot, file)}:${lineOf(text, m.index)} cites ${m[0]}, a note outside the repository`,
        );
      }
      for (const m of text.matchAll(SHARED)) {
        const target = resolve(dirname(file), m[1]);
        if (!target.startsWith(repoRoot + sep) || !existsSync(target)) {
          outside.push(`${relative(repoRoot, file)}:${lineOf(text, m.index)} cites ${m[1]}, outside the repository`);
        }
      }
      if (/\/work\/shared\b/.test(text)) outside.push(`${relative(repoRoot, file)} cites the shared work folder`);
    }
    expect(outside).toEqual([]);
  });
});
