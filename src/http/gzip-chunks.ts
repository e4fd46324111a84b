import { constants, crc32, deflateRawSync } from 'node:zlib';

/**
 * A gzip stream (RFC 1952) assembled from pieces, for responses made mostly of bytes that never change (a
 * `$questionnaire-package` is about 1.2 MB, nearly all of it prebuilt Questionnaires, Libraries of base64 CQL and ELM,
 * and ValueSets). Each unchanging piece is compressed once, on first use, into a raw DEFLATE segment (RFC 1951) that
 * starts with an empty window and ends on a byte boundary (a sync flush, no final block); the pieces built per request
 * (the envelope, a pre-filled QuestionnaireResponse: a few KB) go out as stored blocks, which cost no CPU. DEFLATE
 * segments that each refer only to their own bytes may follow one another in one stream, so the response is one
 * ordinary gzip member that every HTTP client decodes. The CRC-32 of the whole is combined from the pieces' CRCs
 * (`crc32Combine`), so the unchanging megabyte is neither compressed nor checksummed again per request: serving the
 * package compressed costs less CPU than serving it plain, and sends about a tenth of the bytes.
 */
interface Segment {
  deflated: Buffer;
  crc: number;
  length: number;
  /** x^(8·length) modulo the CRC polynomial: what shifts a CRC past this piece (see crc32Combine). */
  shift: number;
}

const segments = new WeakMap<Buffer, Segment>();

function segmentOf(piece: Buffer): Segment {
  let s = segments.get(piece);
  if (!s) {
    s = {
      // A copy: zlib hands a short output back as a view of its 16 KiB output chunk, which a kept view would keep
      // whole (a package's small ValueSets would hold about 0.4 MB of zlib's chunks).
      deflated: Buffer.from(deflateRawSync(piece, { finishFlush: constants.Z_SYNC_FLUSH })),
      crc: crc32(piece),
      length: piece.length,
      shift: x2nModP(piece.length, 3),
    };
    segments.set(piece, s);
  }
  return s;
}

/** By a run's first piece: the run's pieces as one segment (their concatenation is not kept). */
const runSegments = new WeakMap<Buffer, { pieces: readonly Buffer[]; segment: Segment }>();

function runSegmentOf(pieces: readonly Buffer[]): Segment {
  let r = runSegments.get(pieces[0]);
  if (!r || r.pieces !== pieces) {
    r = { pieces, segment: segmentOf(Buffer.concat(pieces)) };
    runSegments.set(pieces[0], r);
  }
  return r.segment;
}

const POLY = 0xedb88320;

/** a(x)·b(x) modulo the CRC-32 polynomial, in the reflected bit order CRC-32 uses. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m /= 2;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo the polynomial; x^1 is 0x40000000 in reflected order. */
const X2N: number[] = [0x40000000];
for (let k = 1; k < 32; k++) X2N.push(multModP(X2N[k - 1], X2N[k - 1]));

/** x^(n·2^k) modulo the polynomial. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k & 31], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/**
 * The CRC-32 of A followed by B from the CRC-32 of A, the CRC-32 of B and B's length (what zlib's `crc32_combine`
 * computes): shifting A's CRC past B's bytes is a multiplication by x^(8·len) modulo the polynomial.
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multModP(x2nModP(lengthB, 3), crcA) ^ crcB) >>> 0;
}

const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
/** An empty stored block with BFINAL set: the end of the DEFLATE data. */
const FINAL_BLOCK = Buffer.from([1, 0, 0, 0xff, 0xff]);
const MAX_STORED = 65_535;

/** `piece` as stored (uncompressed) DEFLATE blocks, each starting on a byte boundary. */
function storedBlocks(piece: Buffer, out: Buffer[]): void {
  for (let at = 0; at < piece.length; at += MAX_STORED) {
    const part = piece.subarray(at, Math.min(piece.length, at + MAX_STORED));
    const head = Buffer.allocUnsafe(5);
    head[0] = 0; // BFINAL 0, BTYPE 00 (stored), padding to the byte boundary
    head.writeUInt16LE(part.length, 1);
    head.writeUInt16LE(~part.length & 0xffff, 3);
    out.push(head, part);
  }
}

/**
 * The gzip encoding of the concatenation of `pieces`, as pieces to write in order. `unchanging(piece)` says which
 * pieces never change (their compressed form and CRC are kept, by identity, for as long as the piece lives).
 * `runOf(piece)`, when given, names the unchanging pieces that always follow one another from `piece` on (a package
 * Bundle's prebuilt entries): where they do follow it here, they are one segment, compressed once, which compresses
 * better than its pieces apart (DEFLATE refers back across them) and is one piece to write instead of dozens.
 */
export function gzipChunks(
  pieces: Buffer[],
  unchanging: (piece: Buffer) => boolean,
  runOf?: (piece: Buffer) => readonly Buffer[] | undefined,
): Buffer[] {
  const out: Buffer[] = [GZIP_HEADER];
  let crc = 0;
  let total = 0;
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i];
    if (piece.length === 0) continue;
    const run = runOf?.(piece);
    if (run && run.length > 1 && i + run.length <= pieces.length && run.every((p, j) => pieces[i + j] === p)) {
      const s = runSegmentOf(run);
      out.push(s.deflated);
      crc = (multModP(s.shift, crc) ^ s.crc) >>> 0;
      total += s.length;
      i += run.length - 1;
      continue;
    }
    if (unchanging(piece)) {
      const s = segmentOf(piece);
      out.push(s.deflated);
      crc = (multModP(s.shift, crc) ^ s.crc) >>> 0;
    } else {
      storedBlocks(piece, out);
      crc = crc32(piece, crc);
    }
    total += piece.length;
  }
  const trailer = Buffer.allocUnsafe(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(total % 0x100000000, 4);
  out.push(FINAL_BLOCK, trailer);
  return out;
}
