import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataDirError, ensureDataDir } from '../../src/storage/data-dir.js';

describe('DATA_DIR creation (storage/data-dir.ts)', () => {
  it('creates a directory and its missing parents', () => {
    const base = mkdtempSync(join(tmpdir(), 'priorpath-data-dir-'));
    const dir = ensureDataDir(join(base, 'a', 'b', 'c'));
    expect(statSync(dir).isDirectory()).toBe(true);
    // Again: nothing to do.
    expect(ensureDataDir(dir)).toBe(dir);
  });

  it('refuses a path under /proc, naming DATA_DIR, instead of looping in a recursive mkdir', () => {
    expect(() => ensureDataDir('/proc/priorpath-no-such/data')).toThrow(DataDirError);
    expect(() => ensureDataDir('/proc/priorpath-no-such/data')).toThrow(/^DATA_DIR: cannot create \/proc\/priorpath-no-such\/data \(ENOENT/);
  });

  it('refuses a path whose parent is a file', () => {
    const base = mkdtempSync(join(tmpdir(), 'priorpath-data-dir-'));
    writeFileSync(join(base, 'file'), 'x');
    expect(() => ensureDataDir(join(base, 'file'))).toThrow(/^DATA_DIR: .*file is not a directory/);
    expect(() => ensureDataDir(join(base, 'file', 'data'))).toThrow(/^DATA_DIR: .*file is not a directory/);
  });

  it.skipIf(process.getuid?.() === 0)('refuses a directory it cannot write in', () => {
    const base = mkdtempSync(join(tmpdir(), 'priorpath-data-dir-'));
    chmodSync(base, 0o500);
    try {
      expect(() => ensureDataDir(join(base, 'data'))).toThrow(/^DATA_DIR: cannot create .*EACCES/);
      expect(() => ensureDataDir(base)).toThrow(/^DATA_DIR: cannot write in .*EACCES/);
    } finally {
      chmodSync(base, 0o700);
    }
  });
});
