import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { orderSignRequest } from '../test/helpers/hook-requests.js';
import { storyOrder, storyResources } from '../test/helpers/stories.js';

/**
 * `npm run bench` (design.md §9): PriorPath and a bare Express baseline, each in its own process, loaded in one run
 * by autocannon from this process; prints latency, throughput and the ratio. Loopback only; bounded in time.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 32;
const STORY = process.env.BENCH_STORY ?? 'centene-mrd-positive';

function start(args: string[], env: Record<string, string>, ready: RegExp | null): Promise<{ proc: ChildProcess; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d: Buffer) => {
      out += String(d);
      if (ready?.test(out)) resolve({ proc, ms: performance.now() - started });
    };
    proc.stdout!.on('data', onData);
    if (!ready) resolve({ proc, ms: 0 });
    proc.stderr!.on('data', (d: Buffer) => (out += String(d)));
    proc.on('exit', (code) => reject(new Error(`process exited ${code}: ${out}`)));
    setTimeout(() => reject(new Error(`not ready after 30 s: ${out}`)), 30_000).unref();
  });
}

async function load(url: string, body: string, headers: Record<string, string> = {}): Promise<autocannon.Result> {
  return autocannon({ url, method: 'POST', connections: CONNECTIONS, duration: DURATION, headers: { 'content-type': 'application/json', ...headers }, body });
}

function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const resources: Resource[] = storyResources(STORY);
  const order: MedicationRequest = storyOrder(STORY, resources);
  const full = orderSignRequest(resources, order);
  const fullBody = JSON.stringify(full);

  const port = 3900 + Math.floor(Math.random() * 50);
  const base = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'priorpath-bench-data-'));
  const pp = await start(['src/main.ts'], { PORT: String(port), CDS_AUTH: 'open', LOG_LEVEL: 'warn', PUBLIC_BASE_URL: base, NODE_ENV: 'development', DATA_DIR: dataDir }, null);
  const spawned = performance.now();
  // main.ts logs nothing at silent level: poll health instead.
  const t0 = performance.now();
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const startupMs = performance.now() - spawned;
  void t0;
  const sign = `${base}/cds-services/priorpath-order-sign`;
  const first = await fetch(sign, { method: 'POST', headers: { 'content-type': 'application/json' }, body: fullBody });
  const responseBytes = Buffer.from(await first.arrayBuffer());
  if (first.status !== 200) throw new Error(`PriorPath answered ${first.status}: ${String(responseBytes)}`);
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-bench-'));
  writeFileSync(join(dir, 'response.json'), responseBytes);
  const basePort = port + 100;
  const baseline = await start(['bench/baseline-server.ts', join(dir, 'response.json'), String(basePort)], {}, /ready/);

  try {
    const b = await load(`http://127.0.0.1:${basePort}/cds-services/priorpath-order-sign`, fullBody);
    const p = await load(sign, fullBody);
    const rss = rssOf(pp.proc.pid!);
    // The EHR is another system: its sandbox FHIR server runs in a process of its own, as a real EHR would.
    const ehrPort = port + 200;
    const ehr = await start(['src/main.ts'], { PORT: String(ehrPort), CDS_AUTH: 'open', LOG_LEVEL: 'warn', NODE_ENV: 'development', DATA_DIR: mkdtempSync(join(tmpdir(), 'priorpath-bench-ehr-')) }, null);
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${ehrPort}/sandbox/fhir/metadata`)).ok) break;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const queryingBody = JSON.stringify({ ...full, fhirServer: `http://127.0.0.1:${ehrPort}/sandbox/fhir`, fhirAuthorization: undefined, prefetch: { patient: (full.prefetch as Record<string, unknown>).patient } });
    const q = await load(sign, queryingBody);
    ehr.proc.kill('SIGTERM');
    // DTR: the package for an order whose documentation is missing, carrying the CRD assertion (pre-fill from storage).
    const dtrStory = 'centene-missing-mrd';
    const dtrResources = storyResources(dtrStory);
    const signed = await fetch(sign, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(orderSignRequest(dtrResources, storyOrder(dtrStory, dtrResources))) });
    const signedOrder = ((await signed.json()) as { systemActions: { resource: unknown }[] }).systemActions[0].resource;
    const packageBody = JSON.stringify({
      resourceType: 'Parameters',
      parameter: [
        { name: 'coverage', resource: dtrResources.find((r) => r.resourceType === 'Coverage') },
        { name: 'order', resource: signedOrder },
      ],
    });
    // The payer API needs a SMART Backend Services token: the sandbox EHR's, as the DTR app gets it (lives 5 min).
    const payerToken = ((await (await fetch(`${base}/sandbox/payer-token`, { method: 'POST' })).json()) as { access_token: string }).access_token;
    const pkg = await load(`${base}/fhir/Questionnaire/$questionnaire-package`, packageBody, { authorization: `Bearer ${payerToken}` });

    const row = (name: string, r: autocannon.Result) =>
      `| ${name.padEnd(44)} | ${String(r.latency.p50).padStart(6)} | ${String(r.latency.p99).padStart(6)} | ${String(Math.round(r.requests.average)).padStart(7)} | ${String(r.non2xx).padStart(5)} |`;
    const lines = [
      `body ${Math.round(fullBody.length / 1024)} KB (story ${STORY}), ${CONNECTIONS} connections, ${DURATION} s each, node ${process.version}`,
      '',
      '| run | p50 ms | p99 ms | req/s | non-2xx |',
      '|---|---:|---:|---:|---:|',
      row('bare Express baseline (same body, same bytes)', b),
      row('PriorPath order-sign, full prefetch', p),
      row('PriorPath order-sign, queries the EHR (own process)', q),
      row('PriorPath $questionnaire-package (with pre-fill)', pkg),
      '',
      `throughput ratio (PriorPath / baseline): ${(p.requests.average / b.requests.average).toFixed(2)} (target >= 0.5)`,
      `p99 ratio (PriorPath / baseline): ${(p.latency.p99 / Math.max(1, b.latency.p99)).toFixed(2)} (target <= 2)`,
      `order-sign with EHR queries p99: ${q.latency.p99} ms (target <= 50)`,
      `$questionnaire-package p99: ${pkg.latency.p99} ms (target <= 20)`,
      `start-up to healthy: ${Math.round(startupMs)} ms (target <= 2000); resident memory after load: ${Math.round(rss)} MiB (target <= 200)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    pp.proc.kill('SIGTERM');
    baseline.proc.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
