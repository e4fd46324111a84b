import { randomBytes } from 'node:crypto';
import type { RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import type { Request, Response, NextFunction, Router } from 'express';
import { createJwtVerifier } from './auth/jwt-verifier.js';
import { validatePayerClients } from './auth/payer-clients.js';
import { createTokenService } from './auth/token-service.js';
import type { Config } from './config.js';
import type { Content } from './content.js';
import { notFound, serviceUnavailable, toHttpError } from './errors.js';
import type { HttpError } from './errors.js';
import { handleHook, hashPatientId } from './hooks/hook-handler.js';
import type { FetchLike } from './hooks/ehr-client.js';
import { parseFeedback } from './hooks/feedback.js';
import { cdsAuth } from './http/cds-auth.js';
import { cors } from './http/cors.js';
import { hookFirstListener } from './http/direct-hook.js';
import type { HookRoute } from './http/direct-hook.js';
import { answeredStatus, errorHandler } from './http/error-handler.js';
import type { InFlight } from './http/in-flight.js';
import { MAX_BODY_BYTES, jsonBody } from './http/json-body.js';
import { answerOtherMethods } from './http/method-guard.js';
import { createMetrics } from './http/metrics.js';
import { requestContext } from './http/request-context.js';
import type { ContextRequest } from './http/request-context.js';
import { policyPageHandler } from './http/policy-page.js';
import { createFhirRouter } from './fhir-api/fhir-router.js';
import { PAYER_API_SCOPES } from './fhir-api/smart-configuration.js';
import { payerApiGate } from './http/payer-api-auth.js';
import { tokenEndpointRouter } from './http/token-endpoint.js';
import { sandboxPayerTokenRouter } from './sandbox-auth/payer-token-route.js';
import { createPasRouter } from './pas/pas-router.js';
import { SubscriptionNotifier } from './pas/subscription-notifier.js';
import type { NotifyFetch } from './pas/subscription-notifier.js';
import { parseEndpointAllowList } from './http/notification-endpoints.js';
import type { EndpointPolicy, HostResolver } from './http/notification-endpoints.js';
import { createSubscriptionRouter } from './pas/subscription-router.js';
import { createReviewRouter } from './pas/review-router.js';
import type { Logger } from './logger.js';
import type { Storage } from './storage/storage.js';
import { refusesWrites } from './storage/write-refusal.js';
import type { SandboxAuth } from './sandbox-auth/sandbox-auth.js';
import { createWebRouter } from './web/index.js';
import { createReviewPageRouter } from './web/review-page.js';
import { EvaluationCache } from './policies/evaluation-cache.js';

export interface AppDeps {
  config: Config;
  content: Content;
  storage: Storage;
  logger: Logger;
  /** The sandbox EHR (embedded, or FHIR_SANDBOX_URL behind sandbox-fhir-proxy.ts), mounted at /sandbox/fhir when config.sandbox is on. */
  sandboxFhir?: Router;
  /** Sandbox SMART authorization and the sandbox's own CDS client (demo page), mounted when config.sandbox is on. */
  sandboxAuth?: SandboxAuth;
  /** Outbound fetch for EHR queries (tests inject a fake; production uses global fetch). */
  fetchImpl?: FetchLike;
  today?: () => string;
  /** Prebuilt web bundles (`dist/public`, written by `npm run build`); unset bundles them in memory with esbuild. */
  webAssetsDir?: string;
  /** True once SIGTERM started the drain: /readyz answers 503 (serve.ts's ConnectionDrain closes the connections). */
  isDraining?: () => boolean;
  /** Counts the requests not yet answered, for the drain to wait on before storage closes (serve.ts). */
  inFlight?: InFlight;
  /** Outbound POST for PAS subscription notifications (tests may inject one; default global fetch). */
  notifyFetch?: NotifyFetch;
  /** Host name resolution for notification endpoints (tests inject one; default the system resolver). */
  resolveHost?: HostResolver;
  /** Takes work start-up can leave until the service is ready (serve.ts; see FhirRouterDeps.defer). Unset: done at once. */
  defer?: (work: () => void) => void;
}

/** A hook request: its client's issuer once its JWT passed, and whether its answer was counted and audited yet. */
type HookRequest = ContextRequest & { clientIss?: string; hookObserved?: boolean };

/** /readyz's "not ready": its 503, Retry-After and OperationOutcome, answered here (not thrown: no error log line). */
const notReady = (res: Response, err: HttpError): void => {
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.status(err.status).type('application/fhir+json').send(JSON.stringify(err.outcome));
};

const asyncHandler =
  (fn: (req: Request, res: Response) => Promise<void>) =>
  (req: Request, res: Response, next: NextFunction): void => {
    fn(req, res).catch(next);
  };

/**
 * Builds the Express app without listening (design.md §2 "Platform conventions": tests drive it with supertest). Only
 * this edge writes HTTP; handlers return values.
 */
export function createApp(deps: AppDeps): express.Express {
  const { config, content, storage, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const metrics = createMetrics();
  const trusted = [...config.trustedClients];
  // The demo page signs its hooks with the sandbox EHR's own key, so they pass the same verification as any EHR.
  if (config.sandbox && deps.sandboxAuth) trusted.push({ iss: deps.sandboxAuth.cdsClient.iss, jwks: deps.sandboxAuth.cdsClient.jwks });
  // The jti record lives in storage: replicas sharing PostgreSQL refuse a token replayed against any of them.
  const verifier = createJwtVerifier({
    trustedClients: trusted,
    fetchTimeoutMs: config.ehrTimeoutMs,
    recordJti: (r, nowMs) => storage.recordJti(r, nowMs),
    allowReplay: config.cdsJtiReplay === 'allow',
  });
  const servicesById = new Map(content.services.map((s) => [s.id, s]));
  const evaluations = new EvaluationCache();
  const discovery = JSON.stringify({ services: content.services });

  // The first two middleware of every request, the hook route's included (hookFirstListener runs the same ones).
  const context = requestContext(logger);
  if (deps.inFlight) app.use(deps.inFlight.track);
  app.use(context);
  // While draining, every answer closes its connection (http/connection-drain.ts, which serve.ts wraps the server in)
  // so that keep-alive clients reconnect to another replica.

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get(
    '/readyz',
    asyncHandler(async (_req, res) => {
      if (deps.isDraining?.()) {
        notReady(res, serviceUnavailable('shutting down', 'information'));
        return;
      }
      try {
        await storage.ping();
        res.json({ status: 'ready', policies: content.policies.length, services: content.services.length });
      } catch (err) {
        // Still opening (deferred-storage.ts) or unreachable: the same answer, with the same Retry-After as every 503.
        // A database that answers but refuses writes (a full disk, a standby) leaves every write of this replica a
        // 503: it is not ready either, until a write succeeds (SqlStorage.ping). Liveness (/healthz) stays 200:
        // restarting frees no disk.
        notReady(res, serviceUnavailable(refusesWrites(err) ? 'storage refuses writes (disk full, disk failing or read-only)' : 'storage unreachable'));
      }
    }),
  );
  app.get(
    '/metrics',
    asyncHandler(async (_req, res) => {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    }),
  );
  app.get('/policies/:id', policyPageHandler(content));

  const cds = express.Router();
  const cdsCors = cors(config.corsOrigins);
  cds.use(cdsCors);
  cds.get('/', (_req, res) => {
    res.type('application/json').send(discovery);
  });

  // aud is the URL called (design.md §4). A feedback call may also carry the service's own URL: CDS Hooks 2.0 defines
  // aud as "the CDS Service endpoint, as specified in the discovery endpoint" and signs feedback calls the same way.
  const auth = cdsAuth({
    mode: config.cdsAuth,
    verifier,
    audienceFor: (req) => {
      const called = `${config.publicBaseUrl}${req.baseUrl}${req.path}`.replace(/\/+$/, '');
      return called.endsWith('/feedback') ? [called, called.slice(0, -'/feedback'.length)] : called;
    },
  });
  // An unknown service is a 404 whatever the method, before authentication and before the method guard's 405.
  cds.param('id', (_req: Request, _res: Response, next: NextFunction, id: unknown) => {
    if (!servicesById.has(String(id))) return next(notFound(`Unknown CDS service ${String(id)}`));
    next();
  });

  const hookBody = jsonBody(MAX_BODY_BYTES, true);
  /**
   * One hook answer's histogram sample and audit line (design.md §4 "Contract strings": `outcome` is the policy outcome
   * or `http-<status>` as answered). Ids and hashes only: a call refused before its body was read has none.
   */
  const observeHook = (r: HookRequest, serviceId: string, seconds: number, line: { status: number; outcome: string; patientIdHash: string; hookInstance: string }): Promise<void> => {
    r.hookObserved = true;
    metrics.hookLatency.observe({ service: serviceId, outcome: line.outcome.split('+')[0] }, seconds);
    return storage
      .saveAudit({ requestId: r.id, at: new Date().toISOString(), service: serviceId, clientIss: r.clientIss, latencyMs: Math.round(seconds * 10000) / 10, ...line })
      .catch((e: unknown) => r.log.error({ err: e }, 'audit write failed'));
  };
  /**
   * A hook call refused before its handler ran (its JWT, its media type, its size, its JSON): counted and audited with
   * the status it is answered, like every hook answer, then answered by the error middleware.
   */
  const hookRefused = (err: unknown, req: Request, _res: Response, next: NextFunction): void => {
    const r = req as HookRequest;
    const service = servicesById.get(String(req.params.id));
    if (service && !r.hookObserved) {
      const status = answeredStatus(err);
      const seconds = r.receivedAt === undefined ? 0 : (performance.now() - r.receivedAt) / 1000;
      void observeHook(r, service.id, seconds, { status, outcome: `http-${status}`, patientIdHash: '', hookInstance: '' });
    }
    next(err);
  };
  const hookHandler = async (req: Request, res: Response): Promise<void> => {
    const r = req as HookRequest;
    const service = servicesById.get(String(req.params.id))!;
    const started = performance.now();
    let status = 200;
    let outcome = 'error';
    let patientHash = '';
    let hookInstance = '';
    try {
      const result = await handleHook(
        service,
        takeBody(req),
        {
          content,
          storage,
          publicBaseUrl: config.publicBaseUrl,
          // The DTR SMART app is one of the sandbox's web apps (mounted below only when the sandbox is on; serve.ts loads
          // them whenever it is): in production there is no launch page, so no DTR launch card links to one (F9).
          ...(config.sandbox ? { dtrLaunchUrl: `${config.publicBaseUrl}/dtr/launch.html` } : {}),
          ehrTimeoutMs: config.ehrTimeoutMs,
          // One deadline for all of the call's EHR reads, from its arrival (README EHR_BUDGET_MS; design.md §4, §9).
          ehrBudgetMs: config.ehrBudgetMs,
          receivedAt: r.receivedAt ?? started,
          defaultPayer: config.defaultPayer,
          allowUnauthenticatedEhr: config.sandbox,
          fetchImpl: deps.fetchImpl,
          today: deps.today,
          cache: evaluations,
        },
        r.log,
      );
      outcome = result.outcome;
      patientHash = hashPatientId(result.patientId);
      hookInstance = result.hookInstance;
      sendJson(res, result.response);
    } catch (err) {
      // The status the client is answered (a payer problem is a DomainError: 400 or 412, not 500), so the histogram
      // and the audit line say what happened (design.md §2 Ops).
      status = answeredStatus(err);
      outcome = `http-${status}`;
      throw toHttpError(err);
    } finally {
      await observeHook(r, service.id, (performance.now() - started) / 1000, { status, outcome, patientIdHash: patientHash, hookInstance });
    }
  };
  cds.post('/:id', auth, hookBody, asyncHandler(hookHandler), hookRefused);
  cds.post(
    '/:id/feedback',
    auth,
    jsonBody(),
    asyncHandler(async (req, res) => {
      const records = parseFeedback(req.body, String(req.params.id));
      let stored = 0;
      for (const f of records) if (await storage.saveFeedback(f)) stored++;
      (req as ContextRequest).log.info({ received: records.length, stored }, 'feedback');
      res.status(200).json({});
    }),
  );
  app.use('/cds-services', cds);

  // The payer FHIR API (DTR, PAS) behind SMART Backend Services (design.md §8). The sandbox EHR is a registered
  // client, so the demo page and the DTR app get tokens through it like any EHR would.
  const payerClients = [...config.payerApiClients];
  if (config.sandbox && deps.sandboxAuth) {
    const sandboxClient = deps.sandboxAuth.payerClient;
    payerClients.push(...validatePayerClients([{ clientId: sandboxClient.clientId, jwks: sandboxClient.jwks, scopes: PAYER_API_SCOPES }], 'sandbox EHR client'));
  }
  const tokens = createTokenService({ clients: payerClients, publicBaseUrl: config.publicBaseUrl, storage, fetchTimeoutMs: config.ehrTimeoutMs });
  app.use('/auth/token', tokenEndpointRouter(tokens));
  // Browsers (the DTR SMART app) call the payer API cross-origin.
  app.use('/fhir', cors(config.corsOrigins), payerApiGate({ mode: config.payerApiAuth, tokens, storage, logger }));
  app.use('/fhir', createFhirRouter({ content, storage, publicBaseUrl: config.publicBaseUrl, logger, defaultPayer: config.defaultPayer, today: deps.today, tokenEndpoint: tokens.tokenEndpoint, attachmentBodyBytes: config.attachmentBodyMaxBytes, defer: deps.defer }));
  // PAS Subscriptions: the notifier delivers from the durable outbox; serve.ts kicks it at start-up to resume.
  const fhirBase = `${config.publicBaseUrl}/fhir`;
  const endpoints: EndpointPolicy = {
    httpsOnly: config.nodeEnv === 'production',
    allow: parseEndpointAllowList(config.subscriptionEndpointsAllow),
    ...(deps.resolveHost ? { resolve: deps.resolveHost } : {}),
  };
  const notifier = new SubscriptionNotifier({ storage, logger, fhirBase, endpoints, ...(deps.notifyFetch ? { fetchImpl: deps.notifyFetch } : {}) });
  app.locals.subscriptionNotifier = notifier;
  app.use('/fhir', createSubscriptionRouter({ storage, logger, notifier, fhirBase, endpoints }));
  app.use('/fhir', createPasRouter({ content, storage, logger, today: deps.today, defaultPayer: config.defaultPayer, pasVersion: config.pasVersion, notifier, attachmentBodyBytes: config.attachmentBodyMaxBytes }));
  // The sandbox offers a demo reviewer: with no REVIEW_TOKEN configured it makes one up for this process only.
  const demoReviewToken = config.sandbox && !config.reviewToken ? randomBytes(32).toString('base64url') : undefined;
  app.use(
    '/review',
    createReviewPageRouter({
      logger,
      prebuiltDir: deps.webAssetsDir,
      ...(demoReviewToken ? { demoReviewer: { token: demoReviewToken, name: 'Dana Reyes, MD (demo reviewer)' } } : {}),
    }),
  );
  app.use('/review', createReviewRouter({ storage, logger, reviewToken: config.reviewToken ?? demoReviewToken, notifier, content }));

  if (config.sandbox && deps.sandboxFhir) app.use('/sandbox/fhir', deps.sandboxFhir);
  if (config.sandbox && deps.sandboxAuth) {
    app.use('/sandbox/auth', deps.sandboxAuth.router);
    app.use('/sandbox/payer-token', sandboxPayerTokenRouter(tokens, deps.sandboxAuth.payerClient));
    // The demo EHR page at / and the DTR SMART app at /dtr.
    app.use(createWebRouter({ publicBaseUrl: config.publicBaseUrl, fhirServer: config.fhirSandboxUrl, sandboxAuth: deps.sandboxAuth, logger, prebuiltDir: deps.webAssetsDir }));
  }

  // Every path above answers the methods it does not serve with 405 and Allow, never a 404 (design.md §4 "Errors").
  answerOtherMethods(app.router);
  app.use((req, _res, next) => next(notFound(`No route for ${req.method} ${req.path}`)));
  const onError = errorHandler(logger);
  app.use(onError);
  // The hook route as hookFirstListener runs it: the middleware a POST to /cds-services/{id} passes through above (the
  // app's, the CDS router's, the route's), in the same order, then the same handler and error middleware.
  const hookRoute: HookRoute = {
    app,
    baseUrl: '/cds-services',
    ids: new Set(servicesById.keys()),
    steps: [...(deps.inFlight ? [deps.inFlight.track] : []), context, cdsCors, auth, hookBody],
    handler: hookHandler,
    onError: (err, req, res, next) => hookRefused(err, req, res, (e?: unknown) => onError(e, req, res, next)),
  };
  app.locals.hookRoute = hookRoute;
  return app;
}

/**
 * The parsed body, taken from the request: a hook's body goes to the hook alone. The request object outlives the
 * hook's wait for storage, and a body it still held would be promoted with it (see handleHook); nothing after the
 * hook handler reads `req.body`.
 */
function takeBody(req: Request): unknown {
  const body: unknown = req.body;
  req.body = undefined;
  return body;
}

/**
 * The HTTP server's request listener for an app createApp built: hook calls take the direct path
 * (http/direct-hook.ts), every other request the Express app. serve.ts serves with it; tests may use either.
 */
export function requestListener(app: express.Express): RequestListener {
  return hookFirstListener(app.locals.hookRoute as HookRoute);
}

/**
 * A JSON answer as Express's `res.json` writes one to a POST (`Content-Type: application/json; charset=utf-8`, the
 * length, the bytes), with Node's own response methods, so that the direct path's response (not given Express's
 * prototypes) can use it too.
 */
function sendJson(res: ServerResponse, value: unknown): void {
  const body = JSON.stringify(value);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
