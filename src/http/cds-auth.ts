import type { NextFunction, Request, Response } from 'express';
import { AuthError, ReplayCheckUnavailable } from '../auth/jwt-verifier.js';
import type { JwtVerifier } from '../auth/jwt-verifier.js';
import { serviceUnavailable, unauthorized } from '../errors.js';
import type { ContextRequest } from './request-context.js';

/**
 * CDS client authentication for hook and feedback calls (CDS Hooks 2.0 §Trusting CDS Clients; design.md §4). Every
 * failure is the same 401; the log says which check failed. `open` skips verification (sandbox only; config refuses
 * it in production).
 */
export function cdsAuth(opts: { mode: 'required' | 'open'; verifier: JwtVerifier; audienceFor: (req: Request) => string | string[] }) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const r = req as ContextRequest & { clientIss?: string };
    if (opts.mode === 'open') return next();
    opts.verifier.verify(req.headers.authorization, opts.audienceFor(req)).then(
      (client) => {
        r.clientIss = client.iss;
        r.log = r.log.child({ iss: client.iss });
        next();
      },
      (err: unknown) => {
        if (err instanceof ReplayCheckUnavailable) {
          // Fail closed, but say it is ours: the client may retry with a fresh token.
          r.log.error({ err: err.cause }, 'jti replay record unavailable');
          return next(serviceUnavailable('Authentication temporarily unavailable; retry with a new token'));
        }
        r.log.warn({ reason: err instanceof AuthError ? err.reason : (err as Error).message }, 'CDS client JWT rejected');
        next(unauthorized());
      },
    );
  };
}
