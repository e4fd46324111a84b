/**
 * SIGTERM while the service is still starting (the store opening, the content loading): it exits 0 once the store
 * has opened and closed (DATA_DIR's lock released), and never starts listening. Node's default was to die on the
 * signal at once, leaving a stale lock and possibly a half-made DATA_DIR. Waits on the lock file, never on time.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/stories.js';

describe('SIGTERM during start-up', () => {
  it('closes the store, releases DATA_DIR and exits 0 without listening', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'priorpath-startup-sigterm-')), 'data');
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, SANDBOX: 'on', CDS_AUTH: 'open', PORT: '0', LOG_LEVEL: 'info', DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += String(c)));
    child.stderr.on('data', (c: Buffer) => (out += String(c)));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // The store's thread makes DATA_DIR/pglite as it starts opening, before the content has loaded (a second or more,
    // more with the sandbox) and long before the service listens. (A signal in the instant the store's worker thread
    // is being created, before that, was seen to kill the process under tsx all the same: not waited on here.)
    const lock = join(dataDir, 'storage.lock');
    while (!existsSync(join(dataDir, 'pglite'))) await new Promise((resolve) => setImmediate(resolve));
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    expect({ code, signal }, out).toEqual({ code: 0, signal: null });
    expect(out).not.toContain('PriorPath listening');
    // The store is waited for up to the drain's 10 s grace period; on a loaded machine it may still be opening then,
    // and the service says so and leaves the lock (taken over later, its process gone).
    if (out.includes('storage still opening')) expect(existsSync(lock)).toBe(true);
    else expect(existsSync(lock)).toBe(false);
  }, 120_000);
});
