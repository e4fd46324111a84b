import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AstNode } from './fhirpath-compiler.js';

/** Where `npm run build` writes the content's FHIRPath parse trees, inside `dist/` (src/fhir/fhirpath.ts). */
export const PARSE_TREES_FILE = 'fhirpath-parse-trees.json';

/**
 * The parse trees `npm run build` wrote into `distDir`, when they were made by the fhirpath.js version named by
 * `stamp` (fhirpath.ts `parseTreeStamp`); otherwise undefined, and every expression is parsed as it loads. A file that
 * is missing or unreadable only costs start-up time.
 */
export function readParseTrees(distDir: string, stamp: string): Record<string, AstNode> | undefined {
  const path = join(distDir, PARSE_TREES_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as { stamp?: unknown; trees?: unknown };
    if (file.stamp !== stamp || !file.trees || typeof file.trees !== 'object') return undefined;
    return file.trees as Record<string, AstNode>;
  } catch {
    return undefined;
  }
}
