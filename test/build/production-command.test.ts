import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Production runs the built JavaScript with the heap flags README "Memory" measures: `npm start` and the Docker image
 * must run the same command, so the figures the bench reports (it reads `npm start`) are the image's.
 */
describe('the production command', () => {
  const root = join(import.meta.dirname, '..', '..');
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const cmd = JSON.parse(/^CMD\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1] ?? 'null') as string[] | null;

  it('is node on the built dist/main.js with a bounded old generation, the same in npm start and the image', () => {
    expect(start.split(/\s+/)).toEqual(cmd);
    expect(cmd?.[0]).toBe('node');
    expect(cmd?.at(-1)).toBe('dist/main.js');
    expect(cmd?.some((w) => /^--max-old-space-size=\d+$/.test(w))).toBe(true);
  });
});
