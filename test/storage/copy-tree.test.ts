import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyTree } from '../../src/storage/copy-tree.js';

/** How a new DATA_DIR is made from the embedded store's template (pglite-worker.ts): a faithful copy, fewer bytes. */
const root = mkdtempSync(join(tmpdir(), 'priorpath-copy-tree-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function files(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) files(join(dir, e.name), out);
    else out.push(join(dir, e.name));
  }
  return out;
}

describe('copyTree', () => {
  it('copies every file byte for byte with its mode, and leaves the all-zero stretches of a large file unwritten', () => {
    const from = join(root, 'template');
    mkdirSync(join(from, 'base', '5'), { recursive: true });
    mkdirSync(join(from, 'pg_wal'));
    chmodSync(from, 0o700);
    writeFileSync(join(from, 'PG_VERSION'), '18\n');
    writeFileSync(join(from, 'base', '5', '1259'), Buffer.alloc(24_576, 7));
    chmodSync(join(from, 'base', '5', '1259'), 0o600);
    // A WAL segment as a clean shutdown leaves it: records at the start, a page in the middle, zeros to the end (and
    // a length that is not a whole number of copy chunks).
    const wal = Buffer.alloc(4 * 1024 * 1024 + 1000);
    wal.fill(0x5a, 0, 300_000);
    wal.fill(0x33, 2_000_000, 2_008_192);
    writeFileSync(join(from, 'pg_wal', '000000010000000000000001'), wal);

    const to = join(root, 'copy');
    copyTree(from, to);

    const names = (dir: string) => files(dir).map((f) => relative(dir, f)).sort();
    expect(names(to)).toEqual(names(from));
    for (const name of names(from)) {
      expect(readFileSync(join(to, name)).equals(readFileSync(join(from, name)))).toBe(true);
      expect(statSync(join(to, name)).mode).toBe(statSync(join(from, name)).mode);
    }
    expect(statSync(to).mode & 0o777).toBe(0o700);
    const copied = statSync(join(to, 'pg_wal', '000000010000000000000001'));
    expect(copied.size).toBe(wal.length);
    // Allocated blocks: about the 300 KB and 8 KB written, far from the 4 MB the file reads as.
    expect(copied.blocks * 512).toBeLessThan(1024 * 1024);
  });
});
