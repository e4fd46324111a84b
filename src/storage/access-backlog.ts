import type { Logger } from '../logger.js';
import { StorageUnavailableError } from './storage.js';

/** What the backlog needs of a line: the request it records, the one id it logs (never a resource id or contents). */
export interface BacklogLine {
  requestId: string;
}

export interface AccessBacklogOptions {
  logger?: Logger;
  /** Lines kept at most; past it a line is dropped and counted (default ACCESS_BACKLOG_MAX). */
  max?: number;
  /** Lines per statement when the kept lines are written. */
  batch?: number;
  /** First retry delay after the database refused the kept lines (doubles up to maxRetryMs). */
  retryMs?: number;
  maxRetryMs?: number;
  /**
   * Longest wait for the kept lines in `settle` and `close` (default ACCESS_BACKLOG_FLUSH_WAIT_MS): a write that
   * hangs (an unreachable server, a connect timeout) must not hold every listing, or a SIGTERM's drain, for the
   * driver's own timeout.
   */
  flushWaitMs?: number;
}

/** Lines kept at most: about 3 MB of access lines, some minutes of a busy payer API's calls. */
export const ACCESS_BACKLOG_MAX = 10_000;

/** Longest wait for the kept lines before a listing (settle) or at shutdown (close). */
export const ACCESS_BACKLOG_FLUSH_WAIT_MS = 2000;

/**
 * The part of a database error that may be logged: its SQLSTATE and its message up to the first colon. PostgreSQL
 * puts the value it refused after that colon ('invalid input syntax for type uuid: "…"') and the whole row in
 * `detail` ("Failing row contains (…)"): an access line's resource ids, which are never logged.
 */
export function refusalReason(err: unknown): { sqlstate?: string; reason: string } {
  const code = (err as { code?: unknown } | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return { ...(typeof code === 'string' ? { sqlstate: code } : {}), reason: message.split(':')[0].trim() };
}

/**
 * Payer API access lines the database could not take (unreachable, a full disk: StorageUnavailableError), kept in
 * memory and written once it takes writes again, so that an outage does not silently lose the record of who called
 * what (design.md §8). Bounded: past `max` lines the newest are dropped, counted, and the count is logged as a
 * warning when the first is dropped and again when the kept lines are written (request ids and counts only). A line
 * the database refuses as wrong (not an outage) is dropped and logged by request id. Lost on a crash or a kill, as
 * anything in memory: a SIGTERM writes them if the database is back by then (close), else logs how many are lost.
 * The lines carry their own key (ApiAccessRecord.lineId), so a statement retried after an answer that never came
 * writes each line once.
 */
export class AccessBacklog<T extends BacklogLine> {
  private lines: T[] = [];
  private dropped = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private delay: number;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly max: number;
  private readonly batch: number;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly flushWaitMs: number;

  constructor(
    private readonly write: (lines: T[]) => Promise<void>,
    private readonly opts: AccessBacklogOptions = {},
  ) {
    this.max = opts.max ?? ACCESS_BACKLOG_MAX;
    this.batch = opts.batch ?? 500;
    this.retryMs = opts.retryMs ?? 100;
    this.maxRetryMs = opts.maxRetryMs ?? 5000;
    this.flushWaitMs = opts.flushWaitMs ?? ACCESS_BACKLOG_FLUSH_WAIT_MS;
    this.delay = this.retryMs;
  }

  /** Lines kept and not yet written. */
  get size(): number {
    return this.lines.length;
  }

  /** Lines dropped at the bound since the kept lines were last all written. */
  get droppedCount(): number {
    return this.dropped;
  }

  /** Keeps lines the database could not take, as many as the bound allows; the rest are dropped and counted. */
  keep(lines: T[]): void {
    if (this.lines.length === 0 && this.dropped === 0) {
      this.opts.logger?.warn({ lines: lines.length }, 'storage unavailable: payer API access lines kept in memory until it takes writes');
    }
    const room = Math.max(0, this.max - this.lines.length);
    this.lines.push(...lines.slice(0, room));
    const over = lines.length - Math.min(room, lines.length);
    if (over > 0) {
      if (this.dropped === 0) this.opts.logger?.warn({ kept: this.lines.length, max: this.max }, 'payer API access lines: the in-memory backlog is full, further lines are dropped and counted');
      this.dropped += over;
    }
    // A retry already waiting (or a write under way) takes these too.
    if (!this.timer && !this.flushing) this.schedule(this.delay);
  }

  /** The database took a write: try the kept lines now rather than after the backoff. */
  nudge(): void {
    if (this.lines.length > 0 && this.timer) this.schedule(0);
  }

  /** Writes the kept lines now; resolves when they are written or the database refused them again (kept, retried). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.writeKept().finally(() => {
      this.flushing = undefined;
      // Lines kept while the last write was finishing.
      if (this.lines.length > 0 && !this.timer) this.schedule(this.delay);
    });
    return this.flushing;
  }

  /**
   * Writes the kept lines, waiting at most `flushWaitMs`: a write still under way after that goes on (its lines stay
   * kept until it ends) and the caller proceeds without them. Resolves either way, never rejects.
   */
  async settle(): Promise<void> {
    if (this.lines.length === 0 && !this.flushing) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.flushWaitMs);
      timer.unref();
    });
    try {
      await Promise.race([this.flush().catch(() => undefined), waited]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One last attempt (SIGTERM, close), bounded by `flushWaitMs`: what the database still refuses, or has not taken by
   * then, is lost, and the count is logged.
   */
  async close(): Promise<void> {
    await this.settle();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length > 0 || this.dropped > 0) {
      this.opts.logger?.error({ lost: this.lines.length + this.dropped }, 'payer API access lines could not be written before shutdown');
      this.lines = [];
      this.dropped = 0;
    }
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // After close, a write that outlived its wait retries nothing: its lines were counted as lost.
    if (this.closed) return;
    // unref: kept lines alone do not hold the process open (close() makes the last attempt).
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private async writeKept(): Promise<void> {
    let written = 0;
    while (this.lines.length > 0) {
      const batch = this.lines.slice(0, this.batch);
      try {
        await this.write(batch);
      } catch (err) {
        if (err instanceof StorageUnavailableError) {
          this.delay = Math.min(this.delay * 2, this.maxRetryMs);
          this.schedule(this.delay);
          return;
        }
        // Not an outage: one line the database refuses must not take its neighbours with it.
        const refused: string[] = [];
        let why: unknown = err;
        for (let i = 0; i < batch.length; i++) {
          try {
            await this.write([batch[i]]);
          } catch (e) {
            if (!(e instanceof StorageUnavailableError)) {
              refused.push(batch[i].requestId);
              why = e;
              continue;
            }
            // The outage came back meanwhile: the lines not yet written wait for the next attempt; those already
            // refused are dropped, and logged as such.
            this.logRefused(why, refused);
            this.lines.splice(0, i);
            this.delay = Math.min(this.delay * 2, this.maxRetryMs);
            this.schedule(this.delay);
            return;
          }
        }
        this.logRefused(why, refused);
      }
      this.lines.splice(0, batch.length);
      written += batch.length;
    }
    this.delay = this.retryMs;
    if (written > 0 || this.dropped > 0) {
      const fields = { written, dropped: this.dropped };
      if (this.dropped > 0) this.opts.logger?.warn(fields, 'payer API access lines kept during the storage outage are written; some were dropped at the in-memory bound');
      else this.opts.logger?.info(fields, 'payer API access lines kept during the storage outage are written');
    }
    this.dropped = 0;
  }

  /** Lines the database refused as wrong: their request ids and the refusal's SQLSTATE and reason, never its row. */
  private logRefused(err: unknown, requestIds: string[]): void {
    if (requestIds.length === 0) return;
    this.opts.logger?.error({ ...refusalReason(err), requestIds: requestIds.slice(0, 20), count: requestIds.length }, 'payer API access lines refused by the database: dropped');
  }
}
