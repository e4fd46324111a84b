import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StorageError } from './storage.js';

/** DATA_DIR cannot be created or written: its message names the variable and the reason (design.md §3). */
export class DataDirError extends StorageError {
  constructor(reason: string) {
    super(`DATA_DIR: ${reason}`);
    this.name = 'DataDirError';
  }
}

/**
 * Creates `dataDir` (and its missing parents) and checks this process may write in it. One directory at a time, not
 * `mkdirSync(dir, { recursive: true })`: Node's recursive mkdir loops forever on a path under /proc (each level answers
 * ENOENT), which hung start-up with `DATA_DIR=/proc/...` instead of refusing it. Returns the absolute path.
 */
export function ensureDataDir(dataDir: string): string {
  const dir = resolve(dataDir);
  const missing: string[] = [];
  for (let p = dir; ; p = dirname(p)) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOTDIR: a parent is a file, which the walk up reports.
      if (code === 'ENOTDIR') continue;
      if (code !== 'ENOENT') throw new DataDirError(`cannot read ${p} (${code ?? (err as Error).message})`);
      missing.unshift(p);
      if (dirname(p) === p) break;
      continue;
    }
    if (!isDir) throw new DataDirError(`${p} is not a directory`);
    break;
  }
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another process may have made it meanwhile.
      if (code === 'EEXIST' && statSync(p, { throwIfNoEntry: false })?.isDirectory()) continue;
      throw new DataDirError(`cannot create ${dir} (${code ?? (err as Error).message} at ${p})`);
    }
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new DataDirError(`cannot write in ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return dir;
}
