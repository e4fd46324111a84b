/**
 * What the error middleware writes to the log (src/http/error-handler.ts): a 503 from storage out of reach is one
 * warning line naming the cause, with no stack, so an outage's log stays readable (hundreds of turned-away requests a
 * minute); a 500 keeps its stack for the operator. Neither reaches the client.
 */
import { Writable } from 'node:stream';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { errorHandler } from '../../src/http/error-handler.js';
import { createLogger } from '../../src/logger.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';

function appThrowing(err: Error) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const app = express();
  app.get('/x', () => {
    throw err;
  });
  app.use(errorHandler(createLogger('info', sink)));
  return { app, lines };
}

describe('error log lines', () => {
  it('a 503 for storage out of reach is a warning naming the cause, without a stack', async () => {
    const { app, lines } = appThrowing(new StorageUnavailableError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })));
    const res = await request(app).get('/x');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
    expect(lines).toHaveLength(1);
    expect(lines[0].level).toBe(40);
    expect(JSON.stringify(lines[0])).not.toMatch(/\n\s+at /);
    expect(lines[0].err).toBeUndefined();
    expect(lines[0].cause).toEqual({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' });
  });

  it('a 500 keeps its stack in the log and out of the answer', async () => {
    const { app, lines } = appThrowing(new Error('boom'));
    const res = await request(app).get('/x');
    expect(res.status).toBe(500);
    expect(JSON.stringify(res.body)).not.toContain('boom');
    expect(lines).toHaveLength(1);
    expect(lines[0].level).toBe(50);
    expect(String((lines[0].err as { stack?: string }).stack)).toContain('boom');
  });
});
