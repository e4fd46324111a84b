import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../logger.js';

/** A request with its id and child logger (design.md §2 "Platform conventions": one child logger per request). */
export type ContextRequest = Request & {
  id: string;
  log: Logger;
  /** When the request's headers had been read and its handling began (`performance.now()`): a hook's EHR budget counts from it. */
  receivedAt?: number;
};

/** Assigns a request id (honouring a sane X-Request-Id) and a child logger; logs one line per finished request. */
export function requestContext(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    const r = req as ContextRequest;
    r.receivedAt = performance.now();
    r.id = id;
    r.log = logger.child({ requestId: id });
    res.setHeader('X-Request-Id', id);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      r.log.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
    });
    next();
  };
}
