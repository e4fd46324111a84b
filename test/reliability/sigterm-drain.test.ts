/**
 * SIGTERM drains (design.md §2 "Ops"; a rolling deploy behind a load balancer): the process stops accepting
 * connections and reports not-ready, lets the hook in flight finish with its full answer, then exits 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { createStorage } from '../../src/storage/create-storage.js';
import { edgePatient } from '../fixtures/edge-patient.js';
import { orderSignRequest, searchset } from '../helpers/hook-requests.js';
import { killAll, startPriorPath, waitForStatus } from '../helpers/priorpath-process.js';
import { repoRoot } from '../helpers/stories.js';
import type { PriorPathProcess } from '../helpers/priorpath-process.js';

const { resources, order } = edgePatient();
let ehr: http.Server;
let ehrBase: string;
/** Resolves when the EHR has received a hook's Observation query (the hook is then surely in flight). */
let queried: () => void = () => {};
let observationQueried = nextObservationQuery();
function nextObservationQuery(): Promise<void> {
  return new Promise<void>((resolve) => (queried = resolve));
}

beforeAll(async () => {
  // An EHR that takes 1.5 s to answer the Observation search (inside the 5 s EHR_TIMEOUT_MS the server gets).
  ehr = http.createServer((req, res) => {
    const type = (req.url ?? '').split('?')[0].split('/').pop()!;
    const body = JSON.stringify(searchset(resources.filter((r: Resource) => r.resourceType === type)));
    if (type === 'Observation') {
      queried();
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(body), 1500);
    } else res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(body);
  });
  await new Promise<void>((resolve) => ehr.listen(0, '127.0.0.1', resolve));
  ehrBase = `http://127.0.0.1:${(ehr.address() as AddressInfo).port}`;
});
afterAll(async () => {
  killAll();
  ehr.closeAllConnections();
  await new Promise((resolve) => ehr.close(resolve));
});

describe('SIGTERM', () => {
  it('finishes the in-flight hook with its full answer, refuses new connections, then exits 0', async () => {
    const pp = await startPriorPath({ EHR_TIMEOUT_MS: '5000' });
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 200, 60_000)).toBe(200);
    const body = orderSignRequest(resources, order, { fhirServer: ehrBase }) as { prefetch: Record<string, unknown> };
    delete body.prefetch.observations;
    const inFlight = fetch(`${pp.base}/cds-services/priorpath-order-sign`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    await observationQueried;
    pp.child.kill('SIGTERM');
    // Not ready at once, while the listening socket still accepts (DRAIN_ACCEPT_MS): the probe is answered, 503.
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 503, 5_000)).toBe(503);
    // Then the listening socket closes: a new connection is refused while the old request is still running.
    const refused = await waitUntilRefused(pp.port);
    expect(refused).toBe(true);

    const res = await inFlight;
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { systemActions: { resource: { resourceType: string } }[] };
    expect(answer.systemActions[0].resource.resourceType).toBe('MedicationRequest');
    expect(await pp.exited).toBe(0);
    expect(pp.output()).toContain('draining');
  }, 120_000);
});

describe('SIGTERM after answering hooks', () => {
  it('has stored the assertion of every hook it answered once it exits 0 (close writes what is queued)', async () => {
    await onNewDataDir({}, async (pp, dataDir) => {
      const answers = await Promise.all(
        Array.from({ length: 24 }, () =>
          fetch(`${pp.base}/cds-services/priorpath-order-sign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(orderSignRequest(resources, order)) }),
        ),
      );
      // Answered: their records were queued behind the answers, possibly not written yet.
      pp.child.kill('SIGTERM');
      const ids: string[] = [];
      for (const res of answers) {
        expect(res.status).toBe(200);
        const body = (await res.json()) as { systemActions: { resource: { extension?: { url: string; extension?: { url: string; valueString?: string }[] }[] } }[] };
        const info = body.systemActions[0].resource.extension?.find((e) => e.url === COVERAGE_INFO_URL);
        ids.push(info!.extension!.find((e) => e.url === 'coverage-assertion-id')!.valueString!);
      }
      expect(await pp.exited).toBe(0);
      const storage = await createStorage({ dataDir });
      try {
        for (const id of ids) expect(await storage.getAssertion(id)).toMatchObject({ assertionId: id });
      } finally {
        await storage.close();
      }
    });
  }, 180_000);
});

describe('SIGTERM while a hook runs for a client that gave up', () => {
  it('lets the hook finish and record its audit line before storage closes, then exits 0', async () => {
    await onNewDataDir({ EHR_TIMEOUT_MS: '5000' }, async (pp, dataDir) => {
      const body = orderSignRequest(resources, order, { fhirServer: ehrBase }) as { prefetch: Record<string, unknown>; hookInstance: string };
      delete body.prefetch.observations;
      observationQueried = nextObservationQuery();
      // A client that gives up as load generators and proxies do: the request, then a TCP reset, no FIN (a FIN
      // leaves the server's side half-open until it answers, which the drain already waits for).
      const socket = connect(pp.port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      const json = JSON.stringify(body);
      socket.write(`POST /cds-services/priorpath-order-sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
      await observationQueried;
      socket.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 100));
      pp.child.kill('SIGTERM');
      expect(await pp.exited).toBe(0);
      expect(pp.output()).not.toContain('storage is closed');
      expect(pp.output()).not.toContain('unhandled error');
      expect(await storedAuditLine(dataDir, body.hookInstance)).toMatchObject({ service: 'priorpath-order-sign', status: 200 });
    });
  }, 120_000);
});

/** Tries to connect until the port refuses (bounded: the drain accepts for DRAIN_ACCEPT_MS first); true when refused. */
async function waitUntilRefused(port: number): Promise<boolean> {
  for (const until = performance.now() + 5_000; performance.now() < until; ) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
      () => true,
      () => false,
    );
    if (!ok) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe('SIGTERM with connections that are not answering anything', () => {
  it('closes a connection whose request never arrived whole and an idle keep-alive one, closes storage, exits 0 before the grace period', async () => {
    await onNewDataDir({}, async (pp, dataDir) => {
      // A hook answered over a keep-alive connection that the client keeps open.
      const body = orderSignRequest(resources, order) as { hookInstance: string };
      const agent = new http.Agent({ keepAlive: true });
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${pp.base}/cds-services/priorpath-order-sign`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
      expect(status).toBe(200);
      // A client sending its headers slowly: the request line and one header, then nothing (Node waits a minute for
      // the rest).
      const slow = connect(pp.port, '127.0.0.1');
      await new Promise<void>((resolve) => slow.once('connect', resolve));
      slow.write('POST /cds-services/priorpath-order-sign HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const slowClosed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
      slow.on('error', () => undefined);
      await new Promise((r) => setTimeout(r, 100));

      // Exit 0 is the drain's own end; were either connection to hold it to the grace period, the exit would be 1.
      pp.child.kill('SIGTERM');
      expect(await pp.exited).toBe(0);
      await slowClosed;
      agent.destroy();
      expect(pp.output()).toContain('drained; exiting');
      expect(await storedAuditLine(dataDir, body.hookInstance)).toMatchObject({ service: 'priorpath-order-sign', status: 200 });
    });
  }, 120_000);
});

/** Runs `test` against a PriorPath on a new embedded DATA_DIR (ready first), and removes the directory after. */
async function onNewDataDir(env: Record<string, string>, test: (pp: PriorPathProcess, dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'priorpath-drain-'));
  try {
    const pp = await startPriorPath({ DATA_DIR: dataDir, DATABASE_URL: '', ...env });
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 200, 60_000)).toBe(200);
    await test(pp, dataDir);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The audit line a stopped PriorPath stored in `dataDir` for `hookInstance`, if any. */
async function storedAuditLine(dataDir: string, hookInstance: string) {
  const storage = await createStorage({ dataDir });
  try {
    return (await storage.listAudit()).find((a) => a.hookInstance === hookInstance);
  } finally {
    await storage.close();
  }
}

/** How one request of a keep-alive load run ended. */
interface LoadResult {
  /** Sent before the SIGTERM: it was in flight (or queued on its socket) when the drain began. */
  beforeSignal: boolean;
  status?: number;
  /** The body arrived whole (its length is the Content-Length the server announced). */
  whole?: boolean;
  connectionClose?: boolean;
  error?: string;
}

/**
 * One request over `agent`; resolves with how it ended, never rejects. A request that fails on a connection the
 * agent reused (ECONNRESET, "socket hang up") is an answer lost; a new connection refused is the drain's clean no.
 */
function loadRequest(url: string, agent: http.Agent, body: string, signalled: () => boolean): Promise<LoadResult> {
  const beforeSignal = !signalled();
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let length = 0;
      res.on('data', (c: Buffer) => (length += c.length));
      res.on('error', (err) => resolve({ beforeSignal, status: res.statusCode, error: (err as NodeJS.ErrnoException).code ?? err.message }));
      res.on('end', () =>
        resolve({ beforeSignal, status: res.statusCode, whole: res.complete && length === Number(res.headers['content-length'] ?? length), connectionClose: res.headers.connection === 'close' }),
      );
    });
    req.on('error', (err) => resolve({ beforeSignal, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end(body);
  });
}

describe('SIGTERM under keep-alive load', () => {
  it('answers every request in flight at the signal in full, and no client sees a reset', async () => {
    await onNewDataDir({}, async (pp) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 24 });
      const url = `${pp.base}/cds-services/priorpath-order-sign`;
      let signalled = false;
      const results: LoadResult[] = [];
      // Closed-loop clients, as a load generator or an EHR's connection pool: each sends its next request as soon as
      // the last is answered (on the same connection unless it said `Connection: close`), until refused.
      const client = async () => {
        for (;;) {
          const r = await loadRequest(url, agent, JSON.stringify(orderSignRequest(resources, order)), () => signalled);
          results.push(r);
          if (r.error) return;
        }
      };
      const clients = Array.from({ length: 24 }, client);
      // Let the load reach its stride (every socket opened and reused), then signal with requests in flight.
      while (results.length < 200) await new Promise((r) => setTimeout(r, 10));
      signalled = true;
      pp.child.kill('SIGTERM');
      await Promise.all(clients);
      agent.destroy();
      expect(await pp.exited).toBe(0);

      // Results are kept as they end: one sent before the signal and ending after it was in flight at the signal.
      const inFlight = results.filter((r) => r.beforeSignal && results.indexOf(r) >= 200);
      expect(inFlight.length).toBeGreaterThan(0);
      const lost = results.filter((r) => r.beforeSignal && !(r.status === 200 && r.whole));
      expect(lost).toEqual([]);
      // After the signal: answered whole, or a new connection refused; never a reset. Once draining, answers say
      // `Connection: close` (until the server reads the signal, a request is answered as any other).
      const afterBad = results.filter((r) => !r.beforeSignal && !(r.status === 200 && r.whole) && r.error !== 'ECONNREFUSED');
      expect(afterBad).toEqual([]);
      expect(results.some((r) => r.connectionClose)).toBe(true);
    });
  }, 180_000);
});

describe('SIGTERM while the event loop is busy, with connections the kernel has completed and not yet handed over', () => {
  it('accepts and answers every one of them (none is reset with the listening socket), then exits 0', async () => {
    // A server with the service's ConnectionDrain whose loop a request holds (test/helpers/drain-server.ts), as earlier
    // requests hold a busy service's: the connections below are completed by the kernel and wait in its accept queue,
    // each with a whole request written, when the signal comes. Closing the listening socket then resets them.
    const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'helpers', 'drain-server.ts')], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += String(c)));
    child.stderr.on('data', (c: Buffer) => (out += String(c)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const seen = async (text: string) => {
      while (!out.includes(text)) {
        if (child.exitCode !== null) throw new Error(`drain server exited: ${out}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      await seen('listening');
      const port = Number(/listening (\d+)/.exec(out)![1]);
      const blocker = connect(port, '127.0.0.1');
      blocker.on('error', () => undefined);
      blocker.write('GET /block?ms=1500 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await seen('blocking');
      const endings: Promise<string>[] = [];
      const connected: Promise<void>[] = [];
      for (let i = 0; i < 100; i++) {
        const socket = connect(port, '127.0.0.1');
        connected.push(new Promise((resolve) => socket.once('connect', () => resolve())));
        let data = '';
        socket.on('data', (c: Buffer) => (data += String(c)));
        endings.push(
          new Promise((resolve) => {
            socket.on('error', (err: NodeJS.ErrnoException) => resolve(data.split('\r\n')[0] || (err.code ?? err.message)));
            socket.on('close', () => resolve(data.split('\r\n')[0] || 'closed without an answer'));
          }),
        );
        socket.write('POST /order HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
      }
      // Every connection is complete (the kernel's handshake) while the server's loop is still held.
      await Promise.all(connected);
      child.kill('SIGTERM');
      const answers = await Promise.all(endings);
      blocker.destroy();
      expect(answers.filter((a) => a !== 'HTTP/1.1 200 OK')).toEqual([]);
      expect(await exited).toBe(0);
      expect(out).toContain('drained');
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
