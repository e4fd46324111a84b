import type { AssertionRecord, JtiRecord, Storage } from './storage.js';
import { StorageError } from './storage.js';

/** The records a hook call writes, kept in memory while the store opens and written, in order, once it is open. */
type EarlyWrite =
  | { method: 'saveAssertion'; args: Parameters<Storage['saveAssertion']> }
  | { method: 'queueAssertion'; args: Parameters<Storage['queueAssertion']> }
  | { method: 'queueOrderChange'; args: Parameters<Storage['queueOrderChange']> }
  | { method: 'saveAudit'; args: Parameters<Storage['saveAudit']> }
  | { method: 'saveApiAccess'; args: Parameters<Storage['saveApiAccess']> }
  | { method: 'recordJti'; args: Parameters<Storage['recordJti']> };

export interface DeferredStorageOptions {
  /** Told about a record kept while the store was opening that could not be written once it opened. */
  onLateWriteError?: (err: unknown, method: string) => void;
}

/**
 * A Storage whose backend is still opening (design.md §9: ready within 2 s of start, and a hook that arrives sooner is
 * answered, not made to wait). The service listens at once. While the store opens:
 * - the calls a CDS hook makes are answered from memory: its coverage assertion, audit line and API access line are
 *   kept and written, in order, as soon as the store is open; a JWT id is checked against the ids seen since start
 *   (a replay inside this window is still refused); an assertion is read back from what was kept;
 * - every other call (PAS, DTR, the reviewer) waits for the store, so "acknowledged means durable" holds for them;
 * - `ping()` fails, so `/readyz` says "not ready" instead of hanging.
 * The window is short (a PostgreSQL pool's first connection, or a PGlite data directory copied from its template);
 * a crash inside it loses the kept hook records, never a PAS request.
 */
export function deferredStorage(opening: Promise<Storage>, opts: DeferredStorageOptions = {}): Storage & { readonly ready: boolean } {
  let opened: Storage | undefined;
  let failure: unknown;
  const early: EarlyWrite[] = [];
  const assertions = new Map<string, AssertionRecord>();
  const jtis = new Map<string, number>();

  const settled: Promise<Storage> = opening.then(async (s) => {
    // Written before anything else reaches the store, so a later read (say PAS looking up an authorization issued
    // at signing) sees them.
    while (early.length > 0) {
      const e = early.shift()!;
      const written = (s[e.method] as (...a: unknown[]) => Promise<unknown>).apply(s, e.args);
      if (e.method === 'saveApiAccess') {
        // Queued in order, not waited for: an access line waits up to its statement's linger (sql-storage.ts) for
        // company, and waiting here would hold every other call, and readiness, that long per line kept.
        written.catch((err: unknown) => opts.onLateWriteError?.(err, e.method));
        continue;
      }
      try {
        await written;
      } catch (err) {
        opts.onLateWriteError?.(err, e.method);
      }
    }
    opened = s;
    assertions.clear();
    jtis.clear();
    return s;
  });
  settled.catch((err: unknown) => (failure = err));

  const answerEarly: Partial<Record<keyof Storage, (...args: unknown[]) => Promise<unknown>>> = {
    async saveAssertion(a) {
      assertions.set((a as AssertionRecord).assertionId, a as AssertionRecord);
      early.push({ method: 'saveAssertion', args: [a as AssertionRecord] });
    },
    async queueAssertion(a) {
      assertions.set((a as AssertionRecord).assertionId, a as AssertionRecord);
      early.push({ method: 'queueAssertion', args: [a as AssertionRecord] });
    },
    async queueOrderChange(c) {
      early.push({ method: 'queueOrderChange', args: [c as Parameters<Storage['queueOrderChange']>[0]] });
    },
    async getAssertion(id) {
      return assertions.get(id as string);
    },
    async saveAudit(a) {
      early.push({ method: 'saveAudit', args: [a as Parameters<Storage['saveAudit']>[0]] });
    },
    async saveApiAccess(a) {
      early.push({ method: 'saveApiAccess', args: [a as Parameters<Storage['saveApiAccess']>[0]] });
    },
    async recordJti(r, nowMs) {
      const rec = r as JtiRecord;
      const key = JSON.stringify([rec.issuer, rec.jti]);
      const now = (nowMs as number | undefined) ?? Date.now();
      const seen = jtis.get(key);
      if (seen !== undefined && seen > now) return false;
      jtis.set(key, rec.expiresAtMs);
      early.push({ method: 'recordJti', args: [rec, now] });
      return true;
    },
  };

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
        if (!opened && !failure) {
          const early = answerEarly[prop as keyof Storage];
          if (early) return early(...args);
        }
        const s = opened ?? (await settled);
        const fn = (s as unknown as Record<string, (...a: unknown[]) => unknown>)[prop];
        if (typeof fn !== 'function') throw new TypeError(`storage has no method ${prop}`);
        return fn.apply(s, args);
      };
    },
  });
}
