import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './stories.js';

/** A PriorPath server process started from src/main.ts, as `npm start` runs it. */
export interface PriorPathProcess {
  child: ChildProcess;
  port: number;
  base: string;
  /** Everything the process wrote (pino JSON lines and stderr). */
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string>;
}

const running = new Set<ChildProcess>();

/** Kills every process this module started that is still running (for afterAll). */
export function killAll(): void {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/**
 * Starts `src/main.ts` in its own process on a free port with the given environment (open CDS and payer API auth,
 * no sandbox, warnings only, unless overridden); resolves once it logs "PriorPath listening".
 */
export function startPriorPath(env: Record<string, string> = {}, timeoutMs = 60_000): Promise<PriorPathProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('src', 'main.ts')], {
    cwd: repoRoot,
    env: {
      ...process.env,
      PORT: '0',
      NODE_ENV: 'development',
      SANDBOX: 'off',
      CDS_AUTH: 'open',
      PAYER_API_AUTH: 'open',
      LOG_LEVEL: 'info',
      DATA_DIR: mkdtempSync(join(tmpdir(), 'priorpath-proc-')),
      PUBLIC_BASE_URL: 'http://127.0.0.1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += String(c)));
  child.stderr!.on('data', (c: Buffer) => (out += String(c)));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`PriorPath did not start in ${timeoutMs} ms: ${out.slice(-2000)}`)), timeoutMs);
    const onData = () => {
      const line = out.split('\n').find((l) => l.includes('"PriorPath listening"'));
      if (!line) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      const port = (JSON.parse(line) as { port: number }).port;
      resolve({ child, port, base: `http://127.0.0.1:${port}`, output: () => out, exited });
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`PriorPath exited (${code}) before listening: ${out.slice(-2000)}`));
    });
  });
}

/** Polls `url` until `accept(status)` or the deadline; resolves with the last status. */
export async function waitForStatus(url: string, accept: (status: number) => boolean, deadlineMs = 30_000): Promise<number> {
  const until = Date.now() + deadlineMs;
  let status = 0;
  while (Date.now() < until) {
    status = await fetch(url, { signal: AbortSignal.timeout(6000) })
      .then((r) => r.status)
      .catch(() => 0);
    if (accept(status)) return status;
    await new Promise((r) => setTimeout(r, 200));
  }
  return status;
}
