import type { NextFunction, Request, Response } from 'express';

/**
 * CORS for browser CDS clients such as the CDS Hooks Sandbox (CDS Hooks §Cross-Origin Resource Sharing): preflights
 * on every CDS route, Authorization and Content-Type allowed, no credentials.
 * An OPTIONS request goes on to the method guard (http/method-guard.ts), which answers it 204 with the path's `Allow`
 * from the route table; the error middleware gives a preflight the same list as `Access-Control-Allow-Methods`
 * (Fetch §CORS-preflight fetch), so the methods a browser may use are exactly those the path serves, not a second list.
 * @see https://cds-hooks.hl7.org/2.0/#cross-origin-resource-sharing
 */
export function cors(origins: string[] | '*') {
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.headers.origin;
    if (origins === '*') res.setHeader('Access-Control-Allow-Origin', '*');
    else if (origin && origins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
    // A browser shows a cross-origin script only the CORS-safelisted response headers and these: the 401/403's
    // WWW-Authenticate (which scope a payer API call lacks) and the 503's Retry-After (design.md §4: when to come back)
    // are what a browser client acts on, so they are readable too.
    res.setHeader('Access-Control-Expose-Headers', 'Location, Content-Location, X-Request-Id, WWW-Authenticate, Retry-After');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Headers', req.headers['access-control-request-headers'] ?? 'Authorization, Content-Type, Accept');
      res.setHeader('Access-Control-Max-Age', '600');
    }
    next();
  };
}
