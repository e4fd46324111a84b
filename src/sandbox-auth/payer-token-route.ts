import express from 'express';
import type { Request, Response } from 'express';
import { JWT_BEARER, OAuthError } from '../auth/token-service.js';
import type { TokenService } from '../auth/token-service.js';
import { ReplayCheckUnavailable } from '../auth/jwt-verifier.js';
import { isTransient, retryAfterHeaders } from '../errors.js';
import { PAYER_API_SCOPES } from '../fhir-api/smart-configuration.js';
import type { ContextRequest } from '../http/request-context.js';
import type { SandboxPayerClient } from './sandbox-auth.js';

/**
 * `POST /sandbox/payer-token` (sandbox only; design.md §8): the sandbox EHR's back end performs the SMART Backend
 * Services handshake with its own key and hands the demo page and the DTR app only the short-lived access token,
 * so the browser never holds a private key. It goes through the same token service as any client.
 */
export function sandboxPayerTokenRouter(tokens: TokenService, client: SandboxPayerClient): express.Router {
  const router = express.Router();
  router.post('/', (req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-store');
    const exchange = async () =>
      tokens.exchange({
        grant_type: 'client_credentials',
        client_assertion_type: JWT_BEARER,
        client_assertion: await client.signAssertion(tokens.tokenEndpoint),
        scope: PAYER_API_SCOPES.join(' '),
      });
    exchange().then(
      ({ access_token, token_type, expires_in, scope }) => {
        res.json({ access_token, token_type, expires_in, scope });
      },
      (err: unknown) => {
        (req as ContextRequest).log.error({ reason: err instanceof OAuthError ? err.reason : (err as Error).message }, 'sandbox payer token failed');
        // Storage out of reach is temporary (503, Retry-After); a refusal of the sandbox's own client is not.
        if (err instanceof ReplayCheckUnavailable || isTransient(err)) {
          for (const [k, v] of Object.entries(retryAfterHeaders())) res.setHeader(k, v);
          res.status(503).json({ error: 'temporarily_unavailable', error_description: 'the sandbox could not obtain a payer API token' });
          return;
        }
        res.status(500).json({ error: 'server_error', error_description: 'the sandbox could not obtain a payer API token' });
      },
    );
  });
  return router;
}
