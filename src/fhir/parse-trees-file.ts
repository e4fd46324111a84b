import { readBuildFile } from '../build-file.js';
import type { AstNode } from './fhirpath-compiler.js';

/** Where `npm run build` writes the content's FHIRPath parse trees, inside `dist/` (src/fhir/fhirpath.ts). */
export const PARSE_TREES_FILE = 'fhirpath-parse-trees.json';

/**
 * The parse trees `npm run build` wrote into `distDir`, when they were made by the fhirpath.js version named by
 * `stamp` (fhirpath.ts `parseTreeStamp`); otherwise undefined, and every expression is parsed as it loads. A file that
 * is missing or unreadable only costs start-up time.
 */
export function readParseTrees(distDir: string, stamp: string): Record<string, AstNode> | undefined {
  return readBuildFile<AstNode>(distDir, PARSE_TREES_FILE, stamp, 'trees');
}
