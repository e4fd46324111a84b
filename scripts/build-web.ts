/**
 * `npm run build:web` — bundles the DTR SMART app and the demo EHR page into `dist/public/` (`npm run build` does
 * the same; the server run from `dist/` serves them from there, run from source it builds them in memory).
 *
 * `npm run build:web -- --vendor-lforms <version>` — refreshes the vendored LHC-Forms build in
 * `web/vendor/lforms-<version>/` from the npm package (fetched with `npm pack`; see web/vendor/README.md).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildWebAssets, WEB_DIR } from '../src/web/build-web.js';

async function vendorLforms(version: string): Promise<void> {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`not a version: ${version}`);
  const tmp = mkdtempSync(join(tmpdir(), 'lforms-'));
  try {
    execFileSync('npm', ['pack', `lforms@${version}`, '--silent'], { cwd: tmp, stdio: ['ignore', 'pipe', 'inherit'] });
    execFileSync('tar', ['xzf', `lforms-${version}.tgz`], { cwd: tmp });
    const src = join(tmp, 'package', 'dist', 'lforms');
    const dest = join(WEB_DIR, 'vendor', `lforms-${version}`);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(join(dest, 'assets', 'lib'), { recursive: true });
    for (const f of ['lhc-forms.js', 'styles.css', 'down_arrow_gray_10_10.png', 'magnifying_glass.png'])
      cpSync(join(src, 'webcomponent', f), join(dest, f));
    cpSync(join(src, 'webcomponent', 'assets', 'lib', 'zone.min.js'), join(dest, 'assets', 'lib', 'zone.min.js'));
    cpSync(join(src, 'fhir', 'R4', 'lformsFHIR.min.js'), join(dest, 'lformsFHIR.min.js'));
    cpSync(join(src, 'LICENSE.md'), join(dest, 'LICENSE.md'));
    process.stdout.write(`LHC-Forms ${version} copied to ${dest}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const i = args.indexOf('--vendor-lforms');
  if (i >= 0) {
    await vendorLforms(args[i + 1] ?? '');
    return;
  }
  const outdir = join(WEB_DIR, '..', 'dist', 'public');
  const started = performance.now();
  await buildWebAssets({ outdir });
  process.stdout.write(`web bundles written to ${outdir} in ${Math.round(performance.now() - started)} ms\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`build-web: ${(err as Error).message}\n`);
  process.exit(1);
});
