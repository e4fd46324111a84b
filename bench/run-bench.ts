import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { httpLoad } from './http-load.js';
import { requestDeadline } from '../src/http/request-deadline.js';
import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { orderSignRequest } from '../test/helpers/hook-requests.js';
import { summariseProfile } from './profile-summary.js';
import { benchPorts, cpuProfileFlags, monotonicUs, portIsFree, profilesOf, serviceArgs } from './profile-run.js';
import { dockerfileEnv } from '../test/helpers/dockerfile.js';
import { storyOrder, storyResources } from '../test/helpers/stories.js';

/**
 * `npm run bench` (design.md §9). Runs the BUILT service (`node dist/main.js`, after `npm run build`) and a bare
 * Express baseline, each in its own process, and loads them from this process with autocannon:
 * - order-sign with full prefetch, every request a different patient and hookInstance (both servers get the same
 *   bodies, in the same order), then the same with one identical body (what the evaluation cache measures);
 * - order-sign with only the Patient prefetched, the rest queried from an EHR stub in its own process that answers
 *   from memory (bench/ehr-stub.ts), again a different patient per request;
 * - apart: order-sign querying the embedded sandbox EHR, and `$questionnaire-package` with CRD pre-fill (loaded
 *   through bench/http-load.ts: autocannon would measure its own decoding of the body), both on a
 *   second PriorPath process with SANDBOX=on and PAYER_API_AUTH=open (the documented open mode of the sandbox);
 * - resident memory of the service sampled during every run, and start to ready (`/readyz` 200) on a new DATA_DIR.
 * Loopback only; bounded in time (BENCH_SECONDS per run, default 10).
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 32;
const STORY = process.env.BENCH_STORY ?? 'centene-mrd-positive';
const DTR_STORY = 'centene-missing-mrd';
/** The bench's ports: free ones chosen by the system, or four consecutive from BENCH_PORT (profile-run.ts). */
const ports = () => benchPorts(process.env.BENCH_PORT);
/**
 * What a browser (so a SMART DTR app) sends with every request: the package is measured as those clients receive it
 * (gzip), and apart without Accept-Encoding (1.2 MB of JSON).
 */
const BROWSER_ENCODINGS = { 'accept-encoding': 'gzip, deflate, br' };
/**
 * `npm run profile`: one load under `node --cpu-prof`, then the profiles' paths and a summary of the load's samples. `--profile` (or `--profile=sign`) is
 * order-sign with full prefetch and distinct patients; `--profile=same` the same with one identical body (the
 * evaluation cache); `--profile=ehr` order-sign with only the Patient prefetched, the rest queried from the EHR stub;
 * `--profile=package` is `$questionnaire-package` with pre-fill.
 */
const PROFILE = process.argv.find((a) => a.startsWith('--profile='))?.slice('--profile='.length) ?? (process.argv.includes('--profile') ? 'sign' : undefined);

/**
 * What production runs: the node flags of `npm start` (package.json `scripts.start`, `node [flags] dist/main.js`; the
 * Dockerfile's CMD is the same, a test keeps them so) in the environment the Docker image sets (its final stage's
 * `ENV` lines but PORT, which the bench chooses). The bench measures that process.
 */
function productionCommand(nodeArgs: string[]): { env: Record<string, string>; args: string[] } {
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const { PORT: _port, ...env } = dockerfileEnv(root);
  return { env, args: serviceArgs(start, nodeArgs) };
}

const children: ChildProcess[] = [];

function spawnNode(args: string[], env: Record<string, string>): { proc: ChildProcess; output: () => string; spawnedAt: number; spawnedAtEpochMs: number } {
  const proc = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  const spawnedAtEpochMs = Date.now();
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += String(d)));
  proc.stderr!.on('data', (d: Buffer) => (out += String(d)));
  return { proc, output: () => out, spawnedAt: performance.now(), spawnedAtEpochMs };
}

/** A helper process written in TypeScript (baseline, EHR stub): tsx only loads it; it prints `ready`. */
async function startHelper(script: string, args: string[]): Promise<ChildProcess> {
  const h = spawnNode(['--import', 'tsx', script, ...args], {});
  await until(async () => {
    if (h.proc.exitCode !== null) throw new ChildExited(`${script} exited: ${h.output()}`);
    return h.output().includes('ready');
  }, `${script}: ${h.output()}`);
  return h.proc;
}

/** Polls `check` until it is true; a check that throws a ChildExited ends the wait at once (nothing will come). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      if (err instanceof ChildExited) throw err;
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not ready after ${timeoutMs} ms: ${what}`);
}

/** A child process the bench waits for has exited: waiting longer cannot help. */
class ChildExited extends Error {}

/**
 * Starts `node dist/main.js` on a new DATA_DIR; resolves with the milliseconds from spawn to healthy and to ready.
 * The port must be free first: otherwise whatever already listens there would answer the readiness check (and take
 * the load) while this service fails to listen and exits.
 */
async function startPriorPath(port: number, env: Record<string, string>, nodeArgs: string[] = []) {
  if (!(await portIsFree(port))) throw new Error(`port ${port} is in use: another process took it; run again, or set BENCH_PORT to the first of four free ports`);
  const dataDir = mkdtempSync(join(tmpdir(), 'priorpath-bench-data-'));
  const production = productionCommand(nodeArgs);
  const pp = spawnNode(production.args, { ...production.env, PORT: String(port), CDS_AUTH: 'open', LOG_LEVEL: 'warn', PUBLIC_BASE_URL: `http://127.0.0.1:${port}`, NODE_ENV: 'development', DATA_DIR: dataDir, ...env });
  const base = `http://127.0.0.1:${port}`;
  let healthyMs = 0;
  // Each probe is bounded: a connection that is accepted and never answered must not hold the wait forever. The
  // deadline is cleared once the status is in (http/request-deadline.ts: not AbortSignal.timeout, whose timer and
  // signal outlive the answer); the probe reads no body.
  const probe = async (path: string) => {
    const deadline = requestDeadline(2_000);
    try {
      return await fetch(`${base}${path}`, { signal: deadline.signal });
    } finally {
      deadline.clear();
    }
  };
  await until(async () => {
    if (pp.proc.exitCode !== null) throw new ChildExited(`PriorPath exited with ${pp.proc.exitCode}: ${pp.output()}`);
    if (!healthyMs && (await probe('/healthz')).ok) healthyMs = performance.now() - pp.spawnedAt;
    return (await probe('/readyz')).ok;
  }, `PriorPath on ${port}: ${pp.output()}`);
  const readyMs = performance.now() - pp.spawnedAt;
  return { ...pp, base, dataDir, healthyMs, readyMs };
}

function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The story's body as patient `b<n>-<id>` with a fresh hookInstance: every id that names the patient changes. */
function reidentify(body: string, patientId: string, hookInstance: string, n: number): string {
  return body.split(patientId).join(`b${n}-${patientId}`).replace(hookInstance, randomUUID());
}

/** What a row reports of a load run: autocannon's result, or http-load's (the package rows). */
interface LoadFigures {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}

interface Run {
  result: LoadFigures;
  rssMax: number;
}

/** Samples the resident memory of `pid` every 200 ms while `work` runs; the largest sample is the run's. */
async function sampled<T extends LoadFigures>(pid: number | undefined, work: () => Promise<T>): Promise<Run> {
  let rssMax = 0;
  const sampler = pid ? setInterval(() => (rssMax = Math.max(rssMax, rssMiB(pid))), 200) : undefined;
  try {
    return { result: await work(), rssMax };
  } finally {
    if (sampler) clearInterval(sampler);
  }
}

/**
 * Loads `url` for DURATION with `bodyAt(i)` as the i-th request's body (and `headers`), sampling the server's RSS
 * meanwhile. autocannon: the hook rows, whose JSON answers it reads cheaply.
 */
async function load(url: string, bodyAt: (i: number) => string, pid?: number, headers: Record<string, string> = {}): Promise<Run> {
  let i = 0;
  return sampled(pid, () =>
    autocannon({
      url,
      connections: CONNECTIONS,
      duration: DURATION,
      requests: [{ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, setupRequest: (req) => ({ ...req, body: bodyAt(i++) }) }],
    }),
  );
}

/**
 * The `$questionnaire-package` rows: the same load through bench/http-load.ts, which counts the response bytes and
 * drops them as a browser hands them to its decoder. autocannon turns every body into a string, which for 160 KB of
 * gzip costs it more CPU than the service spends answering (see http-load.ts): it measured itself.
 */
async function loadPackage(url: string, body: string, pid?: number, headers: Record<string, string> = {}): Promise<Run> {
  return sampled(pid, () => httpLoad({ url, headers: { 'content-type': 'application/fhir+json', ...headers }, body: () => body, connections: CONNECTIONS, durationS: DURATION }));
}

const row = (name: string, r: Run) =>
  `| ${name} | ${r.result.latency.p50} | ${r.result.latency.p99} | ${Math.round(r.result.requests.average)} | ${r.result.non2xx + r.result.errors} | ${r.rssMax ? Math.round(r.rssMax) : '–'} |`;

/**
 * Signs the DTR story's order on `sign` (so its coverage assertion exists), and returns the `$questionnaire-package`
 * Parameters for that order and its Coverage, checked to answer 200.
 */
async function signedPackageBody(sign: string, base: string): Promise<string> {
  const dtrResources = storyResources(DTR_STORY);
  const signed = await fetch(sign, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(orderSignRequest(dtrResources, storyOrder(DTR_STORY, dtrResources))) });
  const signedOrder = ((await signed.json()) as { systemActions: { resource: unknown }[] }).systemActions[0].resource;
  const packageBody = JSON.stringify({
    resourceType: 'Parameters',
    parameter: [
      { name: 'coverage', resource: dtrResources.find((r) => r.resourceType === 'Coverage') },
      { name: 'order', resource: signedOrder },
    ],
  });
  const probe = await fetch(`${base}/fhir/Questionnaire/$questionnaire-package`, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: packageBody });
  if (probe.status !== 200) throw new Error(`$questionnaire-package answered ${probe.status}: ${await probe.text()}`);
  return packageBody;
}

async function main(): Promise<void> {
  if (!existsSync(join(root, 'dist', 'main.js'))) throw new Error('dist/main.js is missing: run `npm run build` first (npm run bench does)');
  const resources: Resource[] = storyResources(STORY);
  const order: MedicationRequest = storyOrder(STORY, resources);
  const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
  const full = orderSignRequest(resources, order);
  const fullBody = JSON.stringify(full);
  const hookInstance = full.hookInstance as string;
  const distinct = (offset: number) => (i: number) => reidentify(fullBody, patientId, hookInstance, offset + i);
  // Only the Patient prefetched: the hook queries the rest from the EHR at `fhirServer`, a different patient each time.
  const querying = (fhirServer: string) => {
    const template = JSON.stringify({ ...full, fhirServer, prefetch: { patient: (full.prefetch as Record<string, unknown>).patient } });
    return (i: number) => reidentify(template, patientId, hookInstance, 1_000_000 + i);
  };

  if (PROFILE) {
    await profile(PROFILE, { fullBody, distinct, querying });
    return;
  }
  const { service, baseline, ehr, sandbox } = await ports();
  const pp = await startPriorPath(service, { SANDBOX: 'off' });
  const rssIdle = rssMiB(pp.proc.pid!);
  const sign = `${pp.base}/cds-services/priorpath-order-sign`;
  const first = await fetch(sign, { method: 'POST', headers: { 'content-type': 'application/json' }, body: distinct(9_000_000)(0) });
  const responseBytes = Buffer.from(await first.arrayBuffer());
  if (first.status !== 200) throw new Error(`PriorPath answered ${first.status}: ${String(responseBytes)}`);
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-bench-'));
  writeFileSync(join(dir, 'response.json'), responseBytes);
  const basePort = baseline;
  await startHelper('bench/baseline-server.ts', [join(dir, 'response.json'), String(basePort)]);
  const baseUrl = `http://127.0.0.1:${basePort}/cds-services/priorpath-order-sign`;
  const ehrPort = ehr;
  await startHelper('bench/ehr-stub.ts', [STORY, String(ehrPort)]);

  // Same bodies in the same order for both servers; PriorPath has never seen them (its cache cannot answer).
  const b = await load(baseUrl, distinct(0));
  const p = await load(sign, distinct(0), pp.proc.pid);
  const bSame = await load(baseUrl, () => fullBody);
  const pSame = await load(sign, () => fullBody, pp.proc.pid);
  const q = await load(sign, querying(`http://127.0.0.1:${ehrPort}`), pp.proc.pid);
  const rssAfter = rssMiB(pp.proc.pid!);
  // And once the service has been quiet for 30 s: V8 gives back the heap it grew under load only after its memory
  // reducer has seen the allocation rate drop (it starts about 8 s later and collects, releasing pages, within the
  // next 10-20 s), so this is the steady state after load.
  await new Promise((resolve) => setTimeout(resolve, 30_000));
  const rssSettled = rssMiB(pp.proc.pid!);
  pp.proc.kill('SIGTERM');

  // The sandbox process: its embedded EHR (Medplum in memory) and the payer API in its documented open mode.
  const sb = await startPriorPath(sandbox, { SANDBOX: 'on', PAYER_API_AUTH: 'open' });
  const sbSign = `${sb.base}/cds-services/priorpath-order-sign`;
  const sandboxBody = JSON.stringify({ ...full, fhirServer: `${sb.base}/sandbox/fhir`, fhirAuthorization: undefined, prefetch: { patient: (full.prefetch as Record<string, unknown>).patient } });
  const s = await load(sbSign, () => sandboxBody.replace(hookInstance, randomUUID()), sb.proc.pid);
  const packageBody = await signedPackageBody(sbSign, sb.base);
  const pkgUrl = `${sb.base}/fhir/Questionnaire/$questionnaire-package`;
  const pkg = await loadPackage(pkgUrl, packageBody, sb.proc.pid, BROWSER_ENCODINGS);
  const pkgPlain = await loadPackage(pkgUrl, packageBody, sb.proc.pid);

  const ratio = (x: number, y: number) => (x / Math.max(1, y)).toFixed(2);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    `${new Date().toISOString()} · ${cpus().length} × ${cpu} · node ${process.version} · story ${STORY} (${Math.round(fullBody.length / 1024)} KB body) · ${CONNECTIONS} connections, ${DURATION} s a run`,
    '',
    '| run | p50 ms | p99 ms | req/s | errors | RSS max MiB |',
    '|---|---:|---:|---:|---:|---:|',
    row('bare Express baseline, distinct bodies', b),
    row('order-sign, full prefetch, distinct patients', p),
    row('bare Express baseline, identical body', bSame),
    row('order-sign, full prefetch, identical body (cache)', pSame),
    row('order-sign, EHR queries to a stub (own process)', q),
    row('order-sign, EHR queries to the sandbox EHR (SANDBOX=on)', s),
    row('$questionnaire-package with pre-fill, gzip accepted (SANDBOX=on)', pkg),
    row('$questionnaire-package with pre-fill, no Accept-Encoding (SANDBOX=on)', pkgPlain),
    '',
    '| target (design.md §9) | measured |',
    '|---|---|',
    `| order-sign throughput ≥ 0.5 × baseline | ${ratio(p.result.requests.average, b.result.requests.average)} × |`,
    `| order-sign p99 ≤ 2 × baseline p99 | ${ratio(p.result.latency.p99, b.result.latency.p99)} × |`,
    `| identical body (reported apart) | ${ratio(pSame.result.requests.average, bSame.result.requests.average)} × throughput, p99 ${ratio(pSame.result.latency.p99, bSame.result.latency.p99)} × |`,
    `| EHR-query p99 ≤ 2 × full-prefetch p99 | ${q.result.latency.p99} ms = ${ratio(q.result.latency.p99, p.result.latency.p99)} × |`,
    `| \`$questionnaire-package\` p99 ≤ 20 ms | ${pkg.result.latency.p99} ms (gzip accepted), ${pkgPlain.result.latency.p99} ms (plain) |`,
    `| start to ready ≤ 2 s (new DATA_DIR, SANDBOX=off) | ${Math.round(pp.readyMs)} ms (healthy after ${Math.round(pp.healthyMs)} ms); SANDBOX=on ${Math.round(sb.readyMs)} ms |`,
    `| resident memory ≤ 200 MiB (SANDBOX=off) | idle after start ${Math.round(rssIdle)} MiB, max under load ${Math.round(Math.max(p.rssMax, pSame.rssMax, q.rssMax))} MiB, after load ${Math.round(rssAfter)} MiB, 30 s later ${Math.round(rssSettled)} MiB |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  rmSync(dir, { recursive: true, force: true });
  for (const d of [pp.dataDir, sb.dataDir]) rmSync(d, { recursive: true, force: true });
}

/** How long the profiled service may take to drain and write its profiles after SIGTERM (its own grace is 10 s). */
const PROFILE_EXIT_MS = 60_000;

/**
 * `npm run profile`: the service under `--cpu-prof` on free ports, one load as the bench's matching row runs it, then
 * SIGTERM (the drain exits through process.exit, which writes the profiles), and a summary of the samples taken
 * during the load in each profile the service's process wrote.
 */
async function profile(kind: string, bodies: { fullBody: string; distinct: (offset: number) => (i: number) => string; querying: (fhirServer: string) => (i: number) => string }): Promise<void> {
  const profileDir = join(root, 'profiles');
  const pkgProfile = kind === 'package';
  const { service: port, ehr: ehrPort } = await ports();
  const pp = await startPriorPath(port, pkgProfile ? { SANDBOX: 'on', PAYER_API_AUTH: 'open' } : { SANDBOX: 'off' }, cpuProfileFlags(profileDir));
  const exited = new Promise<number | null>((resolve) => (pp.proc.exitCode !== null ? resolve(pp.proc.exitCode) : pp.proc.once('exit', (code) => resolve(code))));
  const signUrl = `${pp.base}/cds-services/priorpath-order-sign`;
  if (kind === 'ehr') await startHelper('bench/ehr-stub.ts', [STORY, String(ehrPort)]);
  const packageBody = pkgProfile ? await signedPackageBody(signUrl, pp.base) : undefined;
  const fromUs = monotonicUs();
  const run = packageBody
    ? await loadPackage(`${pp.base}/fhir/Questionnaire/$questionnaire-package`, packageBody, pp.proc.pid, BROWSER_ENCODINGS)
    : kind === 'ehr'
      ? await load(signUrl, bodies.querying(`http://127.0.0.1:${ehrPort}`), pp.proc.pid)
      : await load(signUrl, kind === 'same' ? () => bodies.fullBody : bodies.distinct(0), pp.proc.pid);
  const toUs = monotonicUs();
  if (pp.proc.exitCode !== null) throw new ChildExited(`the profiled service exited during the load (${pp.proc.exitCode}): ${pp.output()}`);
  pp.proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, PROFILE_EXIT_MS, 'timeout')))]);
  // Cleared, or the bench would wait out the 60 s after printing.
  clearTimeout(timer);
  if (code === 'timeout') {
    pp.proc.kill('SIGKILL');
    throw new Error(`the profiled service did not exit within ${PROFILE_EXIT_MS / 1000} s of SIGTERM (no profile is written without an exit): ${pp.output()}`);
  }
  rmSync(pp.dataDir, { recursive: true, force: true });
  const name = pkgProfile ? '$questionnaire-package with pre-fill (profiled)' : kind === 'ehr' ? 'order-sign, EHR queries to a stub (profiled)' : `order-sign, full prefetch, ${kind === 'same' ? 'identical body' : 'distinct patients'} (profiled)`;
  const files = existsSync(profileDir) ? profilesOf(profileDir, pp.proc.pid!) : [];
  if (!files.length) throw new Error(`the service (pid ${pp.proc.pid}, exit ${code}) wrote no profile into ${profileDir}: ${pp.output()}`);
  process.stdout.write(
    [
      '| run | p50 ms | p99 ms | req/s | errors | RSS max MiB |',
      '|---|---:|---:|---:|---:|---:|',
      row(name, run),
      '',
      `CPU profiles (main thread first, then the embedded PostgreSQL worker), each from start-up to exit:`,
      ...files.map((f) => `  ${f}`),
      'Open them in Chrome DevTools (Performance → Load profile) or https://www.speedscope.app. The summaries count only the samples taken during the load.',
      '',
    ].join('\n'),
  );
  if (run.result.non2xx + run.result.errors > 0) process.stdout.write(`warning: ${run.result.non2xx + run.result.errors} requests of the load failed: the profile shows their path too\n`);
  for (const f of files) process.stdout.write(`\n${summariseProfile(f, 12, { fromUs, toUs })}\n`);
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  });
