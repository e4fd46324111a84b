import type { NextFunction, Request, Response } from 'express';

/**
 * Counts the requests whose handler has not answered yet, so that a SIGTERM drain closes storage only after the last
 * of them (docs/design.md §2: what a hook writes behind its answer is written before a SIGTERM drain exits).
 *
 * The listening socket's close callback is not enough: it fires when the last connection is gone, and a client that
 * gave up (a timeout, a closed tab) takes its connection away while its hook is still being evaluated. That hook
 * then records its assertion and audit line against a closed store. Neither 'finish' nor 'close' on the response
 * marks the handler's end either: 'close' fires when the client leaves, and 'finish' never fires once the socket is
 * gone. What every handler does at its end, whether the client is still there or not, is `res.end` (Express's
 * `send`, `json`, static files and the error handler all end there), so that is where a request stops counting.
 */
export class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  /**
   * @param abandonedAfterMs - how long a request whose client has gone still counts without reaching `res.end`. A
   *   streamed static file whose client left is destroyed, never ended; without a bound it would hold the drain until
   *   its grace period and its exit 1. A hook's own work is bounded (EHR_TIMEOUT_MS, the write queue's 2 s), so
   *   serve.ts gives it that long and more.
   */
  constructor(private readonly abandonedAfterMs = 5_000) {}

  /** The middleware: mount it first, before anything can answer. */
  readonly track = (_req: Request, res: Response, next: NextFunction): void => {
    this.count++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.settle();
    };
    const end = res.end;
    res.end = function (this: Response, ...args: unknown[]) {
      res.end = end;
      settle();
      return (end as (...a: unknown[]) => Response).apply(this, args);
    } as Response['end'];
    // 'close' after `res.end` is the normal end (already settled); before it, the client has left.
    res.once('close', () => {
      if (!settled) setTimeout(settle, this.abandonedAfterMs).unref();
    });
    next();
  };

  /**
   * Resolves once no request is in flight. Work a handler queues in the same turn as its answer (an audit line
   * written behind it) has been handed to storage by then, and storage's close writes what is queued.
   */
  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private settle(): void {
    this.count--;
    if (this.count > 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    // After the current turn: the handler's code after its `res.json` (the audit line in a `finally`) runs first.
    setImmediate(() => {
      for (const w of waiters) w();
    });
  }
}
