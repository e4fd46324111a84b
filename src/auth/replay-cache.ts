/**
 * In-memory `jti` replay cache for CDS Client JWTs.
 *
 * CDS Hooks 2.0 §Trusting CDS Clients: `jti` is "a nonce string value that uniquely
 * identifies this authentication JWT (used to protect against replay attacks)".
 * An `iss`+`jti` pair is remembered until the token can no longer be accepted
 * (its `exp` plus the verifier's clock tolerance).
 *
 * The cache is per process: behind a load balancer with several replicas a token
 * could be replayed once against each replica within its lifetime.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @module
 */

/**
 * Options for {@link ReplayCache}.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export interface ReplayCacheOptions {
  /** Upper bound on remembered entries (default 100 000). */
  maxEntries?: number;
  /** Seconds added to `exp` before an entry is forgotten (default 60; use the verifier's tolerance). */
  clockToleranceSec?: number;
  /** Clock in epoch milliseconds (default `Date.now`). */
  now?: () => number;
}

/** Full expired-entry sweep at most this often (ms) during normal operation. */
const SWEEP_INTERVAL_MS = 60_000;

/**
 * Remembers `iss`+`jti` pairs until `exp + clockTolerance`, so a JWT cannot be replayed
 * while it would still verify.
 *
 * - No timers: expired entries are swept lazily on calls (at most once a minute, or
 *   when the cache is full), so it never keeps the process alive.
 * - Bounded: when `maxEntries` is reached, expired entries are evicted first; if it is
 *   still full, the oldest-inserted entries are evicted (down to 90 % capacity) so the
 *   sweep cost is amortised. Only record tokens *after* signature verification so
 *   unauthenticated callers cannot fill it.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export class ReplayCache {
  private readonly entries = new Map<string, number>();
  private readonly maxEntries: number;
  private readonly toleranceMs: number;
  private readonly now: () => number;
  private lastSweep: number;

  /**
   * @param options - capacity, clock tolerance and clock; see {@link ReplayCacheOptions}
   * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
   */
  constructor(options: ReplayCacheOptions = {}) {
    const max = options.maxEntries ?? 100_000;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('ReplayCache maxEntries must be a positive integer');
    const tol = options.clockToleranceSec ?? 60;
    if (!Number.isFinite(tol) || tol < 0) throw new RangeError('ReplayCache clockToleranceSec must be >= 0');
    this.maxEntries = max;
    this.toleranceMs = tol * 1000;
    this.now = options.now ?? Date.now;
    this.lastSweep = this.now();
  }

  /** Number of remembered (possibly already expired, not yet swept) entries. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Records `iss`+`jti` unless it is already remembered and not yet expired.
   *
   * @param iss - token issuer
   * @param jti - token id
   * @param expSec - token `exp` (NumericDate, seconds since epoch)
   * @returns `true` if the pair is new (now remembered), `false` if it is a replay
   * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
   */
  checkAndRemember(iss: string, jti: string, expSec: number): boolean {
    const now = this.now();
    const key = JSON.stringify([iss, jti]);
    const existing = this.entries.get(key);
    if (existing !== undefined && existing > now) return false;

    if (now - this.lastSweep >= SWEEP_INTERVAL_MS) this.sweepExpired(now);
    if (existing !== undefined) this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.makeRoom(now);

    const expiresAt = Number.isFinite(expSec) ? expSec * 1000 + this.toleranceMs : Number.POSITIVE_INFINITY;
    this.entries.set(key, expiresAt);
    return true;
  }

  private sweepExpired(now: number): void {
    this.lastSweep = now;
    for (const [key, expiresAt] of this.entries) {
      if (expiresAt <= now) this.entries.delete(key);
    }
  }

  private makeRoom(now: number): void {
    this.sweepExpired(now);
    if (this.entries.size < this.maxEntries) return;
    const target = Math.floor(this.maxEntries * 0.9);
    for (const key of this.entries.keys()) {
      if (this.entries.size <= target) break;
      this.entries.delete(key); // Map iterates in insertion order: oldest first
    }
  }
}
