/**
 * `npm start` runs the service with the malloc settings the image sets and the bench measures (README "Memory": about
 * 15-25 MiB less resident memory): glibc reads them before Node starts, and npm's script cannot set them in every
 * operating system's shell, so under npm start on Linux the entry starts the service again as a child that has them
 * (src/malloc-relaunch.ts). Here `npm start`'s environment (npm_lifecycle_event=start) without them, over the
 * source entry as the other process tests run it.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { MALLOC_ENV, mallocRelaunchWanted, waitsForDebugger } from '../../src/malloc-relaunch.js';
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
    // --inspect relaunches (the child gets the inspector); a process that waited for its debugger runs the service itself.
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start' }, 'linux', glibc, ['--inspect=127.0.0.1:9229'])).toBe(true);
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start' }, 'linux', glibc, ['--inspect-brk'])).toBe(false);
    expect(mallocRelaunchWanted({ npm_lifecycle_event: 'start', NODE_OPTIONS: '--max-old-space-size=512 --inspect-wait=0' }, 'linux', glibc)).toBe(false);
    expect(waitsForDebugger(['--inspect', '--inspect-port=9230'], '--inspect=0')).toBe(false);
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

  // `node --inspect` under npm start, or NODE_OPTIONS=--inspect: the launcher opened the inspector's port before its
  // first line ran, and the child, given the same flags, found it taken ("address already in use") while the debugger
  // could attach only to the launcher, which runs none of the service.
  for (const via of ['node flags', 'NODE_OPTIONS'] as const) {
    it.runIf(process.platform === 'linux')(`give the inspector (${via}) to the child that runs the service, and to no other process`, async () => {
      const port = await freePort();
      const flag = `--inspect=127.0.0.1:${port}`;
      const env = { npm_lifecycle_event: 'start', MALLOC_ARENA_MAX: undefined, MALLOC_MMAP_THRESHOLD_: undefined } as unknown as Record<string, string>;
      const pp = via === 'NODE_OPTIONS'
        ? await startPriorPath({ ...env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${flag}`.trim() })
        : await startPriorPath(env, 60_000, [flag]);
      const parent = pp.child.pid!;
      const [child] = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      expect(child).toBeDefined();
      const inspectorSocket = listeningSocketInode(port);
      expect(inspectorSocket, `something listens on ${port}`).toBeDefined();
      expect(socketInodesOf(child).has(inspectorSocket!)).toBe(true);
      expect(socketInodesOf(parent).has(inspectorSocket!)).toBe(false);
      expect(pp.output()).not.toMatch(/address already in use/);
      // The debugger reaches the service's process: its target is the service's script.
      const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { title: string }[];
      expect(targets).toHaveLength(1);
      expect((await fetch(`${pp.base}/healthz`)).status).toBe(200);
      pp.child.kill('SIGTERM');
      expect(await pp.exited).toBe(0);
    }, 90_000);
  }
});

/** A TCP port of this helper's range (4600-4699) that nothing listens on now. */
async function freePort(): Promise<number> {
  for (let port = 4640; port < 4700; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 4640-4699');
}

/** The inode of the socket listening on 127.0.0.1:`port` (/proc/net/tcp: state 0A is LISTEN). */
function listeningSocketInode(port: number): string | undefined {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[3] === '0A') return f[9];
  }
  return undefined;
}

/** The inodes of the sockets a process holds open. */
function socketInodesOf(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch {
      // The descriptor closed while listed.
    }
  }
  return out;
}
