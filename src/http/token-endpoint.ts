import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { ReplayCheckUnavailable } from '../auth/jwt-verifier.js';
import { OAuthError } from '../auth/token-service.js';
import type { TokenService } from '../auth/token-service.js';
import { isTransient, retryAfterHeaders } from '../errors.js';
import type { ContextRequest } from './request-context.js';

const noStore = (res: Response) => {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
};

function oauthError(res: Response, status: number, error: string, description: string): void {
  noStore(res);
  res.status(status).json({ error, error_description: description });
}

/**
 * The payer API token endpoint, mounted at `/auth/token` (SMART Backend Services §Obtaining an access token; RFC
 * 6749 §4.4, §5.1, §5.2): a form POST with `grant_type=client_credentials`, the client assertion and `scope`. Every
 * error is RFC 6749 JSON (`invalid_client` 401, the others 400); the log names the failed check, never the assertion.
 */
export function tokenEndpointRouter(tokens: TokenService): express.Router {
  const router = express.Router();
  router.post(
    '/',
    (req: Request, res: Response, next: NextFunction) => {
      if (!req.is('application/x-www-form-urlencoded')) return oauthError(res, 400, 'invalid_request', 'send the token request as application/x-www-form-urlencoded');
      next();
    },
    express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 20 }),
    (req: Request, res: Response) => {
      const log = (req as ContextRequest).log;
      const form = (req.body ?? {}) as Record<string, unknown>;
      tokens.exchange(form).then(
        ({ clientId, ...body }) => {
          log.info({ clientId, scope: body.scope }, 'payer API token issued');
          noStore(res);
          res.status(200).json(body);
        },
        (err: unknown) => {
          if (err instanceof OAuthError) {
            log.warn({ error: err.error, reason: err.reason }, 'payer API token refused');
            return oauthError(res, err.status, err.error, err.description);
          }
          // The replay record or the signing key (both in storage) out of reach: ours, and temporary.
          if (err instanceof ReplayCheckUnavailable || isTransient(err)) {
            log.error({ err: err instanceof ReplayCheckUnavailable ? err.cause : err }, 'payer API token storage unavailable');
            for (const [k, v] of Object.entries(retryAfterHeaders())) res.setHeader(k, v);
            return oauthError(res, 503, 'temporarily_unavailable', 'try again with a new client assertion');
          }
          log.error({ err }, 'token endpoint failed');
          oauthError(res, 500, 'server_error', `internal error; quote request id ${(req as ContextRequest).id}`);
        },
      );
    },
  );
  router.all('/', (req, res) => {
    res.setHeader('Allow', 'POST');
    // OPTIONS asks which methods the path takes (RFC 9110 §9.3.7): 204 with the Allow a 405 names, as on every other
    // path (design.md §4 "Errors"). No Access-Control-Allow-Origin: SMART Backend Services clients are confidential
    // and never call from a browser, so a cross-origin preflight still fails, as it should.
    if (req.method === 'OPTIONS') {
      if (req.headers['access-control-request-method']) res.setHeader('Access-Control-Allow-Methods', 'POST');
      res.status(204).end();
      return;
    }
    oauthError(res, 405, 'invalid_request', 'use POST');
  });
  // A body the form parser refuses (too large, bad encoding) is still an RFC 6749 error, not an OperationOutcome.
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const status = (err as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) return oauthError(res, status === 413 ? 413 : 400, 'invalid_request', 'malformed token request');
    next(err);
  });
  return router;
}
