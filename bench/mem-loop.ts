import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { orderSignRequest } from '../test/helpers/hook-requests.js';
import { dockerfileEnv } from '../test/helpers/dockerfile.js';
import { storyOrder, storyResources } from '../test/helpers/stories.js';
import { serviceArgs } from './profile-run.js';

/**
 * A smaller loop than `npm run bench` for resident memory (README "Memory"): starts a BUILT checkout's service as the
 * bench does (`npm start`'s node flags, the image's environment, SANDBOX=off, a new DATA_DIR), loads it with the
 * bench's three SANDBOX=off rows (distinct patients, one identical body, EHR queries to bench/ehr-stub.ts), samples
 * VmRSS every 100 ms, and prints each row's peak and throughput and, at each row's peak, the memory map by kind.
 * Usage: tsx bench/mem-loop.ts [checkout dir, default this one] [port, default 4400]. MEM_SECONDS (default 10) per
 * row; MEM_SETTLE=1 adds the 30 s after; MEM_NODE_FLAGS adds node flags; MEM_ENV (JSON) adds environment; MEM_OUT
 * names a file for the service's stdout (e.g. with MEM_NODE_FLAGS=--trace-gc).
 */
const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(process.argv[2] ?? here);
const port = Number(process.argv[3] ?? 4400);
const SECONDS = Number(process.env.MEM_SECONDS ?? 10);
const STORY = 'centene-mrd-positive';

const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGTERM')));

function status(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]) / 1024, hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1]) / 1024 };
}

/** The resident memory map by kind, MiB: the node binary, other files, [heap], anonymous by size and permission. */
function smapsByKind(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let kind = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const size = (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1048576;
      const [perm, path] = [head[3], head[4]];
      if (path.endsWith('/node')) kind = 'node binary';
      else if (path.startsWith('/')) kind = 'other files';
      else if (path) kind = path;
      else if (size >= 1024) kind = 'anon >=1 GiB (wasm memory)';
      else if (perm.includes('x')) kind = 'anon rwx (code)';
      else if (size >= 60 && size <= 64) kind = 'anon 64 MiB (malloc arena / V8 reservation)';
      else if (size >= 100) kind = 'anon >=100 MiB (V8 reservations)';
      else kind = size < 1 ? 'anon rw <1 MiB' : `anon rw ${size.toFixed(1)} MiB @${head[1].slice(-9, -5)}`;
      continue;
    }
    const rss = /^Rss:\s+(\d+)/.exec(line);
    if (rss) out[kind] = (out[kind] ?? 0) + Number(rss[1]) / 1024;
  }
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v >= 0.5).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

async function until(check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('not ready');
}

async function main(): Promise<void> {
  const start = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const { PORT: _p, ...imageEnv } = dockerfileEnv(dir);
  const flags = (process.env.MEM_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const dataDir = mkdtempSync(join(tmpdir(), 'mem-loop-'));
  const env = { ...process.env, ...imageEnv, PORT: String(port), CDS_AUTH: 'open', LOG_LEVEL: 'warn', PUBLIC_BASE_URL: `http://127.0.0.1:${port}`, NODE_ENV: 'development', DATA_DIR: dataDir, SANDBOX: 'off', ...(JSON.parse(process.env.MEM_ENV ?? '{}') as Record<string, string>) };
  const pp = spawn(process.execPath, serviceArgs(start, flags), { cwd: dir, env, stdio: ['ignore', process.env.MEM_OUT ? openSync(process.env.MEM_OUT, 'w') : 'ignore', 'inherit'] });
  children.push(pp);
  const ehr = spawn(process.execPath, ['--import', 'tsx', 'bench/ehr-stub.ts', STORY, String(port + 1)], { cwd: here, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(ehr);
  const base = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${base}/readyz`)).ok);
  await until(async () => (await fetch(`http://127.0.0.1:${port + 1}/Patient/x`)).status > 0);
  const pid = pp.pid!;
  console.log(`service pid ${pid}`);
  await new Promise((r) => setTimeout(r, 1000));
  const idle = status(pid);
  console.log(`idle ${idle.rss.toFixed(1)} MiB`, JSON.stringify(smapsByKind(pid)));

  const resources = storyResources(STORY);
  const full = orderSignRequest(resources, storyOrder(STORY, resources));
  const fullBody = JSON.stringify(full);
  const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
  const hookInstance = full.hookInstance as string;
  const reid = (body: string, n: number) => body.split(patientId).join(`b${n}-${patientId}`).replace(hookInstance, randomUUID());
  const querying = JSON.stringify({ ...full, fhirServer: `http://127.0.0.1:${port + 1}`, prefetch: { patient: (full.prefetch as Record<string, unknown>).patient } });
  const sign = `${base}/cds-services/priorpath-order-sign`;
  let n = 0;
  const rows: [string, () => string][] = [
    ['distinct', () => reid(fullBody, n++)],
    ['same', () => fullBody],
    ['ehr', () => reid(querying, 1_000_000 + n++)],
  ];
  const cpu0 = cpuMs(pid);
  let total = 0;
  for (const [name, bodyAt] of rows) {
    let peak = 0;
    let peakMap: Record<string, number> = {};
    let lastMap = 0;
    const sampler = setInterval(() => {
      const { rss } = status(pid);
      if (rss > peak) {
        peak = rss;
        // The map at (nearly) the peak: read at most every 500 ms, it costs a few ms.
        if (Date.now() - lastMap > 500) {
          peakMap = smapsByKind(pid);
          lastMap = Date.now();
        }
      }
    }, 100);
    const r = await autocannon({ url: sign, connections: 32, duration: SECONDS, requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: bodyAt() }) }] });
    clearInterval(sampler);
    total += r.requests.total;
    console.log(`${name}: peak ${peak.toFixed(1)} MiB, ${Math.round(r.requests.average)} req/s, p99 ${r.latency.p99} ms, non2xx ${r.non2xx + r.errors}`, JSON.stringify(peakMap));
  }
  const cpu = cpuMs(pid) - cpu0;
  const end = status(pid);
  console.log(`end ${end.rss.toFixed(1)} MiB, HWM ${end.hwm.toFixed(1)} MiB, process CPU ${(cpu / total).toFixed(2)} ms a hook over ${total}`);
  if (process.env.MEM_SETTLE) {
    await new Promise((r) => setTimeout(r, 30_000));
    console.log(`30 s after ${status(pid).rss.toFixed(1)} MiB`, JSON.stringify(smapsByKind(pid)));
  }
  pp.kill('SIGTERM');
  await new Promise((r) => pp.once('exit', r));
  ehr.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}

/** User + system CPU of the whole process, ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
