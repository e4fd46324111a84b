import type { NextFunction, Request, Response } from 'express';
import { HttpError, outcome, toHttpError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * The one error middleware (design.md §2 "Platform conventions"): HttpErrors become their status and OperationOutcome;
 * anything else is a 500 `exception` naming only the request id. Stacks go to the log, never to the client.
 */
export function errorHandler(logger: Logger) {
  return (thrown: unknown, req: Request, res: Response, _next: NextFunction): void => {
    // Domain errors carry an issue code, not a status: this is where the code becomes one.
    const err = toHttpError(thrown);
    const log = (req as Request & { log?: Logger }).log ?? logger;
    const requestId = (req as Request & { id?: string }).id;
    if (res.headersSent) {
      log.error({ err }, 'error after response started');
      return;
    }
    if (err instanceof HttpError) {
      // OPTIONS asks which methods a path takes (RFC 9110 §9.3.7): the answer a 405 would give, as a success. A CORS
      // preflight (Fetch §CORS protocol) is told the same methods.
      if (err.status === 405 && req.method === 'OPTIONS' && err.headers.Allow) {
        res.setHeader('Allow', err.headers.Allow);
        if (req.headers['access-control-request-method']) res.setHeader('Access-Control-Allow-Methods', err.headers.Allow);
        res.status(204).end();
        return;
      }
      // A 503 is storage out of reach for a moment (errors.ts RETRY_AFTER_SECONDS): one warning line a request naming
      // the driver's cause (code and message), with no stack (the same one each time), so an outage's log stays readable.
      if (err.status === 503) log.warn({ status: err.status, reason: err.message, cause: causeOf(thrown) }, 'request deferred: storage unavailable');
      else if (err.status >= 500) log.error({ err }, 'request failed');
      else log.info({ status: err.status, reason: err.message }, 'request rejected');
      for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
      res.status(err.status).type('application/fhir+json').send(JSON.stringify(err.outcome));
      return;
    }
    // body-parser style errors from Express internals (e.g. a malformed URL) carry a status.
    const status = typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 500;
    if (status < 500) {
      res.status(status).type('application/fhir+json').send(JSON.stringify(outcome('error', 'invalid', (err as Error).message ?? 'Bad request')));
      return;
    }
    log.error({ err }, 'unhandled error');
    res
      .status(500)
      .type('application/fhir+json')
      .send(JSON.stringify(outcome('error', 'exception', `Internal error; quote request id ${requestId ?? 'unknown'} to support`)));
  };
}

/**
 * The status errorHandler answers `thrown` with: an HttpError's (a DomainError's, once toHttpError mapped it), a
 * client error's status an Express internal carries, else 500. The hook histogram and audit line record it.
 */
export function answeredStatus(thrown: unknown): number {
  const err = toHttpError(thrown);
  if (err instanceof HttpError) return err.status;
  const status = (err as { status?: unknown }).status;
  return typeof status === 'number' && status < 500 ? status : 500;
}

/** The code and message of what a 503 wraps (a driver's connection error), without its stack. */
function causeOf(thrown: unknown): { code?: unknown; message?: string } | undefined {
  const cause = thrown instanceof Error ? thrown.cause : undefined;
  if (!(cause instanceof Error)) return undefined;
  return { code: (cause as { code?: unknown }).code, message: cause.message };
}
