import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { allows } from '../auth/scopes.js';
import type { Permission } from '../auth/scopes.js';
import { InvalidAccessToken } from '../auth/token-service.js';
import type { ApiCaller, TokenService } from '../auth/token-service.js';
import { HttpError, notFound, outcome, serviceUnavailable } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/storage.js';
import type { ContextRequest } from './request-context.js';

/**
 * One operation of the payer FHIR API and the scope it needs. `scope: null` marks a public route. Paths are Express
 * paths relative to `/fhir`, matched in table order, so specific paths come before `:id` patterns.
 */
export interface PayerApiRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  path: string;
  /**
   * `[resourceType, permission]` of SMART `system/` scopes (`['Claim', 'c']` is granted by `system/Claim.c`); `also`
   * names another scope that serves as well (the first one is what a 403 asks for).
   */
  scope: readonly [string, Permission] | null;
  also?: readonly [string, Permission];
}

const route = (method: PayerApiRoute['method'], path: string, scope: PayerApiRoute['scope'], also?: PayerApiRoute['also']): PayerApiRoute => ({
  method,
  path,
  scope,
  ...(also ? { also } : {}),
});

/**
 * Every route of the payer FHIR API with its scope (design.md §8 "Who may call"). A route not listed here is not
 * served: the gate answers 404 before any router sees the request, so a new route is unreachable until it declares
 * its scope — add one line.
 */
export const PAYER_API_ROUTES: readonly PayerApiRoute[] = [
  route('GET', '/metadata', null),
  route('GET', '/.well-known/smart-configuration', null),
  // DTR (design.md §7)
  route('POST', '/Questionnaire/$questionnaire-package', ['Questionnaire', 'r']),
  route('POST', '/$questionnaire-package', ['Questionnaire', 'r']),
  route('POST', '/Questionnaire/$next-question', ['Questionnaire', 'r']),
  route('POST', '/$next-question', ['Questionnaire', 'r']),
  route('POST', '/Questionnaire/$log-questionnaire-errors', ['Questionnaire', 'r']),
  route('GET', '/Questionnaire', ['Questionnaire', 's']),
  route('GET', '/Questionnaire/:id', ['Questionnaire', 'r']),
  route('GET', '/ValueSet/$expand', ['ValueSet', 'r']),
  route('POST', '/ValueSet/$expand', ['ValueSet', 'r']),
  route('GET', '/ValueSet', ['ValueSet', 's']),
  route('GET', '/ValueSet/:id/$expand', ['ValueSet', 'r']),
  route('POST', '/ValueSet/:id/$expand', ['ValueSet', 'r']),
  route('GET', '/ValueSet/:id', ['ValueSet', 'r']),
  route('GET', '/Library', ['Library', 's']),
  route('GET', '/Library/:id', ['Library', 'r']),
  route('POST', '/QuestionnaireResponse', ['QuestionnaireResponse', 'c']),
  route('GET', '/QuestionnaireResponse/:id/_history/:vid', ['QuestionnaireResponse', 'r']),
  route('GET', '/QuestionnaireResponse/:id', ['QuestionnaireResponse', 'r']),
  // A draft taken up again (design.md §7): only its sender finds it (design.md §8).
  route('PUT', '/QuestionnaireResponse/:id', ['QuestionnaireResponse', 'u']),
  // PAS (design.md §8)
  route('POST', '/Claim/$submit', ['Claim', 'c']),
  // $inquire returns the stored ClaimResponse; a client holding Claim read (the request it filed) may ask too.
  route('POST', '/Claim/$inquire', ['ClaimResponse', 'r'], ['Claim', 'r']),
  // The current ClaimResponse of a request: what an id-only notification's focus names.
  route('GET', '/ClaimResponse/:id', ['ClaimResponse', 'r'], ['Claim', 'r']),
  // PAS Subscriptions (R4 Subscriptions Backport)
  route('POST', '/Subscription', ['Subscription', 'c']),
  route('GET', '/Subscription', ['Subscription', 's']),
  route('GET', '/Subscription/:id/$status', ['Subscription', 'r']),
  route('GET', '/Subscription/:id/$events', ['Subscription', 'r']),
  route('GET', '/Subscription/:id', ['Subscription', 'r']),
  route('PUT', '/Subscription/:id', ['Subscription', 'u']),
  route('DELETE', '/Subscription/:id', ['Subscription', 'd']),
];

/** The operations the payer API serves, as a 404 for an unknown one names them. */
const SERVED_OPERATIONS = [...new Set(PAYER_API_ROUTES.map((r) => /\$[^/]+/.exec(r.path)?.[0]).filter((o): o is string => !!o))].join(', ');

/** Where each served operation is served (`/Claim/$submit`), as a 404 for one asked at another path names them. */
function servedAt(op: string): string[] {
  return [...new Set(PAYER_API_ROUTES.filter((r) => r.path.endsWith(`/${op}`)).map((r) => `/fhir${r.path}`))];
}

/**
 * Whether a route's `:id` took an operation name (`POST /Questionnaire/$foo` matching `/Questionnaire/:id`): a FHIR id
 * never holds `$` ([A-Za-z0-9-.]{1,64}), so the URL names an operation, and an unknown one is answered as one (404)
 * whatever path it is under, not as a read of id `$foo` (405 "use GET").
 */
function operationAsId(req: Request): boolean {
  return Object.values(req.params ?? {}).some((v) => typeof v === 'string' && v.startsWith('$'));
}

/** The authenticated payer API client of a request (undefined in open mode). */
export type PayerApiRequest = ContextRequest & { payerClient?: ApiCaller; payerApi?: { operation: string; outcome?: string } };

/**
 * The client id the payer API gate authenticated for this request; undefined in open mode (design.md §8 "Who may
 * call"). What a client files is stored with it, and only that client reads it back (storage `readableBy`).
 */
export function payerClientOf(req: Request): string | undefined {
  return (req as PayerApiRequest).payerClient?.clientId;
}

const BEARER = /^Bearer +([^\s]+) *$/i;

export interface PayerApiGateOptions {
  mode: 'required' | 'open';
  tokens: TokenService;
  storage: Storage;
  logger: Logger;
  routes?: readonly PayerApiRoute[];
}

/**
 * The payer FHIR API's door, mounted at `/fhir` before the DTR and PAS routers (SMART Backend Services; design.md §8).
 * Public routes pass; every other declared route needs a bearer access token from the token endpoint (401
 * OperationOutcome + `WWW-Authenticate` when absent or invalid) carrying its scope (403 `insufficient_scope`); a
 * declared path with another method passes to the routers' method guard (405); an undeclared path is 404. Every call leaves one access line in storage:
 * client id, operation, resource ids, status and outcome, never a body. `open` (sandbox only) skips the token checks.
 * OPTIONS is not the gate's: a CORS preflight carries no credentials, and the routers' method guard answers it 204 with
 * the path's Allow (http/method-guard.ts), where Express would otherwise answer from the gate's own route table.
 */
export function payerApiGate(opts: PayerApiGateOptions): express.RequestHandler {
  const gate = express.Router();
  const routes = opts.routes ?? PAYER_API_ROUTES;
  const realm = opts.tokens.audience;

  const refuse = (req: PayerApiRequest, status: 401 | 403, code: string, reason: string, challenge: string, diagnostics: string): HttpError => {
    req.payerApi = { ...(req.payerApi ?? { operation: '' }), outcome: code };
    req.log.warn({ status, reason }, 'payer API call refused');
    const issueCode = status === 401 ? 'login' : 'forbidden';
    return new HttpError(status, outcome('error', issueCode, diagnostics), { 'WWW-Authenticate': challenge });
  };

  const authenticate = async (req: PayerApiRequest): Promise<ApiCaller> => {
    const header = req.headers.authorization;
    if (!header) throw refuse(req, 401, 'no-token', 'no Authorization header', `Bearer realm="${realm}"`, 'Authentication required: a bearer access token from the token endpoint');
    const m = BEARER.exec(header);
    if (!m) throw refuse(req, 401, 'invalid-token', 'Authorization scheme is not Bearer', `Bearer realm="${realm}", error="invalid_request"`, 'Authentication failed');
    try {
      const caller = await opts.tokens.verifyAccessToken(m[1]);
      req.payerClient = caller;
      req.log = req.log.child({ clientId: caller.clientId });
      return caller;
    } catch (err) {
      if (err instanceof InvalidAccessToken) throw refuse(req, 401, 'invalid-token', err.reason, `Bearer realm="${realm}", error="invalid_token"`, 'Authentication failed');
      // Storage (which holds the signing key) is down: ours, not the caller's fault.
      req.log.error({ err }, 'payer API token check unavailable');
      throw serviceUnavailable('Authentication temporarily unavailable');
    }
  };

  // The access line is written when the response is done, off the request's path. Every answered call has one, the
  // 401s and 503s of a storage outage included: storage keeps what the database cannot take yet (access-backlog.ts).
  gate.use((req: Request, res: Response, next: NextFunction) => {
    const r = req as PayerApiRequest;
    r.payerApi = { operation: `${req.method} ${req.path.slice(0, 120)}` };
    res.on('finish', () => {
      const status = res.statusCode;
      const line = {
        requestId: r.id,
        at: new Date().toISOString(),
        ...(r.payerClient ? { clientId: r.payerClient.clientId } : {}),
        operation: r.payerApi?.operation ?? req.method,
        resourceIds: resourceIds(req, res),
        status,
        outcome: r.payerApi?.outcome ?? (status < 400 ? 'ok' : `http-${status}`),
      };
      opts.storage.saveApiAccess(line).catch((err: unknown) => r.log.error({ err }, 'payer API access log write failed'));
    });
    next();
  });

  const byPath = new Map<string, PayerApiRoute[]>();
  for (const rt of routes) byPath.set(rt.path, [...(byPath.get(rt.path) ?? []), rt]);
  for (const [path, list] of byPath) {
    for (const rt of list) {
      const register = gate[rt.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete' | 'patch'].bind(gate);
      register(path, (req: Request, _res: Response, next: NextFunction) => {
        if (operationAsId(req)) return next();
        const r = req as PayerApiRequest;
        r.payerApi = { operation: `${rt.method} ${rt.path}` };
        if (rt.scope === null || opts.mode === 'open') return next('router');
        const [type, permission] = rt.scope;
        authenticate(r).then(
          (caller) => {
            if (!allows(caller.scopes, type, permission) && !(rt.also && allows(caller.scopes, rt.also[0], rt.also[1]))) {
              const needed = `system/${type}.${permission}`;
              return next(refuse(r, 403, 'insufficient-scope', `scope ${needed} not granted`, `Bearer realm="${realm}", error="insufficient_scope", scope="${needed}"`, `This operation needs the scope ${needed}`));
            }
            next('router');
          },
          (err: unknown) => next(err),
        );
      });
    }
    // A declared path asked with a method it does not serve goes on to the routers, whose method guard
    // answers 405 with the Allow their route table gives (http/method-guard.ts): one list, not a second copy here.
    // Here, before a later `:id` line takes the same URL (`/Questionnaire/$questionnaire-package` vs `/Questionnaire/:id`).
    gate.all(path, (req: Request, _res: Response, next: NextFunction) => next(operationAsId(req) ? undefined : 'router'));
  }

  // Not a declared route: authenticate first (a caller without a token learns nothing), then 404. An operation this
  // API does not serve is that 404 too, whatever its resource type or method (design.md §4 "Errors").
  const undeclared = (req: Request): HttpError => {
    const op = /\/(\$[^/]*)/.exec(req.path)?.[1];
    if (!op) return notFound(`No route for ${req.method} /fhir${req.path}`);
    // A served operation asked at another path (`/Claim/$questionnaire-package`) is not served there: say where it is.
    const at = servedAt(op);
    return new HttpError(404, outcome('error', 'not-supported', at.length
      ? `Operation ${op} is not served at /fhir${req.path.slice(0, 128)}: it is served at ${at.join(', ')}`
      : `Unknown operation ${op.slice(0, 64)}: this payer API serves ${SERVED_OPERATIONS}`));
  };
  gate.use((req: Request, _res: Response, next: NextFunction) => {
    const r = req as PayerApiRequest;
    if (opts.mode === 'open') return next(undeclared(req));
    authenticate(r).then(
      () => next(undeclared(req)),
      (err: unknown) => next(err),
    );
  });
  return (req, res, next) => (req.method === 'OPTIONS' ? next() : gate(req, res, next));
}

/** Logical ids a call named or produced: path ids, the created resource's Location, the request Bundle identifier. */
function resourceIds(req: Request, res: Response): string[] {
  const ids: string[] = [];
  const m = /^\/([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/|$)/.exec(req.path);
  if (m && !m[2].startsWith('$')) ids.push(`${m[1]}/${m[2]}`);
  const location = res.getHeader('Location');
  const loc = typeof location === 'string' ? /\/fhir\/([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64})/.exec(location) : null;
  if (loc) ids.push(loc[1]);
  const body = req.body as { resourceType?: unknown; identifier?: { system?: unknown; value?: unknown } } | undefined;
  // The PAS request Bundle's identifier names the request, not the patient (PAS: Bundle.identifier is the submitter's tracking id).
  if (body?.resourceType === 'Bundle' && typeof body.identifier?.value === 'string') {
    ids.push(`Bundle?identifier=${typeof body.identifier.system === 'string' ? `${body.identifier.system}|` : ''}${body.identifier.value}`.slice(0, 300));
  }
  return ids;
}
