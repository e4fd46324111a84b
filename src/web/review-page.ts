import { join } from 'node:path';
import express from 'express';
import type { Request, Response, Router } from 'express';
import { notFound } from '../errors.js';
import { buildWebAssets, readBuiltWebAssets, WEB_DIR } from './build-web.js';
import type { WebAsset } from './build-web.js';

export interface ReviewPageDeps {
  /**
   * The sandbox's demo reviewer: the token the sandbox generated for the reviewer API when `REVIEW_TOKEN` is unset.
   * Unset (production, or a configured `REVIEW_TOKEN`): reviewers sign in with the token they were given.
   */
  demoReviewer?: { token: string; name: string };
  logger?: { error: (obj: object, msg: string) => void };
  /** Serve the bundle `npm run build` wrote here (`dist/public`) instead of bundling (production has no esbuild). */
  prebuiltDir?: string;
}

/** The workbench holds no data of its own: everything comes from the reviewer API with the reviewer's token. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

/**
 * The reviewer workbench page (design.md §2 "Reviewer"), mounted at `/review` before the reviewer API: `GET /review`
 * is the page, `/review/workbench.js|.css` its files, and `POST /review/demo-sign-in` hands the sandbox's demo
 * reviewer its token. Every other path falls through to the API (`/review/pended`, `/review/{id}`, …), which keeps
 * its own bearer-token check. The page's script is bundled on first request (or read from a prebuilt directory).
 */
export function createReviewPageRouter(deps: ReviewPageDeps): Router {
  const router = express.Router({ strict: false });
  let built: Promise<Map<string, WebAsset>> | undefined;
  const assets = () => {
    const prebuilt = deps.prebuiltDir ? readBuiltWebAssets(deps.prebuiltDir) : undefined;
    built ??= (prebuilt ? Promise.resolve(prebuilt) : buildWebAssets()).then((list) => new Map(list.map((a) => [a.path, a])));
    return built;
  };

  router.get('/', (req: Request, res: Response, next) => {
    // The API has no resource at /review itself; a JSON client asking there gets the usual 404.
    if (!req.accepts('html')) return next();
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(join(WEB_DIR, 'review', 'index.html'), { dotfiles: 'deny' });
  });
  router.get('/workbench.css', (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(join(WEB_DIR, 'review', 'workbench.css'), { dotfiles: 'deny' });
  });
  router.get('/base.css', (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(join(WEB_DIR, 'shared', 'base.css'), { dotfiles: 'deny' });
  });
  router.get(/^\/workbench\.js(\.map)?$/, (req, res, next) => {
    assets()
      .then((all) => {
        const a = all.get(`/review${req.path}`);
        if (!a) return next(notFound(`No route for GET /review${req.path}`));
        res.setHeader('Cache-Control', 'no-cache');
        res.type(a.contentType).send(Buffer.from(a.contents));
      })
      .catch((err: unknown) => {
        deps.logger?.error({ err }, 'reviewer workbench bundle failed');
        // A 500, not a 503: the failed build is kept for the process's life, so no retry would find it built.
        res.status(500).type('text/plain').send('The reviewer workbench could not be built.');
      });
  });

  /** Which sign-in the page offers: the sandbox's demo reviewer, or a token only. */
  router.get('/sign-in', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ demoReviewer: deps.demoReviewer ? deps.demoReviewer.name : null });
  });
  router.post('/demo-sign-in', (_req, res, next) => {
    if (!deps.demoReviewer) return next(notFound('No demo reviewer: sign in with your reviewer token'));
    res.setHeader('Cache-Control', 'no-store');
    res.json({ token: deps.demoReviewer.token, reviewer: deps.demoReviewer.name });
  });
  return router;
}
