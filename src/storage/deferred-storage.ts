import type { Storage } from './storage.js';
import { StorageError } from './storage.js';

/**
 * A Storage whose backend is still opening. The embedded PostgreSQL (PGlite) needs seconds to create a new data
 * directory, so the service listens at once — discovery and health answer — while every storage call waits for the
 * backend; `ping()` fails until it is open, so `/readyz` says "not ready" instead of hanging.
 */
export function deferredStorage(opening: Promise<Storage>): Storage & { readonly ready: boolean } {
  let opened: Storage | undefined;
  let failure: unknown;
  opening.then(
    (s) => (opened = s),
    (err: unknown) => (failure = err),
  );
  return new Proxy({} as Storage & { readonly ready: boolean }, {
    get(_target, prop: string) {
      if (prop === 'ready') return opened !== undefined;
      if (prop === 'then') return undefined;
      if (prop === 'ping') {
        return async () => {
          if (failure) throw failure;
          if (!opened) throw new StorageError('storage is still opening');
          return opened.ping();
        };
      }
      return async (...args: unknown[]) => {
        const s = opened ?? (await opening);
        const fn = (s as unknown as Record<string, (...a: unknown[]) => unknown>)[prop];
        if (typeof fn !== 'function') throw new TypeError(`storage has no method ${prop}`);
        return fn.apply(s, args);
      };
    },
  });
}
