/**
 * jsonBody(limit, true) keeps the SHA-256 of a hook body's bytes for the evaluation cache; only a body that parsed and
 * passed every check is hashed: an empty, malformed, non-object or too-deep body is refused without the hash.
 */
import type * as Crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { NextFunction, Request, Response } from 'express';
import { beforeEach, describe, expect, it, vi } from 'vitest';

const hashes = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof Crypto>();
  return {
    ...actual,
    createHash: (...args: Parameters<typeof actual.createHash>) => {
      hashes.count++;
      return actual.createHash(...args);
    },
  };
});

const { bodyDigestOf, jsonBody, MAX_BODY_BYTES } = await import('../../src/http/json-body.js');

/** Runs the middleware on a body and resolves with what it passed to next() and the request. */
function run(body: string): Promise<{ err: unknown; req: Request }> {
  const req = Object.assign(new EventEmitter(), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
  }) as unknown as Request;
  return new Promise((resolve) => {
    const next: NextFunction = (err?: unknown) => resolve({ err, req });
    jsonBody(MAX_BODY_BYTES, true)(req, {} as Response, next);
    (req as unknown as EventEmitter).emit('data', Buffer.from(body));
    (req as unknown as EventEmitter).emit('end');
  });
}

describe('jsonBody digest', () => {
  beforeEach(() => {
    hashes.count = 0;
  });

  it.each([
    ['an empty body', ''],
    ['a blank body', '   \n'],
    ['malformed JSON', '{"hook": '],
    ['null', 'null'],
    ['an array', '[1, 2]'],
    ['JSON deeper than 64 levels', `${'['.repeat(70)}${']'.repeat(70)}`],
    ['a control character', '{"hook": "order-sign\\u0000"}'],
  ])('refuses %s without hashing it', async (_label, body) => {
    const { err } = await run(body);
    expect((err as { status?: number }).status).toBe(400);
    expect(hashes.count).toBe(0);
  });

  it('hashes a body that parsed, once, and keeps the digest for the handler', async () => {
    const { err, req } = await run('{"hook": "order-sign"}');
    expect(err).toBeUndefined();
    expect(hashes.count).toBe(1);
    expect(bodyDigestOf(req.body)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });
});
