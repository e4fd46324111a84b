import { spawn } from 'node:child_process';
import inspector from 'node:inspector';

/**
 * glibc's malloc settings the service is measured with (README "Memory"): two arenas instead of eight per core, and
 * blocks of 256 KiB and more on pages of their own. The Docker image sets them as ENV (a test keeps the two the same).
 * glibc reads them once, before Node's first line runs, so a process cannot give them to itself.
 */
export const MALLOC_ENV: Readonly<Record<'MALLOC_ARENA_MAX' | 'MALLOC_MMAP_THRESHOLD_', string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '262144',
};

/** Whether node's flags (its own, or NODE_OPTIONS) make it wait for a debugger before running the script. */
export function waitsForDebugger(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].some((f) => /^--inspect-(brk|wait)(=|$)/.test(f));
}

/**
 * Whether this process is `npm start` on Linux with glibc and neither malloc setting in its environment, so the service
 * should run as a child that has them. Only under `npm start` (npm_lifecycle_event): its script must run in every
 * operating system's shell, so it cannot set them, and npm already stands between the user and the service. `node
 * dist/main.js` run directly, the image (which sets them) and every test run the service in this process, as given. An
 * operator who sets either variable chose the malloc settings: they are left as they are.
 */
export function mallocRelaunchWanted(env: NodeJS.ProcessEnv, platform: NodeJS.Platform, glibc: () => boolean, execArgv: readonly string[] = []): boolean {
  if (env.npm_lifecycle_event !== 'start' || platform !== 'linux') return false;
  if (env.MALLOC_ARENA_MAX !== undefined || env.MALLOC_MMAP_THRESHOLD_ !== undefined) return false;
  // A debugger this process waited for (--inspect-brk, --inspect-wait) is attached here already: the service runs in
  // this process, under it, rather than in a child the debugger is not attached to.
  if (waitsForDebugger(execArgv, env.NODE_OPTIONS)) return false;
  // Last: building the report that says which C library this is takes about 20 ms.
  return glibc();
}

/** Whether this Node runs on glibc (musl's malloc has no arenas and reads neither variable). */
export function onGlibc(): boolean {
  // excludeNetwork (Node >= 20.13, not in @types/node 20.19's ProcessReport): the report skips resolving sockets.
  (process.report as { excludeNetwork?: boolean }).excludeNetwork = true;
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  return typeof report.header?.glibcVersionRuntime === 'string';
}

/**
 * Runs this same command (node, its flags, the script) as a child with MALLOC_ENV added, and mirrors it: SIGTERM,
 * SIGINT and SIGHUP are passed on (the service's drain ignores a second one, so a terminal's Ctrl-C reaching both is
 * harmless), and this process ends as the child did, with its exit code or its signal. This process loads nothing
 * else. If it is killed outright (SIGKILL), the service runs on, as it does today when npm is killed.
 */
export function relaunchWithMallocEnv(): void {
  // The child gets node's flags and NODE_OPTIONS as given, --inspect among them: it runs the service, so it is the
  // process to debug. This one opened the inspector's port first; it closes it, so that the child's inspector can
  // listen there (both on one port: "address already in use" in the child, and a debugger attached to a launcher).
  if (inspector.url() !== undefined) inspector.close();
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: { ...process.env, ...MALLOC_ENV },
    stdio: 'inherit',
  });
  const pass = (signal: NodeJS.Signals) => () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, pass(signal));
  child.on('error', (err) => {
    process.stderr.write(`priorpath: could not start the service with its malloc settings: ${err.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
}
