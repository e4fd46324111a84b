import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import express from 'express';
import type { Bundle } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadError, loadIntoFhir } from '../../src/sandbox/load-into-fhir.js';
import type { FetchLike } from '../../src/sandbox/load-into-fhir.js';
import { createSandboxFhir, loadSandboxBundles } from '../../src/sandbox/sandbox-fhir.js';

const root = join(import.meta.dirname, '..', '..');
const bundles = loadSandboxBundles(join(root, 'sandbox'), { today: '2026-11-16' });

/** An empty embedded server on a real port: the stand-in for HAPI. */
describe('load-into-fhir', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const empty = await createSandboxFhir({ bundles: [] });
    const app = express().use('/fhir', empty.router);
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('POSTs every story as a transaction; loading twice is harmless (PUT with client ids)', async () => {
    const lines: string[] = [];
    expect(await loadIntoFhir({ baseUrl: base, bundles, log: (l) => lines.push(l) })).toEqual(bundles.map((b) => b.id));
    expect(await loadIntoFhir({ baseUrl: `${base}/`, bundles })).toHaveLength(bundles.length);
    expect(lines.filter((l) => l.startsWith('loaded '))).toHaveLength(bundles.length);
    const res = await fetch(`${base}/Coverage?patient=centene-over-dose&status=active`);
    expect(((await res.json()) as Bundle).entry).toHaveLength(1);
  });

  it('waits while the server is not up yet, then loads', async () => {
    let calls = 0;
    const flaky: FetchLike = async (url, init) => {
      calls++;
      if (calls === 1) throw new TypeError('fetch failed');
      if (calls === 2) return new Response('starting', { status: 503 });
      if (calls === 3) return new Response('no servlet yet', { status: 404 });
      return fetch(url, init);
    };
    const lines: string[] = [];
    const loaded = await loadIntoFhir({
      baseUrl: base,
      bundles: bundles.slice(0, 2),
      fetchImpl: flaky,
      retryDelayMs: 5,
      log: (l) => lines.push(l),
    });
    expect(loaded).toHaveLength(2);
    expect(lines.filter((l) => l.includes('retrying'))).toHaveLength(3);
    expect(lines[0]).toMatch(/unreachable \(fetch failed\)/);
  });

  it('stops at once, naming the story, when the server refuses it', async () => {
    const refusing: FetchLike = async (url, init) =>
      init?.method === 'POST'
        ? new Response(
            JSON.stringify({
              resourceType: 'OperationOutcome',
              issue: [{ severity: 'error', code: 'processing', diagnostics: 'HAPI-0450: bad reference' }],
            }),
            { status: 400 },
          )
        : fetch(url, init);
    await expect(loadIntoFhir({ baseUrl: base, bundles, fetchImpl: refusing, retryDelayMs: 5 })).rejects.toThrow(
      new LoadError(`story ${bundles[0].id}: ${base} answered 400: HAPI-0450: bad reference`),
    );
  });

  it('gives up after the deadline with the last reason', async () => {
    const down: FetchLike = async () => {
      throw new TypeError('connect ECONNREFUSED');
    };
    await expect(
      loadIntoFhir({ baseUrl: 'http://hapi.invalid/fhir', bundles, fetchImpl: down, deadlineMs: 40, retryDelayMs: 10 }),
    ).rejects.toThrow(
      /waiting for the FHIR server: gave up after \d+ attempts; http:\/\/hapi.invalid\/fhir unreachable \(connect ECONNREFUSED\)/,
    );
  });

  it('runs as a CLI: loads the sandbox directory, and exits 1 with usage on bad arguments', async () => {
    const run = promisify(execFile);
    const tsx = join(root, 'node_modules', '.bin', 'tsx');
    const ok = await run(tsx, ['src/sandbox/load-into-fhir.ts', base, 'sandbox'], { cwd: root });
    expect(ok.stdout).toContain(`loaded ${bundles.length} sandbox stories into ${base}`);
    const bad = await run(tsx, ['src/sandbox/load-into-fhir.ts'], { cwd: root }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr).toMatch(/usage: tsx src\/sandbox\/load-into-fhir.ts <fhirBaseUrl>/);
  });
});
