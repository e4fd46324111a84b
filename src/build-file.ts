import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * One entry of a file `npm run build` wrote into `dist/` for the service's start-up (scripts/build.ts: the FHIRPath
 * parse trees, the content's YAML as JSON): `{ stamp, <field>: {...} }`. The entry is used only when the file was
 * made by the library version named by `stamp`; otherwise, or when the file is missing or unreadable, undefined, and
 * the service does the work itself at start-up (only slower).
 */
export function readBuildFile<T>(distDir: string, name: string, stamp: string, field: string): Record<string, T> | undefined {
  const path = join(distDir, name);
  if (!existsSync(path)) return undefined;
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    const entries = file[field];
    if (file.stamp !== stamp || !entries || typeof entries !== 'object') return undefined;
    return entries as Record<string, T>;
  } catch {
    return undefined;
  }
}
