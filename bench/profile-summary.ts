import { readFileSync } from 'node:fs';

/** The parts of a V8 `.cpuprofile` (Chrome DevTools Protocol `Profiler.Profile`) this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of a profile's clock (microseconds, CLOCK_MONOTONIC: bench/profile-run.ts monotonicUs), both ends included. */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

/** Where a frame's code lives: a package, a PriorPath file, Node's own modules, or V8 (GC, idle, native). */
function placeOf(url: string, functionName: string): string {
  if (!url) return `(${functionName.replace(/[()]/g, '') || 'native'})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return 'node internals';
  if (url.startsWith('wasm://')) return 'WebAssembly (PGlite)';
  const own = /\/(?:dist|src)\/(.+)$/.exec(url);
  return own ? own[1] : url;
}

/**
 * A text summary of a CPU profile: busy time by place (package or file) and the functions with the most self time,
 * so `npm run profile` says where the time goes without opening DevTools. Idle (waiting for work or for a core on a
 * busy machine) is reported apart from busy time. With `window`, only the samples taken within it count (the load,
 * not the start-up before it or the drain after it); the first line says how much of the profile that was.
 */
export function summariseProfile(path: string, top = 12, window?: ProfileWindow): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // A sample's time is the profile's start plus the deltas up to and including its own; its weight is its delta.
  let at = p.startTime;
  let counted = 0;
  p.samples.forEach((id, i) => {
    const delta = p.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) return;
    counted++;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const places = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const place = placeOf(url, functionName);
    places.set(place, (places.get(place) ?? 0) + us);
    const fn = `${functionName || '(anonymous)'} ${place}${url ? `:${lineNumber + 1}` : ''}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const ms = (us: number) => `${Math.round(us / 1000)} ms`.padStart(8);
  const pct = (us: number) => `${((100 * us) / Math.max(1, busy)).toFixed(1)} %`.padStart(7);
  const list = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `  ${ms(us)} ${pct(us)}  ${k}`);
  const s = (us: number) => `${(us / 1e6).toFixed(1)} s`;
  const span = window
    ? `the load's ${s(window.toUs - window.fromUs)} of the profile's ${s(p.endTime - p.startTime)}, ${counted} of ${p.samples.length} samples`
    : `the whole profile, ${s(p.endTime - p.startTime)}`;
  return [`busy ${ms(busy).trim()}, idle ${ms(idle).trim()} in ${span} (${path})`, ' by place:', ...list(places), ' by function (self time):', ...list(functions)].join('\n');
}
