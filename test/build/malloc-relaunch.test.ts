/**
 * `npm start` runs the service with the malloc settings the image sets and the bench measures (README "Memory": about
 * 15-25 MiB less resident memory): glibc reads them before Node starts, and npm's script cannot set them in every
 * operating system's shell, so under npm start on Linux the entry starts the service again as a child that has them
 * (src/malloc-relaunch.ts). Here `npm start`'s environment (npm_lifecycle_event=start) without them, over the
 * source entry as the other process tests run it.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { MALLOC_ENV, mallocRelaunchWanted } from '../../src/malloc-relaunch.js';
import { dockerfileEnv } from '../helpers/dockerfile.js';
import { killAll, startPriorPath } from '../helpers/priorpath-process.js';
import { repoRoot } from '../helpers/stories.js';

afterAll(killAll);

describe('the malloc settings under npm start', () => {
  it('are the image’s', () => {
    const image = dockerfileEnv(repoRoot);
    expect({ MALLOC_ARENA_MAX: image.MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_: image.MALLOC_MMAP_THRESHOLD_ }).toEqual(MALLOC_ENV);
  });

  it('are given by a relaunch only under npm start on Linux with glibc, when the environment has neither', () => {
    const glibc = () => true;
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start' }, 'linux', glibc)).toBe(true);
    expect(mallocRelaunchWanted({}, 'linux', glibc)).toBe(false);
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'test' }, 'linux', glibc)).toBe(false);
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start' }, 'darwin', glibc)).toBe(false);
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start' }, 'linux', () => false)).toBe(false);
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start', MALLOC_ARENA_MAX: '4' }, 'linux', glibc)).toBe(false);
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start', MALLOC_MMAP_THRESHOLD_: '131072' }, 'linux', glibc)).toBe(false);
  });

  it.runIf(process.platform === 'linux')('run the service in a child that has them; SIGTERM drains it and both exit 0', async () => {
    const pp = await startPriorPath({ npm_lifecycle_event: 'start', MALLOC_ARENA_MAX: undefined, MALLOC_MMAP_THRESHOLD_: undefined } as unknown as Record<string, string>);
    const parent = pp.child.pid!;
    const children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    expect(children).toHaveLength(1);
    const childEnv = readFileSync(`/proc/${children[0]}/environ`, 'utf8').split('\0');
    expect(childEnv).toContain('MALLOC_ARENA_MAX=2');
    expect(childEnv).toContain('MALLOC_MMAP_THRESHOLD_=262144');
    expect(readFileSync(`/proc/${parent}/environ`, 'utf8').split('\0').some((v) => v.startsWith('MALLOC_'))).toBe(false);
    // The service answers on the port the child bound.
    expect((await fetch(`${pp.base}/healthz`)).status).toBe(200);
    pp.child.kill('SIGTERM');
    expect(await pp.exited).toBe(0);
    expect(pp.output()).toContain('drained; exiting');
  }, 90_000);
});
