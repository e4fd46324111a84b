/**
 * A deadline for one outbound request whose timer is cleared as soon as the caller is done with the answer. Not
 * `AbortSignal.timeout`: its timer and signal stay allocated for the whole timeout after the answer (Node frees them
 * only once the timer fires), as hooks/ehr-client.ts found under load (README "Memory"). The abort reason is a
 * `TimeoutError` DOMException, as `AbortSignal.timeout`'s is, so callers tell a timeout from other failures the same way.
 */
export interface RequestDeadline {
  signal: AbortSignal;
  /** Stops the timer; call it once the answer (body included, when read) is in. */
  clear(): void;
}

/** Starts a deadline of `ms` milliseconds (Infinity: none); like AbortSignal.timeout's, its timer keeps no process alive. */
export function requestDeadline(ms: number): RequestDeadline {
  const abort = new AbortController();
  if (!Number.isFinite(ms)) return { signal: abort.signal, clear: () => undefined };
  const timer = setTimeout(() => abort.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  timer.unref();
  return { signal: abort.signal, clear: () => clearTimeout(timer) };
}
