import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Express, NextFunction, Request, Response } from 'express';

/** A middleware of the hook route, as Express runs it. */
type Step = (req: Request, res: Response, next: NextFunction) => void;

/**
 * The hook route (`POST /cds-services/{id}`) as the Express app defines it: its middleware in order (in-flight count,
 * request id and log, CORS, client JWT, body reader) and its handler, and the app's error middleware. The direct path
 * runs these same functions, so every behaviour is the Express route's.
 */
export interface HookRoute {
  app: Express;
  /** The mount path, `/cds-services`. */
  baseUrl: string;
  /** The ids a hook may be POSTed to (discovery's services). */
  ids: ReadonlySet<string>;
  steps: Step[];
  handler: (req: Request, res: Response) => Promise<void>;
  onError: (err: unknown, req: Request, res: Response, next: NextFunction) => void;
}

/**
 * What Express's `app.handle` does to a request before routing it (express 5 lib/application.js): its request and
 * response methods (`res.status`, `res.send`...) come from the app's prototypes. The direct path does it only for an
 * error, whose answer the app's error middleware writes with those methods: swapping the prototypes of Node's request
 * and response costs every request about 5 % of its CPU (measured, README "Performance").
 */
function asExpress(app: Express, req: IncomingMessage, res: ServerResponse): void {
  const r = req as unknown as Request;
  const s = res as unknown as Response;
  r.res = s;
  s.req = r;
  Object.setPrototypeOf(req, app.request);
  Object.setPrototypeOf(res, app.response);
  if (!s.locals) s.locals = Object.create(null) as Response['locals'];
}

/**
 * The HTTP server's request listener: a hook call, `POST {baseUrl}/{id}` with a known id spelled exactly so (no query,
 * no trailing slash), runs the hook route's middleware and handler directly, without Express's router, which with the
 * prototype swap cost a hook about 15-20 % of its main-thread CPU (README "Performance"). Everything else, and any
 * spelling Express would also route there (other case, percent-encoding, a query), goes to the Express app. The
 * request carries what the route's functions read of Express's request: `baseUrl`, `path` and `params`.
 */
export function hookFirstListener(route: HookRoute): RequestListener {
  const prefix = `${route.baseUrl}/`;
  return (req, res) => {
    const url = req.url ?? '';
    const id = req.method === 'POST' && url.startsWith(prefix) ? url.slice(prefix.length) : undefined;
    if (id === undefined || !route.ids.has(id)) {
      route.app(req, res);
      return;
    }
    const r = req as unknown as Request & { path: string; baseUrl: string; params: Record<string, string> };
    Object.assign(r, { baseUrl: route.baseUrl, path: `/${id}`, params: { id } });
    const s = res as unknown as Response;
    const fail = (err: unknown) => {
      asExpress(route.app, req, res);
      try {
        route.onError(err, r, s, () => {});
      } catch {
        // Where Express would hand an error middleware's own throw to its final handler (a bare 500), not the process.
        if (!res.headersSent) {
          res.statusCode = 500;
          res.end();
        } else res.destroy();
      }
    };
    let i = 0;
    // Express's `next`: an argument is an error, which skips to the error middleware; a step that throws is one too.
    const next = (err?: unknown) => {
      if (err !== undefined) return fail(err);
      const step = route.steps[i++];
      if (!step) {
        route.handler(r, s).catch(fail);
        return;
      }
      try {
        step(r, s, next as NextFunction);
      } catch (thrown) {
        fail(thrown);
      }
    };
    next();
  };
}
