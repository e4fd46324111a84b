import { readFileSync } from 'node:fs';

/** The parts of a V8 `.cpuprofile` (Chrome DevTools Protocol `Profiler.Profile`) this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
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
 * busy machine) is reported apart from busy time.
 */
export function summariseProfile(path: string, top = 12): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
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
  return [`busy ${ms(busy).trim()}, idle ${ms(idle).trim()} (${path})`, ' by place:', ...list(places), ' by function (self time):', ...list(functions)].join('\n');
}
