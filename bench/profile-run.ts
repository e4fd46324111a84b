import { createServer } from 'node:net';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The plumbing of `npm run profile` (bench/run-bench.ts --profile) that can be checked without running a load
 * (test/build/profile-recipe.test.ts): the service's command line, the ports, which profile files are the run's,
 * and the load's window on the monotonic clock the profiles are stamped with.
 */

/** `npm start`'s command (`node [flags] dist/main.js`) split into node's arguments, `extra` node flags added. */
export function serviceArgs(start: string, extra: string[] = []): string[] {
  const words = start.trim().split(/\s+/);
  if (words[0] !== 'node' || words.at(-1) !== 'dist/main.js') throw new Error(`npm start is not "node [flags] dist/main.js": ${start}`);
  // Node's own flags go before the script: after it they would be the script's arguments, and no profile is written.
  return [...words.slice(1, -1), ...extra, 'dist/main.js'];
}

/**
 * The node flags of a profiled run: a CPU profile per thread (the main thread and the embedded PostgreSQL worker),
 * written into `dir` when the thread ends. The service's SIGTERM drain ends with process.exit, which writes them; a
 * SIGKILL would not.
 */
export function cpuProfileFlags(dir: string): string[] {
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/**
 * A TCP port free on this host now, chosen by the operating system. The profile takes its ports so, not a fixed
 * one: a service already on a fixed port (another checkout's, another bench's) answers the readiness check while the
 * profiled one fails to listen, and the load and the profile then belong to different processes.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** The four ports `npm run bench` uses: the service, the bare baseline server, the EHR stub, the sandbox service. */
export interface BenchPorts {
  service: number;
  baseline: number;
  ehr: number;
  sandbox: number;
}

/**
 * The bench's ports: four consecutive ones from BENCH_PORT when it is set (the operator chose them), else four distinct
 * ports free now, chosen by the operating system as `npm run profile` takes its own: a fixed default (it was 4400)
 * collided with whatever else was on it, e.g. another checkout's bench or service.
 */
export async function benchPorts(benchPort: string | undefined): Promise<BenchPorts> {
  if (benchPort !== undefined && benchPort !== '') {
    const first = Number(benchPort);
    if (!Number.isInteger(first) || first < 1 || first > 65532) throw new Error(`BENCH_PORT must be a port number (1-65532), got ${JSON.stringify(benchPort)}`);
    return { service: first, baseline: first + 1, ehr: first + 2, sandbox: first + 3 };
  }
  const taken = new Set<number>();
  while (taken.size < 4) taken.add(await freePort());
  const [service, baseline, ehr, sandbox] = [...taken];
  return { service, baseline, ehr, sandbox };
}

/** Whether nothing listens on `port` (any address): the service listens on all of them. */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, () => probe.close(() => resolve(true)));
  });
}

/**
 * The profiles process `pid` wrote into `dir`, main thread first (node names them
 * `CPU.<date>.<time>.<pid>.<thread id>.<sequence>.cpuprofile`; the main thread is thread 0). Chosen by pid, not by
 * time: an earlier run's files, or another process's, are never summarised as this run's.
 */
export function profilesOf(dir: string, pid: number): string[] {
  return readdirSync(dir)
    .map((f) => ({ f, m: /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.(\d+)\.cpuprofile$/.exec(f) }))
    .filter((x) => x.m && Number(x.m[1]) === pid)
    .sort((a, b) => Number(a.m![2]) - Number(b.m![2]) || Number(a.m![3]) - Number(b.m![3]))
    .map((x) => join(dir, x.f));
}

/**
 * Now on the clock a V8 CPU profile's `startTime` and samples are stamped with, in microseconds: V8's TimeTicks
 * and Node's hrtime both read CLOCK_MONOTONIC, which is the same for every process of the host. So the bench can
 * mark the load's start and end and the summary can count only the samples between them (start-up and the drain
 * are not the load).
 */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
