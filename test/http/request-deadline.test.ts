/**
 * Outbound requests (EHR queries, PAS subscription notifications, the sandbox loader) are bounded by a timer cleared
 * once the answer is in (http/request-deadline.ts), not AbortSignal.timeout, whose timer and signal stay allocated for
 * the whole timeout after the answer. The clock is faked, never waited for.
 */
import type { Bundle } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { requestDeadline } from '../../src/http/request-deadline.js';
import type { NotifyFetch } from '../../src/pas/subscription-notifier.js';
import { loadIntoFhir } from '../../src/sandbox/load-into-fhir.js';
import { buildApp } from '../helpers/app.js';
import { until } from '../helpers/notification-receiver.js';
import { pasSubscription } from '../pas/pas-fixtures.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('requestDeadline', () => {
  it('aborts with a TimeoutError once its time is up', () => {
    vi.useFakeTimers();
    const d = requestDeadline(1_000);
    vi.advanceTimersByTime(999);
    expect(d.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).name).toBe('TimeoutError');
  });

  it('leaves no timer behind once cleared', () => {
    vi.useFakeTimers();
    const d = requestDeadline(60_000);
    expect(vi.getTimerCount()).toBe(1);
    d.clear();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(d.signal.aborted).toBe(false);
  });
});

describe('callers use the cleared deadline, not AbortSignal.timeout', () => {
  it('the sandbox loader', async () => {
    const timeout = vi.spyOn(AbortSignal, 'timeout');
    const signals: AbortSignal[] = [];
    const fetchImpl = async (_url: string, init?: RequestInit) => {
      signals.push(init!.signal!);
      return new Response('{"resourceType":"Bundle","type":"transaction-response"}', { status: 200 });
    };
    const bundles: Bundle[] = [{ resourceType: 'Bundle', id: 'one', type: 'transaction', entry: [] }];
    expect(await loadIntoFhir({ baseUrl: 'http://fhir.test/fhir', bundles, fetchImpl })).toEqual(['one']);
    expect(signals).toHaveLength(2);
    expect(timeout).not.toHaveBeenCalled();
  });

  it('the PAS subscription notifier', async () => {
    const timeout = vi.spyOn(AbortSignal, 'timeout');
    const sent: string[] = [];
    const notifyFetch: NotifyFetch = async (url, init) => {
      expect(init.signal).toBeInstanceOf(AbortSignal);
      sent.push(url);
      return { ok: true, status: 200 };
    };
    const { app } = buildApp({ today: '2026-11-23', notifyFetch });
    await request(app).post('/fhir/Subscription').set('Content-Type', 'application/fhir+json').send(JSON.stringify(pasSubscription('http://127.0.0.1:9/hook', 'U5521039476'))).expect(201);
    await until('the handshake', () => (sent.length > 0 ? true : undefined));
    expect(timeout).not.toHaveBeenCalled();
  });
});
