import type { NextFunction, Request, Response } from 'express';
import { jsonBody } from '../http/json-body.js';
import type { Logger } from '../logger.js';

/**
 * Reads the JSON body with the service's limits (1 MiB unless `limit` says otherwise, 64 levels) unless the app's
 * middleware already did.
 */
export function ensureJsonBody(limit?: number) {
  const read = jsonBody(limit);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.body !== undefined) return next();
    read(req, res, next);
  };
}

/** Wraps an async handler so a rejection reaches the error middleware (Express 5 does too; this keeps types simple). */
export const handler =
  (fn: (req: Request, res: Response) => Promise<void>) =>
  (req: Request, res: Response, next: NextFunction): void => {
    fn(req, res).catch(next);
  };

/** The request's child logger (request-context middleware) or the router's. */
export function logOf(req: Request, fallback: Logger): Logger {
  return (req as Request & { log?: Logger }).log ?? fallback;
}

/** Sends a FHIR resource as application/fhir+json. */
export function sendFhir(res: Response, status: number, resource: unknown): void {
  res.status(status).type('application/fhir+json').send(JSON.stringify(resource));
}
