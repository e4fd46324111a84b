import type { NextFunction, Request, Response, Router } from 'express';
import { methodNotAllowed } from '../errors.js';

/** A route path as Express takes it: a string, a regular expression, or a list of them. */
export type RoutePath = string | RegExp | (string | RegExp)[];

/** One route an Express router serves: its path relative to where `routeTable` started, and its methods. */
export interface RouteEntry {
  /** The mount prefixes above the route, joined (`/review`, `/fhir`, `''` for the root). */
  mount: string;
  path: RoutePath;
  /** Upper-case methods (`GET`, `POST`, …); empty for a route registered with `.all`. */
  methods: string[];
}

/** What Express keeps of a router layer (express 5 / router 2: `rawPath` is the path the layer was made with). */
interface LayerLike {
  rawPath?: RoutePath;
  route?: { path: RoutePath; methods: Record<string, boolean> };
  handle?: { stack?: LayerLike[] };
}

const stackOf = (router: unknown): LayerLike[] | undefined => (router as { stack?: LayerLike[] } | undefined)?.stack;

/**
 * Every route a router and the routers mounted in it serve, in stack order (read from Express's own route table, so a
 * route added later is listed without being declared twice).
 */
export function routeTable(router: Router | unknown, mount = ''): RouteEntry[] {
  const entries: RouteEntry[] = [];
  for (const layer of stackOf(router) ?? []) {
    if (layer.route) {
      const methods = Object.keys(layer.route.methods).filter((m) => m !== '_all').map((m) => m.toUpperCase());
      entries.push({ mount, path: layer.route.path, methods });
    } else if (stackOf(layer.handle)) {
      const prefix = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      entries.push(...routeTable(layer.handle, mount + prefix));
    }
  }
  return entries;
}

const keyOf = (path: RoutePath) => JSON.stringify([path].flat().map(String));

/**
 * Makes every path a router serves answer the methods it does not serve with 405 and an `Allow` header (RFC 9110
 * §15.5.6; design.md §4 "Errors": 405 wrong method, with Allow), in this router and every router mounted in it, rather
 * than falling through to a 404. The error middleware answers an OPTIONS request with 204 and the same `Allow`.
 * This is the one place a 405 is made: `Allow` is read from Express's route table, so it lists exactly the methods the
 * path serves and a route added later is listed without being declared twice.
 *
 * Each path's guard goes into the stack right after that path's last route, not at the end: a literal operation path
 * (`/Questionnaire/$questionnaire-package`) is answered before a later `:id` route (`/Questionnaire/:id`) takes the
 * same URL for a method the operation does not serve. Call once, after every route is mounted: a path that already
 * answers every method (`.all`) is left as it is, and a method the path serves still falls through (a GET the handler
 * passed on stays a 404).
 */
export function answerOtherMethods(router: Router | unknown, seen = new Set<unknown>()): void {
  if (seen.has(router)) return;
  seen.add(router);
  const stack = stackOf(router);
  if (!stack) return;
  const byPath = new Map<string, { path: RoutePath; methods: Set<string>; closed: boolean; last: number }>();
  stack.forEach((layer, index) => {
    if (layer.route) {
      const key = keyOf(layer.route.path);
      const entry = byPath.get(key) ?? { path: layer.route.path, methods: new Set<string>(), closed: false, last: index };
      for (const m of Object.keys(layer.route.methods)) {
        if (m === '_all') entry.closed = true;
        else entry.methods.add(m.toUpperCase());
      }
      entry.last = index;
      byPath.set(key, entry);
    } else if (stackOf(layer.handle)) {
      answerOtherMethods(layer.handle, seen);
    }
  });
  const r = router as Router;
  // From the end backwards, so the positions still to fill keep their index.
  const guarded = [...byPath.values()].filter((e) => !e.closed && e.methods.size > 0).sort((a, b) => b.last - a.last);
  for (const { path, methods, last } of guarded) {
    const allow = [...methods].join(', ');
    const served = new Set(methods.has('GET') ? [...methods, 'HEAD'] : methods);
    r.all(path, (req: Request, _res: Response, next: NextFunction) => next(served.has(req.method) ? undefined : methodNotAllowed(allow)));
    // Express appends the new route; it belongs right after the path's own routes.
    stack.splice(last + 1, 0, stack.pop()!);
  }
}
