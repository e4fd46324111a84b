import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerfileCmd, dockerfileEnv } from '../helpers/dockerfile.js';

/**
 * Production runs the built JavaScript with the heap flags and malloc setting README "Memory" measures: `npm start`
 * and the Docker image must run the same command, and the image sets the malloc environment the bench runs the
 * service in (bench/run-bench.ts reads both), so the figures the bench reports are the image's.
 */
describe('the production command', () => {
  const root = join(import.meta.dirname, '..', '..');
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
  const cmd = dockerfileCmd(root);

  it('is node on the built dist/main.js with a bounded old generation, the same in npm start and the image', () => {
    expect(start.trim().split(/\s+/)).toEqual(cmd);
    expect(cmd?.[0]).toBe('node');
    expect(cmd?.at(-1)).toBe('dist/main.js');
    expect(cmd?.some((w) => /^--max-old-space-size=\d+$/.test(w))).toBe(true);
    expect(cmd?.some((w) => /^--max-semi-space-size=\d+$/.test(w))).toBe(true);
  });

  it('sets MALLOC_ARENA_MAX in the image (glibc reads it before node starts: it cannot be set from inside)', () => {
    expect(dockerfileEnv(root).MALLOC_ARENA_MAX).toBe('2');
  });

  it('gives large allocations pages of their own (MALLOC_MMAP_THRESHOLD_), so what is freed after load goes back', () => {
    expect(Number(dockerfileEnv(root).MALLOC_MMAP_THRESHOLD_)).toBeGreaterThan(0);
  });
});
