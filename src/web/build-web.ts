import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's `web/` directory (sources, HTML, CSS and the vendored LHC-Forms build). */
export const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');

/** Browser entry points, bundled one file each: URL path (under the web router) → source file in `web/`. */
export const WEB_ENTRIES: Record<string, string> = {
  '/dtr/launch.js': 'dtr/launch.ts',
  '/dtr/app.js': 'dtr/app.ts',
  '/demo/demo.js': 'demo/demo.ts',
  '/review/workbench.js': 'review/workbench.ts',
};

/** One built file: its URL path, bytes and content type. */
export interface WebAsset {
  path: string;
  contents: Uint8Array;
  contentType: string;
}

export interface BuildWebOptions {
  /** Minify (default true: the DTR bundle carries fhirclient). */
  minify?: boolean;
  /** Write the files under this directory instead of returning them only (scripts/build-web.ts). */
  outdir?: string;
}

/**
 * Bundles the browser code of the DTR SMART app and the demo EHR page with esbuild: TypeScript in, one ES2020 module
 * per entry with its source map out. Everything the pages need (fhirclient, our code) is in the bundle, so the
 * browser loads nothing from outside this server. esbuild is imported lazily: a server with the sandbox off never
 * loads it.
 */
export async function buildWebAssets(opts: BuildWebOptions = {}): Promise<WebAsset[]> {
  const esbuild = await import('esbuild');
  const outdir = opts.outdir ?? join(WEB_DIR, '.build');
  const entryPoints = Object.entries(WEB_ENTRIES).map(([path, src]) => ({
    in: join(WEB_DIR, src),
    out: path.slice(1).replace(/\.js$/, ''),
  }));
  const result = await esbuild.build({
    entryPoints,
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    minify: opts.minify ?? true,
    sourcemap: 'linked',
    write: opts.outdir !== undefined,
    logLevel: 'silent',
    legalComments: 'linked',
    define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
    tsconfig: join(WEB_DIR, 'tsconfig.json'),
  });
  if (result.errors.length > 0) throw new Error(`web build failed: ${result.errors.map((e) => e.text).join('; ')}`);
  if (opts.outdir !== undefined) return [];
  return (result.outputFiles ?? []).map((f) => {
    const path = `/${relative(outdir, f.path).split('\\').join('/')}`;
    return { path, contents: f.contents, contentType: contentTypeOf(path) };
  });
}

/**
 * Reads bundles written ahead by `npm run build` (`dist/public/`), so a production image serves the web apps without
 * a bundler. Returns undefined when the directory holds no complete build.
 */
export function readBuiltWebAssets(dir: string): WebAsset[] | undefined {
  const assets: WebAsset[] = [];
  for (const path of Object.keys(WEB_ENTRIES)) {
    for (const p of [path, `${path}.map`]) {
      const file = join(dir, p);
      if (!existsSync(file)) return undefined;
      assets.push({ path: p, contents: readFileSync(file), contentType: contentTypeOf(p) });
    }
  }
  return assets;
}

function contentTypeOf(path: string): string {
  if (path.endsWith('.js')) return 'text/javascript; charset=utf-8';
  if (path.endsWith('.map')) return 'application/json; charset=utf-8';
  return 'text/plain; charset=utf-8';
}
