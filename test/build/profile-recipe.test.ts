import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchPorts, cpuProfileFlags, freePort, portIsFree, profilesOf, serviceArgs } from '../../bench/profile-run.js';
import { summariseProfile } from '../../bench/profile-summary.js';
import { repoRoot } from '../helpers/stories.js';

/**
 * The plumbing of README "Where the time goes: `npm run profile`" (issue #14), checked without running a load: the
 * profiler's flags reach node before the service's script, the run takes a port nothing else answers on, the files
 * summarised are the profiled process's own, and the summary counts the load's samples, not start-up's.
 */
describe('npm run profile', () => {
  const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-profile-recipe-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds, then runs the bench in its profile mode', () => {
    expect(scripts.profile).toBe('tsx scripts/build.ts && tsx bench/run-bench.ts --profile');
  });

  it("runs npm start's command with --cpu-prof among node's flags, before the script (after it they are the script's arguments)", () => {
    const args = serviceArgs(scripts.start, cpuProfileFlags('/x/profiles'));
    const startFlags = scripts.start.trim().split(/\s+/).slice(1, -1);
    expect(args.at(-1)).toBe('dist/main.js');
    expect(args.slice(0, startFlags.length)).toEqual(startFlags);
    expect(args.indexOf('--cpu-prof')).toBeGreaterThanOrEqual(0);
    expect(args.indexOf('--cpu-prof')).toBeLessThan(args.indexOf('dist/main.js'));
    expect(args.indexOf('--cpu-prof-dir=/x/profiles')).toBeLessThan(args.indexOf('dist/main.js'));
    expect(() => serviceArgs('tsx src/main.ts')).toThrow(/npm start is not/);
  });

  it('takes a port nothing listens on, and tells a taken port from a free one', async () => {
    const held = createServer();
    await new Promise<void>((resolve) => held.listen(0, resolve));
    const taken = (held.address() as { port: number }).port;
    try {
      expect(await portIsFree(taken)).toBe(false);
      const port = await freePort();
      expect(port).not.toBe(taken);
      expect(await portIsFree(port)).toBe(true);
    } finally {
      await new Promise((resolve) => held.close(resolve));
    }
  });

  it('npm run bench takes four distinct free ports, not a fixed default, unless BENCH_PORT names the first', async () => {
    const ports = await benchPorts(undefined);
    const list = [ports.service, ports.baseline, ports.ehr, ports.sandbox];
    expect(new Set(list).size).toBe(4);
    for (const port of list) expect(await portIsFree(port)).toBe(true);
    expect(await benchPorts('4390')).toEqual({ service: 4390, baseline: 4391, ehr: 4392, sandbox: 4393 });
    await expect(benchPorts('forty')).rejects.toThrow(/BENCH_PORT/);
  });

  it("summarises the profiled process's own files, main thread first, not an earlier run's or another process's", () => {
    const files = ['CPU.20261205.010000.4242.1.002.cpuprofile', 'CPU.20261205.010000.4242.0.001.cpuprofile', 'CPU.20261205.005900.999.0.001.cpuprofile', 'CPU.20261205.010000.42420.0.001.cpuprofile', 'notes.txt'];
    for (const f of files) writeFileSync(join(dir, f), '{}');
    expect(profilesOf(dir, 4242)).toEqual([join(dir, 'CPU.20261205.010000.4242.0.001.cpuprofile'), join(dir, 'CPU.20261205.010000.4242.1.002.cpuprofile')]);
    expect(profilesOf(dir, 1)).toEqual([]);
  });

  it('counts only the samples taken within the load, idle apart', () => {
    // Start-up (the content's FHIRPath parsed by antlr4) from 1,000,000 µs, the load (a hook's evaluation, GC, idle)
    // after 1,003,000 µs. Each sample is stamped with the start plus the deltas up to its own.
    const path = join(dir, 'small.cpuprofile');
    const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });
    writeFileSync(
      path,
      JSON.stringify({
        nodes: [
          { id: 1, callFrame: frame('(root)'), children: [2, 3, 4, 5] },
          { id: 2, callFrame: frame('parse', 'file:///app/node_modules/antlr4/dist/antlr4.node.mjs') },
          { id: 3, callFrame: frame('readFacts', 'file:///app/dist/policies/evaluate-policy.js') },
          { id: 4, callFrame: frame('(garbage collector)') },
          { id: 5, callFrame: frame('(idle)') },
        ],
        startTime: 1_000_000,
        endTime: 1_010_000,
        samples: [2, 2, 2, 3, 3, 4, 5, 5, 2],
        timeDeltas: [1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 2_000],
      }),
    );
    const load = summariseProfile(path, 12, { fromUs: 1_003_500, toUs: 1_008_000 });
    expect(load).toMatch(/^busy 3 ms, idle 2 ms in the load's 0\.0 s of the profile's 0\.0 s, 5 of 9 samples/);
    expect(load).toContain('policies/evaluate-policy.js');
    expect(load).toContain('(garbage collector)');
    expect(load).not.toContain('antlr4');
    const whole = summariseProfile(path);
    expect(whole).toMatch(/^busy 8 ms, idle 2 ms in the whole profile/);
    expect(whole).toContain('antlr4');
  });
});
