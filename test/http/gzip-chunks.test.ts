import { randomBytes } from 'node:crypto';
import { crc32, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32Combine, gzipChunks } from '../../src/http/gzip-chunks.js';

describe('crc32Combine', () => {
  it('gives the CRC-32 of the concatenation for lengths from 0 to a megabyte', () => {
    for (const [la, lb] of [[0, 0], [1, 0], [0, 1], [3, 5], [1000, 1], [65_536, 70_001], [10, 1_048_577]]) {
      const a = randomBytes(la);
      const b = randomBytes(lb);
      expect(crc32Combine(crc32(a), crc32(b), lb)).toBe(crc32(Buffer.concat([a, b])));
    }
  });
});

describe('gzipChunks', () => {
  const json = (n: number) => Buffer.from(JSON.stringify({ resourceType: 'Library', id: `lib-${n}`, content: [{ data: randomBytes(20_000).toString('base64') }] }));

  it('decodes to exactly the pieces, unchanging ones compressed and the rest stored (over 64 KB included)', () => {
    const lib = json(1);
    const lib2 = json(2);
    const bigDynamic = Buffer.from('x'.repeat(150_000));
    const pieces = [Buffer.from('{"resourceType":"Parameters","parameter":['), lib, Buffer.from(','), lib2, Buffer.alloc(0), bigDynamic, Buffer.from(']}')];
    const unchanging = new Set<Buffer>([lib, lib2]);
    const out = gzipChunks(pieces, (p) => unchanging.has(p));
    expect(gunzipSync(Buffer.concat(out)).equals(Buffer.concat(pieces))).toBe(true);
    // The base64 compresses, the stored 150 KB does not: the stream is smaller than the input but holds the stored run.
    const size = out.reduce((n, c) => n + c.length, 0);
    expect(size).toBeLessThan(Buffer.concat(pieces).length);
    expect(size).toBeGreaterThan(bigDynamic.length);
  });

  it('reuses an unchanging piece in later responses with different neighbours', () => {
    const lib = json(3);
    const first = gzipChunks([Buffer.from('['), lib, Buffer.from(']')], (p) => p === lib);
    const second = gzipChunks([Buffer.from('[1,'), lib, Buffer.from(',2]')], (p) => p === lib);
    expect(String(gunzipSync(Buffer.concat(second)))).toBe(`[1,${String(lib)},2]`);
    expect(String(gunzipSync(Buffer.concat(first)))).toBe(`[${String(lib)}]`);
  });

  it('writes a run of unchanging pieces as one segment where the run follows, and piece by piece where it is cut', () => {
    const a = json(4);
    const glue = Buffer.from(',');
    const b = json(5);
    const run: Buffer[] = [a, glue, b];
    const unchanging = (p: Buffer) => run.includes(p);
    const runOf = (p: Buffer) => (p === a ? run : undefined);
    const whole = [Buffer.from('['), a, glue, b, Buffer.from(']')];
    const out = gzipChunks(whole, unchanging, runOf);
    expect(gunzipSync(Buffer.concat(out)).equals(Buffer.concat(whole))).toBe(true);
    // Header, the run's one segment, the stored '[' and ']' (head + bytes each), final block, trailer.
    expect(out).toHaveLength(1 + 2 + 1 + 2 + 2);
    // Only part of the run follows its first piece: each piece is encoded on its own, the bytes are still the same.
    const cut = [Buffer.from('['), a, glue, Buffer.from('"x"]')];
    expect(gunzipSync(Buffer.concat(gzipChunks(cut, unchanging, runOf))).equals(Buffer.concat(cut))).toBe(true);
  });

  it('encodes an empty body as a valid empty stream', () => {
    expect(gunzipSync(Buffer.concat(gzipChunks([], () => false))).length).toBe(0);
  });
});
