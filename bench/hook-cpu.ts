import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { dockerfileEnv } from '../test/helpers/dockerfile.js';
import { orderSignRequest } from '../test/helpers/hook-requests.js';
import { storyOrder, storyResources } from '../test/helpers/stories.js';
import { benchPorts } from './profile-run.js';

/**
 * CPU a hook, for comparing two builds on a busy machine (README "Performance"): `npx tsx bench/hook-cpu.ts <dirA>
 * <dirB> [requests] [connections] [rounds]`, each dir a checkout whose `dist/` is built (`npm run build`). Both run as
 * the bench runs the service (`npm start`'s flags, the image's environment, SANDBOX=off, CDS_AUTH=open, a new
 * DATA_DIR) and are loaded AT THE SAME TIME with the same number of distinct-patient order-signs, so the host's other
 * load weighs on both alike; each round prints the CPU of each process's main thread, its embedded PostgreSQL worker thread and all its threads, from
 * /proc, per hook. Throughput on a shared host moves by more than most changes; this ratio moved by about 2 % between
 * two copies of one build.
 */
const [dirA, dirB, requests = '2000', connections = '16', rounds = '3'] = process.argv.slice(2);
if (!dirA || !dirB) throw new Error('usage: tsx bench/hook-cpu.ts <dirA> <dirB> [requests] [connections] [rounds]');
const N = Number(requests);
const STORY = 'centene-mrd-positive';
const resources = storyResources(STORY);
const full = orderSignRequest(resources, storyOrder(STORY, resources));
const fullBody = JSON.stringify(full);
const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
let n = 0;
/** The story as a new patient with a new hookInstance (as run-bench.ts `reidentify`). */
const distinct = () => fullBody.split(patientId).join(`c${n++}-${patientId}`).replace(full.hookInstance as string, randomUUID());

interface Server {
  proc: ChildProcess;
  base: string;
  dataDir: string;
}

function start(dir: string, port: number): Server {
  const root = resolve(dir);
  const startScript = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const flags = startScript.trim().split(/\s+/).slice(1, -1);
  const { PORT: _port, ...env } = dockerfileEnv(root);
  const dataDir = mkdtempSync(join(tmpdir(), 'priorpath-hook-cpu-'));
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [...flags, 'dist/main.js'], {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(port), CDS_AUTH: 'open', LOG_LEVEL: 'warn', PUBLIC_BASE_URL: base, NODE_ENV: 'development', DATA_DIR: dataDir, SANDBOX: 'off' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { proc, base, dataDir };
}

/** utime + stime, in clock ticks (1/100 s), of a /proc stat file. */
function ticks(path: string): number {
  const fields = readFileSync(path, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Each thread's CPU ticks by thread id. */
function threads(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(tid, ticks(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const cpu = (pid: number) => ({ main: ticks(`/proc/${pid}/task/${pid}/stat`), all: ticks(`/proc/${pid}/stat`), threads: threads(pid) });

/**
 * The embedded PostgreSQL worker's ticks in a round: the busiest thread other than the main one (the worker thread
 * runs every statement; V8's and libuv's helpers each spend far less; all are named `node`).
 */
function workerTicks(pid: number, before: Map<string, number>, after: Map<string, number>): number {
  let most = 0;
  for (const [tid, t] of after) if (tid !== String(pid)) most = Math.max(most, t - (before.get(tid) ?? 0));
  return most;
}

async function ready(base: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${base} not ready`);
}

const load = (base: string, amount: number) =>
  autocannon({
    url: `${base}/cds-services/priorpath-order-sign`,
    connections: Number(connections),
    amount,
    requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: distinct() }) }],
  });

// Ports the operating system says are free (as `npm run profile`), so two comparisons, or a comparison beside a
// bench, can run at once on one host.
const servers: Server[] = [];

async function main(): Promise<void> {
  const { service, baseline } = await benchPorts(undefined);
  servers.push(start(dirA, service), start(dirB, baseline));
  await Promise.all(servers.map((s) => ready(s.base)));
  await Promise.all(servers.map((s) => load(s.base, 1000)));
  for (let round = 0; round < Number(rounds); round++) {
    const before = servers.map((s) => cpu(s.proc.pid!));
    const results = await Promise.all(servers.map((s) => load(s.base, N)));
    // What a hook queues behind its answer is written within the next moments.
    await new Promise((r) => setTimeout(r, 200));
    const after = servers.map((s) => cpu(s.proc.pid!));
    // Ticks are 10 ms: × 10,000 / N is µs a hook.
    const us = servers.map((s, i) => ({
      main: ((after[i].main - before[i].main) * 10_000) / N,
      worker: (workerTicks(s.proc.pid!, before[i].threads, after[i].threads) * 10_000) / N,
      all: ((after[i].all - before[i].all) * 10_000) / N,
    }));
    const failed = results.map((r) => r.non2xx + r.errors);
    const show = (u: (typeof us)[number]) => `main ${u.main.toFixed(0)} µs, worker ${u.worker.toFixed(0)} µs, all ${u.all.toFixed(0)} µs`;
    const ratio = (k: 'main' | 'worker' | 'all') => (us[1][k] / us[0][k]).toFixed(3);
    process.stdout.write(
      `round ${round}: A ${show(us[0])}, p99 ${results[0].latency.p99} ms | B ${show(us[1])}, p99 ${results[1].latency.p99} ms | B/A main ${ratio('main')}, worker ${ratio('worker')}, main+worker ${((us[1].main + us[1].worker) / (us[0].main + us[0].worker)).toFixed(3)}, all ${ratio('all')}${failed.some((f) => f > 0) ? ` | failed ${failed.join(', ')}` : ''}\n`,
    );
  }
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`hook-cpu failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const s of servers) s.proc.kill('SIGTERM');
    setTimeout(() => {
      for (const s of servers) rmSync(s.dataDir, { recursive: true, force: true });
    }, 1500);
  });
