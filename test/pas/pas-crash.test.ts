import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/stories.js';
import { inquiryResponseOf } from '../../src/pas/claim-response.js';
import { claimResponseOf, inquiryParameters, reviewActions, storyBundle } from './pas-fixtures.js';

const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'priorpath-crash-'));
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts the real server process (scripts/pas-crash-server.ts) on the data directory; resolves with its port. */
function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('scripts', 'pas-crash-server.ts')], {
    cwd: repoRoot,
    env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += String(c)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s: ${stderr}`)), 60_000);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += String(c);
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
}

/** A response body: a PAS response Bundle, or the Parameters of $inquire. */
type Answer = Bundle & { parameter?: { name: string; resource: Bundle }[] };

async function post(port: number, path: string, body: unknown): Promise<{ status: number; body: Answer }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: (await res.json()) as Answer };
}

const STORIES = ['centene-mrd-positive', 'mmm-dlbcl-offlabel', 'centene-missing-mrd', 'bcbsnc-relapsed-adult', 'centene-over-dose', 'mmm-ph-positive-tki'];

describe('PAS durability across a crash (real server process, SIGKILL, embedded PGlite)', () => {
  it('finds every submission that was answered 200 after the server is killed mid-load and restarted on the same DATA_DIR', async () => {
    const first = await startServer();
    const bundles: Bundle[] = Array.from({ length: 120 }, (_, i) => storyBundle(STORIES[i % STORIES.length]));
    const acked = new Map<string, Bundle>();
    const answers = new Map<string, Bundle>();
    let next = 0;
    let inFlight = 0;
    let inFlightAtKill = -1;
    let killed = false;

    const worker = async () => {
      while (!killed && next < bundles.length) {
        const b = bundles[next++];
        inFlight++;
        try {
          const res = await post(first.port, '/fhir/Claim/$submit', b);
          if (res.status === 200) {
            acked.set(b.identifier!.value!, b);
            answers.set(b.identifier!.value!, res.body);
          }
        } catch {
          // The connection died with the server: not acknowledged, so nothing is promised.
        } finally {
          inFlight--;
        }
        if (!killed && acked.size >= 25) {
          killed = true;
          inFlightAtKill = inFlight;
          first.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 12 }, worker));
    await new Promise((r) => (first.child.exitCode !== null || first.child.signalCode !== null ? r(null) : first.child.once('exit', r)));
    expect(first.child.signalCode).toBe('SIGKILL');
    expect(inFlightAtKill, 'requests were in flight when the server was killed').toBeGreaterThan(0);
    expect(acked.size).toBeGreaterThanOrEqual(25);

    const second = await startServer();
    try {
      for (const [value, b] of acked) {
        const inq = await post(second.port, '/fhir/Claim/$inquire', inquiryParameters({ identifier: b.identifier as { system: string; value: string } }));
        expect(inq.status).toBe(200);
        expect(inq.body.parameter, `acknowledged submission ${value} lost`).toHaveLength(1);
        const stored = inq.body.parameter![0].resource;
        expect(claimResponseOf(stored).id).toBe(claimResponseOf(answers.get(value)!).id);
        expect(reviewActions(claimResponseOf(stored))).toEqual(reviewActions(claimResponseOf(answers.get(value)!)));
        // The same answer (a request collapsed into another that pends its order was answered under its own Bundle
        // identifier; the stored request keeps the first one's).
        expect({ ...stored, identifier: undefined }).toEqual({ ...inquiryResponseOf(answers.get(value)! as unknown as Record<string, unknown>), identifier: undefined });
      }
      // A request cut off by the crash can simply be sent again.
      const cutOff = bundles.find((b) => !acked.has(b.identifier!.value!))!;
      const retry = await post(second.port, '/fhir/Claim/$submit', cutOff);
      expect(retry.status).toBe(200);
      const again = await post(second.port, '/fhir/Claim/$submit', cutOff);
      expect(again.body).toEqual(retry.body);
    } finally {
      second.child.kill('SIGTERM');
    }
  }, 150_000);
});
