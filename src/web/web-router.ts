import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { SandboxAuth } from '../sandbox-auth/sandbox-auth.js';
import { describeStories, loadSandboxBundles } from '../sandbox/sandbox-bundles.js';
import type { SandboxStory } from '../sandbox/sandbox-bundles.js';
import { buildWebAssets, readBuiltWebAssets, WEB_DIR } from './build-web.js';
import type { WebAsset } from './build-web.js';

/** The vendored LHC-Forms build (web/vendor/README.md says where it comes from). */
export const LFORMS_DIR = 'lforms-40.1.3';

export interface WebRouterDeps {
  publicBaseUrl: string;
  sandboxAuth: SandboxAuth;
  /** Where the sandbox stories live (default `<repo>/sandbox`). */
  storiesDir?: string;
  logger?: { error: (obj: object, msg: string) => void };
  /**
   * FHIR_SANDBOX_URL when it is set: the `fhirServer` the demo EHR names in its hooks (the service queries the external
   * server directly; the browser reads it through `/sandbox/fhir`). Unset: `{publicBaseUrl}/sandbox/fhir`.
   */
  fhirServer?: string;
  /** Serve the bundles `npm run build` wrote here (`dist/public`) instead of bundling in memory (needs esbuild). */
  prebuiltDir?: string;
}

/**
 * Pages are served with a policy that lets them load only from this server (no CDN at run time): scripts and
 * styles from 'self' (LHC-Forms' Angular adds inline styles), images from 'self' and data URLs, fetches to 'self'.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'self'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

function page(file: string) {
  return (_req: Request, res: Response) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(join(WEB_DIR, file), { dotfiles: 'deny' });
  };
}

function file(path: string, type?: string) {
  return (_req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-cache');
    if (type) res.type(type);
    res.sendFile(join(WEB_DIR, path), { dotfiles: 'deny' });
  };
}

/**
 * The clinician's side of the sandbox (design.md §2): the demo EHR page at `/`, the DTR SMART app at `/dtr/`, their
 * bundles (built from `web/` with esbuild when the router is created, kept in memory) and the vendored LHC-Forms
 * files, plus `GET /sandbox/stories` (each story's patient, payer, draft order and one-line summary). Mount at the
 * root, only when the sandbox is on: `app.use(createWebRouter({ publicBaseUrl, sandboxAuth }))`.
 */
export function createWebRouter(deps: WebRouterDeps): Router {
  const router = express.Router();
  const prebuilt = deps.prebuiltDir ? readBuiltWebAssets(deps.prebuiltDir) : undefined;
  const built: Promise<Map<string, WebAsset>> = (prebuilt ? Promise.resolve(prebuilt) : buildWebAssets()).then(
    (list) => new Map(list.map((a) => [a.path, a])),
  );
  built.catch((err: unknown) =>
    deps.logger?.error({ err }, 'web bundle build failed; the demo page and DTR app are unavailable'),
  );

  let stories: SandboxStory[] | undefined;
  const storiesDir = deps.storiesDir ?? join(WEB_DIR, '..', 'sandbox');

  router.get('/', page('demo/index.html'));
  router.get('/index.html', page('demo/index.html'));
  router.get('/demo/demo.css', file('demo/demo.css'));
  router.get(['/dtr', '/dtr/'], page('dtr/index.html'));
  router.get('/dtr/index.html', page('dtr/index.html'));
  router.get('/dtr/launch.html', page('dtr/launch.html'));
  router.get('/dtr/dtr.css', file('dtr/dtr.css'));
  router.get('/shared/base.css', file('shared/base.css'));
  router.get('/favicon.ico', (_req, res) => {
    res.type('image/svg+xml').setHeader('Cache-Control', 'public, max-age=86400');
    res.send(
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#123b63"/><path d="M4 4h5a3 3 0 0 1 0 6H6v2H4z" fill="#fff"/></svg>',
    );
  });
  router.use(
    `/dtr/vendor/${LFORMS_DIR}`,
    express.static(join(WEB_DIR, 'vendor', LFORMS_DIR), {
      index: false,
      dotfiles: 'deny',
      immutable: true,
      maxAge: '7d',
      fallthrough: true,
    }),
  );

  const asset = async (req: Request, res: Response, next: NextFunction) => {
    let assets: Map<string, WebAsset>;
    try {
      assets = await built;
    } catch (err) {
      // A 500, not a 503: the failed build is kept for the process's life, so no retry would find it built.
      res
        .status(500)
        .type('text/plain')
        .send(`The web bundle could not be built: ${(err as Error).message}`);
      return;
    }
    const a = assets.get(req.path);
    if (!a) return next();
    res.setHeader('Cache-Control', 'no-cache');
    res.type(a.contentType).send(Buffer.from(a.contents));
  };
  router.get(/^\/(dtr|demo)\/[A-Za-z0-9_-]+\.(js|js\.map|txt)$/, asset);

  /** The stories' one-liners live in each Bundle's meta, which no FHIR search returns; this lists them. */
  router.get('/sandbox/stories', (_req, res) => {
    if (!stories) stories = existsSync(storiesDir) ? describeStories(loadSandboxBundles(storiesDir)) : [];
    res.setHeader('Cache-Control', 'no-cache');
    const publicBaseUrl = deps.publicBaseUrl.replace(/\/+$/, '');
    res.json({ publicBaseUrl, fhirServer: deps.fhirServer?.replace(/\/+$/, '') ?? `${publicBaseUrl}/sandbox/fhir`, stories });
  });

  return router;
}
