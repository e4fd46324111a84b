/**
 * jti replay cache — CDS Hooks 2.0 §Trusting CDS Clients.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
import { describe, expect, it } from 'vitest';
import { ReplayCache } from '../../src/auth/replay-cache.js';

const T0 = 1_800_000_000_000; // ms
const T0_SEC = T0 / 1000;

function cacheAt(start = T0, options: { maxEntries?: number; clockToleranceSec?: number } = {}) {
  const clock = { ms: start };
  const cache = new ReplayCache({ ...options, now: () => clock.ms });
  return { cache, clock };
}

describe('ReplayCache', () => {
  it('accepts a new iss+jti and reports the second sighting as a replay', () => {
    const { cache } = cacheAt();
    expect(cache.checkAndRemember('iss-a', 'jti-1', T0_SEC + 300)).toBe(true);
    expect(cache.checkAndRemember('iss-a', 'jti-1', T0_SEC + 300)).toBe(false);
  });

  it('scopes jti per issuer and does not confuse concatenation-ambiguous pairs', () => {
    const { cache } = cacheAt();
    expect(cache.checkAndRemember('iss-a', 'jti-1', T0_SEC + 300)).toBe(true);
    expect(cache.checkAndRemember('iss-b', 'jti-1', T0_SEC + 300)).toBe(true);
    expect(cache.checkAndRemember('ab', 'c', T0_SEC + 300)).toBe(true);
    expect(cache.checkAndRemember('a', 'bc', T0_SEC + 300)).toBe(true);
  });

  it('remembers an entry until exp plus the clock tolerance, then forgets it', () => {
    const { cache, clock } = cacheAt(T0, { clockToleranceSec: 60 });
    cache.checkAndRemember('iss', 'jti', T0_SEC + 10);
    clock.ms = T0 + 69_000; // exp + 59 s
    expect(cache.checkAndRemember('iss', 'jti', T0_SEC + 10)).toBe(false);
    clock.ms = T0 + 70_001; // exp + 60 s + 1 ms
    expect(cache.checkAndRemember('iss', 'jti', T0_SEC + 10)).toBe(true);
  });

  it('sweeps expired entries lazily without timers', () => {
    const { cache, clock } = cacheAt(T0, { clockToleranceSec: 0 });
    for (let i = 0; i < 50; i++) cache.checkAndRemember('iss', `old-${i}`, T0_SEC + 1);
    expect(cache.size).toBe(50);
    clock.ms = T0 + 61_000;
    cache.checkAndRemember('iss', 'new', T0_SEC + 600);
    expect(cache.size).toBe(1);
  });

  it('stays bounded: evicts expired entries first, then the oldest live ones', () => {
    const { cache, clock } = cacheAt(T0, { maxEntries: 10, clockToleranceSec: 0 });
    for (let i = 0; i < 5; i++) cache.checkAndRemember('iss', `short-${i}`, T0_SEC + 1);
    for (let i = 0; i < 5; i++) cache.checkAndRemember('iss', `long-${i}`, T0_SEC + 3600);
    clock.ms = T0 + 2_000; // short-* expired
    cache.checkAndRemember('iss', 'x', T0_SEC + 3600);
    expect(cache.size).toBe(6);
    // All long-lived entries are still remembered.
    for (let i = 0; i < 5; i++) expect(cache.checkAndRemember('iss', `long-${i}`, T0_SEC + 3600)).toBe(false);

    for (let i = 0; i < 20; i++) cache.checkAndRemember('iss', `more-${i}`, T0_SEC + 3600);
    expect(cache.size).toBeLessThanOrEqual(10);
    // Most recent entries survive eviction.
    expect(cache.checkAndRemember('iss', 'more-19', T0_SEC + 3600)).toBe(false);
  });

  it('rejects invalid options', () => {
    expect(() => new ReplayCache({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new ReplayCache({ clockToleranceSec: -1 })).toThrow(RangeError);
  });
});
